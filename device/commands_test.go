package device_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

type recorder struct {
	mu   sync.Mutex
	cmds []record.Command
}

func (r *recorder) Execute(_ context.Context, c record.Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, c)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cmds)
}

// switchAgreement registers a lamp and deploys testutil.SwitchAgreement
// for it; it returns the lamp's key and the agreement's id.
func (tn *testNet) switchAgreement(t *testing.T, ctx context.Context) (*identity.Key, uint64) {
	t.Helper()
	lamp := tn.register(t, identity.Ed25519)
	tn.send(t, tn.admin, &record.AgreementDeploy{Source: []byte(testutil.SwitchAgreement), Parties: map[string]string{"lamp": "device:" + lamp.ID(), "owner": "org:" + devnet.DemoOrg}})
	var page struct {
		Items []record.Agreement `json:"items"`
	}
	if err := client.New(tn.d.APIURL(0)).Get(ctx, "/v1/agreements?limit=1000", &page); err != nil || len(page.Items) == 0 {
		t.Fatalf("agreements: %v", err)
	}
	return lamp, page.Items[len(page.Items)-1].ID
}

// TestCommands has an agreement command a device: the device gets each
// command proved, executes it once (acknowledged across restarts), and
// its agent runs the actuator.
func TestCommands(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	lamp, id := tn.switchAgreement(t, ctx)
	tn.send(t, tn.admin, &record.AgreementCall{ID: id, Transition: "toggle"})
	tn.send(t, tn.admin, &record.AgreementCall{ID: id, Transition: "toggle"})

	dir := t.TempDir()
	d, err := device.New(lamp, device.WithGateways(tn.gw(1)), device.WithTrust(tn.trust), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := d.Commands(ctx)
	if err != nil || len(cmds) != 2 || string(cmds[0].Payload) != "on" || cmds[0].Agreement != id {
		t.Fatalf("Commands = %+v, %v; want two 'on'", cmds, err)
	}
	if err := d.AckCommand(cmds[0].ID); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, err = device.New(lamp, device.WithGateways(tn.gw(2)), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if left, err := d.Commands(ctx); err != nil || len(left) != 1 || left[0].ID != cmds[1].ID {
		t.Fatalf("after acknowledging the first and a restart: %+v, %v", left, err)
	}

	// The agent executes what is pending, once.
	rec := &recorder{}
	s, _ := device.NewSensor(device.ClassMotion, 1)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- (&device.Agent{Device: d, Sensors: []device.Sensor{s}, Wake: 300 * time.Millisecond, Actuator: rec}).Run(actx)
	}()
	for rec.count() < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("the agent executed no command")
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(time.Second) // a few more wakes: nothing is executed twice
	cancel()
	<-done
	if n := rec.count(); n != 1 {
		t.Errorf("the actuator ran %d commands; want 1", n)
	}
}

// An agreement's command runs the handler registered for jobs under the
// first word of its payload (one registry for both), with the payload,
// the agreement and the transition as arguments; a command with no
// handler is an error, retried at the next wake.
func TestAgreementCommandsUseHandlers(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	lamp, id := tn.switchAgreement(t, ctx)
	tn.send(t, tn.admin, &record.AgreementCall{ID: id, Transition: "toggle"})
	var got map[string]any
	d, err := device.New(lamp, device.WithGateways(tn.gw(1)), device.WithTrust(tn.trust),
		device.WithCommandHandler("on", func(_ context.Context, args map[string]any) error { got = args; return nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cmds, err := d.Commands(ctx)
	if err != nil || len(cmds) != 1 {
		t.Fatalf("Commands = %+v, %v; want one", cmds, err)
	}
	if err := d.Actuator().Execute(ctx, cmds[0]); err != nil || got["payload"] != "on" || got["agreement"] != int64(id) || got["transition"] != "toggle" {
		t.Fatalf("Execute = %v, handler args %v; want payload on, agreement %d, transition toggle", err, got, id)
	}
	cmds[0].Payload = []byte("off now")
	if err := d.Actuator().Execute(ctx, cmds[0]); err == nil {
		t.Error("a command with no handler (off) was executed")
	}
}
