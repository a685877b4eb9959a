package ledger

import (
	"bytes"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

func twoOrgs(t *testing.T) (a, b *identity.Key, g GenesisState) {
	a, b = mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	return a, b, GenesisState{Orgs: []GenesisOrg{{ID: "org-a", Admins: []string{a.ID()}}, {ID: "org-b", Admins: []string{b.ID()}}}}
}

func classJob(org string, waves, per, maxFail uint32) *record.JobCreate {
	return &record.JobCreate{Org: org, Command: "ping", Args: map[string]any{"n": 1}, Target: record.JobTarget{Class: "sensor"},
		Waves: waves, BlocksPerWave: per, MaxFailures: maxFail, TimeoutBlocks: waves*per + 50}
}

// A job's failures abort it at the threshold, in block execution: the
// reports of devices after it are refused, every replica computes the
// same state, and the progress view counts each wave.
func TestJobThresholdAbortDeterministic(t *testing.T) {
	a, _, g := twoOrgs(t)
	c := newChain(t, g, "")
	r := newChainVals(t, g, "", c.vals)
	var devs []*identity.Key
	for range 12 {
		d := mustKey(t, identity.Ed25519)
		devs = append(devs, d)
		raw := c.sign(a, "", registerMsg(t, d, "org-a"))
		c.block(raw)
		r.block(raw)
	}
	raw := c.sign(a, "", classJob("org-a", 1, 1, 3))
	c.block(raw)
	r.block(raw)
	j, err := c.view().Job("org-a", 1)
	if err != nil || j.State != record.JobActive || j.JobCreate.Command != "ping" {
		t.Fatalf("Job(org-a, 1) = %+v, %v; want an active ping job", j, err)
	}
	// Devices 0..1 succeed, 2..4 fail: the third failure aborts it.
	var codes []uint32
	for i, d := range devs[:7] {
		m := &record.JobReport{Org: "org-a", ID: 1, Outcome: record.JobSucceeded}
		if i >= 2 {
			m.Outcome, m.Reason = record.JobFailed, "relay stuck"
		}
		raw := c.sign(d, "", m)
		res := c.block(raw)
		r.block(raw)
		codes = append(codes, res[0].Code)
	}
	for i, code := range codes {
		if want := i < 5; (code == 0) != want {
			t.Errorf("report %d: code %d; want accepted %v (the job aborts at the 3rd failure)", i, code, want)
		}
	}
	j, _ = c.view().Job("org-a", 1)
	if j.State != record.JobAborted || j.Failed != 3 || j.Succeeded != 2 || j.Ended == 0 {
		t.Fatalf("job after 3 failures = %+v; want aborted with 2 succeeded, 3 failed", j)
	}
	if ha, hb := c.app.tree.Hash(), r.app.tree.Hash(); !bytes.Equal(ha, hb) {
		t.Fatalf("replicas diverged: app hash %X vs %X", ha, hb)
	}
	p, err := c.view().JobProgress("org-a", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := record.JobCounts{Targeted: 12, Succeeded: 2, Failed: 3, Skipped: 7}
	if p.State != record.JobAborted || p.Counts != want || len(p.Failed) != 3 || p.Failed[0].Reason != "relay stuck" {
		t.Fatalf("progress = %+v; want %+v with the reasons", p, want)
	}
}

// Waves open one after the other; a device reports once; a cancelled or
// timed-out job takes no report; the job index keeps only open jobs.
func TestJobWavesCancelTimeout(t *testing.T) {
	a, _, g := twoOrgs(t)
	c := newChain(t, g, "")
	var devs []*identity.Key
	for range 8 {
		devs = append(devs, c.register(a, "org-a", identity.Ed25519))
	}
	c.must(a, "", classJob("org-a", 2, 20, 5))
	j, _ := c.view().Job("org-a", 1)
	w := j.Waves()
	var early, late *identity.Key
	for _, d := range devs {
		switch w.WaveOf(d.ID()) {
		case 1:
			early = d
		case 2:
			late = d
		}
	}
	if early == nil || late == nil {
		t.Skip("no device in each wave (1 chance in 128)")
	}
	c.want(record.CodeConflict, late, "", &record.JobReport{Org: "org-a", ID: 1, Outcome: record.JobSucceeded})
	c.must(early, "", &record.JobReport{Org: "org-a", ID: 1, Outcome: record.JobSucceeded})
	c.want(record.CodeConflict, early, "", &record.JobReport{Org: "org-a", ID: 1, Outcome: record.JobFailed, Reason: "again"})
	for c.height < j.Start+20 {
		c.block()
	}
	c.must(late, "", &record.JobReport{Org: "org-a", ID: 1, Outcome: record.JobRejected, Reason: "no handler for ping"})

	// Cancel: no report after it, and a second cancel is a conflict.
	c.must(a, "", classJob("org-a", 1, 1, 5))
	c.must(a, "", &record.JobCancel{Org: "org-a", ID: 2})
	c.want(record.CodeConflict, a, "", &record.JobCancel{Org: "org-a", ID: 2})
	c.want(record.CodeConflict, devs[0], "", &record.JobReport{Org: "org-a", ID: 2, Outcome: record.JobSucceeded})

	// Timeout: done from its timeout height on.
	short := classJob("org-a", 1, 1, 5)
	short.TimeoutBlocks = 1
	c.must(a, "", short)
	c.block()
	c.want(record.CodeConflict, devs[0], "", &record.JobReport{Org: "org-a", ID: 3, Outcome: record.JobSucceeded})
	if p, _ := c.view().JobProgress("org-a", 3); p.State != record.JobDone || p.Counts.TimedOut != 8 {
		t.Errorf("progress of the timed-out job = %+v; want done with 8 timed out", p.Counts)
	}
	// The index of the class keeps open jobs only: 1 (still open), then 4.
	c.must(a, "", classJob("org-a", 1, 1, 5))
	var idx record.JobIndex
	if _, err := c.view().get(record.JobIndexKey("org-a", record.ConfigClass, "sensor"), &idx); err != nil || len(idx.IDs) != 2 || idx.IDs[0] != 1 || idx.IDs[1] != 4 {
		t.Errorf("class index = %v, %v; want [1 4]", idx.IDs, err)
	}
	// A device-list job is done when every listed device has reported.
	list := []string{devs[0].ID(), devs[1].ID()}
	if list[0] > list[1] {
		list[0], list[1] = list[1], list[0]
	}
	c.must(a, "", &record.JobCreate{Org: "org-a", Command: "ping", Target: record.JobTarget{Devices: list}, Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 100})
	c.must(devs[0], "", &record.JobReport{Org: "org-a", ID: 5, Outcome: record.JobSucceeded})
	c.want(record.CodeUnauthorized, devs[2], "", &record.JobReport{Org: "org-a", ID: 5, Outcome: record.JobSucceeded})
	c.must(devs[1], "", &record.JobReport{Org: "org-a", ID: 5, Outcome: record.JobSucceeded})
	if j, _ := c.view().Job("org-a", 5); j.State != record.JobDone {
		t.Errorf("device-list job after every device reported: %s; want done", j.State)
	}
}

// Tenancy: another organisation's admin can neither create a job on your
// devices nor cancel yours; a device of another organisation cannot
// report; a device creates no job; a "manage" grant on the organisation
// lets another organisation's admin create one until it is revoked.
func TestJobTenancy(t *testing.T) {
	a, b, g := twoOrgs(t)
	c := newChain(t, g, "")
	devA := c.register(a, "org-a", identity.Ed25519)
	devB := c.register(b, "org-b", identity.Ed25519)
	c.must(a, "", classJob("org-a", 1, 1, 5))
	for _, tc := range []struct {
		key *identity.Key
		m   record.Msg
	}{
		{b, classJob("org-a", 1, 1, 5)},
		{b, &record.JobCreate{Org: "org-b", Command: "ping", Target: record.JobTarget{Devices: []string{devA.ID()}}, Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 10}},
		{b, &record.JobCancel{Org: "org-a", ID: 1}},
		{devB, &record.JobReport{Org: "org-a", ID: 1, Outcome: record.JobFailed, Reason: "forged"}},
		{devA, classJob("org-a", 1, 1, 5)},
		{devA, &record.JobCancel{Org: "org-a", ID: 1}},
	} {
		if got, log := c.do(tc.key, "", tc.m); got != record.CodeUnauthorized {
			t.Errorf("%s by %s: code %v (%s); want unauthorized", tc.m.Kind(), tc.key.ID(), got, log)
		}
	}
	if j, _ := c.view().Job("org-a", 1); j.Failed != 0 || j.State != record.JobActive {
		t.Fatalf("org-a's job after org-b's attempts = %+v; want untouched", j)
	}
	c.must(a, "", &record.GrantAdd{Grantor: "org:org-a", Subject: "org:org-b", Action: record.ActionManage, Resource: "org:org-a"})
	gs, _ := c.view().Grants(GrantFilter{Subject: "org:org-b"})
	c.must(b, "", classJob("org-a", 1, 1, 5))
	if j, _ := c.view().Job("org-a", 2); j.Grant != gs[0].ID || j.Signer != b.ID() {
		t.Fatalf("job created through the grant = %+v; want grant %d, signer %s", j, gs[0].ID, b.ID())
	}
	c.must(a, "", &record.GrantRevoke{ID: gs[0].ID})
	c.want(record.CodeUnauthorized, b, "", classJob("org-a", 1, 1, 5))

	// A device (a gateway whose rules command devices) creates jobs only
	// through a "manage" grant on the organisation held by itself.
	c.must(a, "", &record.GrantAdd{Grantor: "org:org-a", Subject: "device:" + devA.ID(), Action: record.ActionManage, Resource: "device:" + devA.ID()})
	c.want(record.CodeUnauthorized, devA, "", classJob("org-a", 1, 1, 5))
	c.must(a, "", &record.GrantAdd{Grantor: "org:org-a", Subject: "device:" + devA.ID(), Action: record.ActionManage, Resource: "org:org-a"})
	one := &record.JobCreate{Org: "org-a", Command: "reboot", Target: record.JobTarget{Devices: []string{devA.ID()}}, Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 10}
	c.must(devA, "", one)
	dg, _ := c.view().Grants(GrantFilter{Subject: "device:" + devA.ID()})
	j, err := c.view().Job("org-a", 3)
	if err != nil || j.Signer != devA.ID() || j.Grant == 0 {
		t.Fatalf("job created by a device through its grant = %+v, %v", j, err)
	}
	var held *record.Grant
	for i := range dg {
		if dg[i].ID == j.Grant {
			held = &dg[i]
		}
	}
	o, _ := c.view().Org("org-a")
	if err := record.ManageRightHolds(record.ManageRight{Org: "org-a", Signer: j.Signer, Grant: j.Grant}, o, held, nil, c.height); err != nil {
		t.Fatalf("the device's own check of that job: %v", err)
	}
	c.want(record.CodeUnauthorized, devB, "", &record.JobCreate{Org: "org-a", Command: "reboot", Target: record.JobTarget{Devices: []string{devA.ID()}}, Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 10})
}
