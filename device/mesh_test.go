package device_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/device/meshnode"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

// TestMeshWithLightClient: two devices with no ledger talk over the mesh,
// directly and through a gateway's mailbox; each checks the other with
// proofs its light client verifies.
func TestMeshWithLightClient(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	sw := tn.register(t, identity.Ed25519)
	lamp := tn.register(t, identity.Ed25519)
	intruder := tn.register(t, identity.Ed25519)
	gwKey, err := devnet.Keystore(tn.d.Home()).Load(devnet.GatewayKey(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	tn.send(t, tn.admin, &record.GrantAdd{Grantor: "org:" + devnet.DemoOrg, Subject: "device:" + sw.ID(), Action: message.KindMessage, Resource: "device:" + lamp.ID()})
	tn.send(t, tn.admin, &record.DeviceUpdate{Device: lamp.ID(), Labels: map[string]string{message.LabelMailboxes: gwKey.ID()}})

	got := make(chan *mesh.Delivery, 10)
	newDev := func(k *identity.Key, h func(context.Context, *mesh.Delivery) error) *mesh.Node {
		d, err := device.New(k, device.WithGateways(tn.gw(0)), device.WithTrust(tn.trust), device.WithStateDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		gwID, addr, err := d.GatewayMeshAddr(ctx)
		if err != nil || gwID != gwKey.ID() {
			t.Fatalf("gateway mesh address: %s %v", gwID, err)
		}
		n, err := meshnode.Start(d, meshnode.Options{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: []string{addr}, Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	lampNode := newDev(lamp, func(_ context.Context, m *mesh.Delivery) error { got <- m; return nil })
	swNode := newDev(sw, nil)
	inNode := newDev(intruder, nil)

	// Directly, sealed.
	if _, err := swNode.Connect(ctx, lampNode.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	env, err := swNode.Compose(message.Outgoing{To: lamp.ID(), Body: []byte("on"), Seal: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := swNode.Send(ctx, env)
	if err != nil || res.Err() != nil {
		t.Fatalf("direct: %v %v", err, res)
	}
	if m := <-got; string(m.Plaintext) != "on" || m.From != sw.ID() {
		t.Fatalf("lamp got %q from %s", m.Plaintext, m.From)
	}
	// The intruder holds no grant: the lamp's proofs say so.
	if _, err := inNode.Connect(ctx, lampNode.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	env, _ = inNode.Compose(message.Outgoing{To: lamp.ID(), Body: []byte("off")})
	if res, err := inNode.Send(ctx, env); err != nil || res.Status != message.StatusNotGranted {
		t.Fatalf("intruder: %v %v", err, res)
	}
	// Through the gateway's mailbox, pulled by the lamp.
	env, _ = swNode.Compose(message.Outgoing{To: lamp.ID(), Body: []byte("dim"), Seal: true})
	if res, err := swNode.Deposit(ctx, gwKey.ID(), env); err != nil || res.Err() != nil {
		t.Fatalf("deposit: %v %v", err, res)
	}
	if n, err := lampNode.Pull(ctx, gwKey.ID()); err != nil || n != 1 {
		t.Fatalf("pulled %d: %v", n, err)
	}
	select {
	case m := <-got:
		if string(m.Plaintext) != "dim" || m.Via != "mailbox" {
			t.Fatalf("lamp got %q via %s", m.Plaintext, m.Via)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered from the mailbox")
	}

	// The lamp's agent sleeps for an hour; its gateway wakes it for the
	// switch's urgent message, and it pulls the message at once. The
	// intruder's wake request is refused before it costs the lamp anything.
	lampDev, err := device.New(lamp, device.WithGateways(tn.gw(0)), device.WithTrust(tn.trust), device.WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer lampDev.Close()
	sensor, _ := device.NewSensor(device.ClassMotion, 1)
	actx, stop := context.WithCancel(ctx)
	defer stop()
	sent := make(chan struct{}, 10)
	go (&device.Agent{Device: lampDev, Sensors: []device.Sensor{sensor}, Wake: time.Hour, Mesh: lampNode, MailboxGateway: gwKey.ID(),
		OnSend: func(*device.Receipt) { sent <- struct{}{} }}).Run(actx)
	time.Sleep(300 * time.Millisecond) // the agent opens its wake channel
	env, _ = inNode.Compose(message.Outgoing{To: lamp.ID(), Body: []byte("wake up!"), Wake: true})
	if res, err := inNode.Deposit(ctx, gwKey.ID(), env); err != nil || res.Status != message.StatusNotGranted {
		t.Fatalf("intruder's wake: %v %v", err, res)
	}
	select {
	case <-sent:
		t.Fatal("the intruder woke the lamp")
	case <-time.After(time.Second):
	}
	env, _ = swNode.Compose(message.Outgoing{To: lamp.ID(), Body: []byte("urgent: off"), Seal: true, Wake: true})
	if res, err := swNode.Deposit(ctx, gwKey.ID(), env); err != nil || res.Err() != nil {
		t.Fatalf("urgent deposit: %v %v", err, res)
	}
	select {
	case m := <-got:
		if string(m.Plaintext) != "urgent: off" {
			t.Fatalf("lamp got %q", m.Plaintext)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the agent was not woken, or did not pull")
	}
}

// TestMailboxOverHTTP: devices with no mesh node leave and read mail over
// HTTP; the reader checks each message with proofs.
func TestMailboxOverHTTP(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	sw := tn.register(t, identity.Ed25519)
	lamp := tn.register(t, identity.P256)
	intruder := tn.register(t, identity.Ed25519)
	gwKey, err := devnet.Keystore(tn.d.Home()).Load(devnet.GatewayKey(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	tn.send(t, tn.admin, &record.GrantAdd{Grantor: "org:" + devnet.DemoOrg, Subject: "device:" + sw.ID(), Action: message.KindCommand, Resource: "device:" + lamp.ID()})
	tn.send(t, tn.admin, &record.DeviceUpdate{Device: lamp.ID(), Labels: map[string]string{message.LabelMailboxes: gwKey.ID()}})
	newDev := func(k *identity.Key) *device.Device {
		d, err := device.New(k, device.WithGateways(tn.gw(1)), device.WithTrust(tn.trust), device.WithStateDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	swDev, lampDev, inDev := newDev(sw), newDev(lamp), newDev(intruder)
	env, err := swDev.NewMessage(ctx, lamp.ID(), message.Outgoing{Kind: message.KindCommand, Body: []byte("close valve 2")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := swDev.Deposit(ctx, env); err != nil {
		t.Fatal(err)
	}
	if res, err := swDev.Deposit(ctx, env); !errors.Is(err, device.ErrRefused) || res.Status != message.StatusReplay {
		t.Fatalf("the same message again: %v %v", res, err)
	}
	bad, _ := inDev.NewMessage(ctx, lamp.ID(), message.Outgoing{Body: []byte("open everything")}, false)
	if res, err := inDev.Deposit(ctx, bad); !errors.Is(err, device.ErrRefused) || res.Status != message.StatusNotGranted {
		t.Fatalf("intruder: %v %v", res, err)
	}
	msgs, more, err := lampDev.Inbox(ctx)
	if err != nil || more || len(msgs) != 1 || string(msgs[0].Body) != "close valve 2" || msgs[0].From != sw.ID() || msgs[0].Kind != message.KindCommand {
		t.Fatalf("inbox: %+v %v %v", msgs, more, err)
	}
	if msgs, _, err := lampDev.Inbox(ctx); err != nil || len(msgs) != 0 {
		t.Fatalf("second read: %+v %v", msgs, err)
	}
}
