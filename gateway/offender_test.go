package gateway

import (
	"testing"
	"time"

	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestReportOffender: a device reported by another path (the mesh's bans)
// is quarantined by the organisation's policy, as one exceeding its limits
// here is; without the policy it stays active.
func TestReportOffender(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	status := func(id string) record.Status {
		st, err := tn.app.View(0)
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.Device(id)
		if err != nil {
			t.Fatal(err)
		}
		return d.Status
	}
	tn.gw.ReportOffender(tn.weak.ID(), 100, "banned by the mesh")
	time.Sleep(500 * time.Millisecond) // several duty rounds
	if got := status(tn.weak.ID()); got != record.StatusActive {
		t.Fatalf("without a policy the reported device is %s; want it active", got)
	}
	if tn.gw.Stats().Offenders != 1 {
		t.Errorf("offenders counted: %d; want 1", tn.gw.Stats().Offenders)
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: "device:" + tn.gwKey.ID(),
		Action: record.ActionManage, Resource: "device:" + tn.sensor.ID()}, true); err != nil {
		t.Fatal(err)
	}
	tn.gw.ReportOffender(tn.sensor.ID(), 100, "banned by the mesh")
	for status(tn.sensor.ID()) != record.StatusSuspended {
		select {
		case <-ctx.Done():
			t.Fatal("the reported device was never quarantined")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got := status(tn.weak.ID()); got != record.StatusActive {
		t.Errorf("the device without a policy is %s; want active", got)
	}
}
