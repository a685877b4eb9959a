package relay_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
	"github.com/thingnet/thingnet/relay"
)

// TestRelay: readings a sensor sends to a gateway fire the thermostat with
// no one but the relayer acting: a cool reading fires nothing, a hot one
// commands the cooler "on", the next cool one "off".
func TestRelay(t *testing.T) {
	home := t.TempDir()
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 1, BasePort: base, FastBlocks: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	admin, err := devnet.Keystore(home).Load(devnet.DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(d.APIURL(0))
	must := func(m record.Msg) {
		t.Helper()
		if _, err := c.Send(ctx, admin, "", m, true); err != nil {
			t.Fatalf("%s: %v", m.Kind(), err)
		}
	}
	var devs [2]*identity.Key
	for i := range devs {
		devs[i], _ = identity.GenerateKey(identity.Ed25519)
		proof, _ := devs[i].Sign(record.PossessionMessage(d.ChainID(), devnet.DemoOrg, devs[i].ID()))
		must(&record.DeviceRegister{Org: devnet.DemoOrg, Device: devs[i].ID(), Proof: proof})
	}
	sensor, cooler := devs[0], devs[1]
	src, err := os.ReadFile(filepath.Join("..", "examples", "agreements", "thermostat.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	must(&record.AgreementDeploy{Source: src, Parties: map[string]string{
		"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:demo", "seller": "org:demo"}})

	// The relayer reads the sensor's readings: it is a device of demo with
	// a read grant on the sensor (the read rule serves values to nobody else).
	relayKey, _ := identity.GenerateKey(identity.Ed25519)
	proof, _ := relayKey.Sign(record.PossessionMessage(d.ChainID(), devnet.DemoOrg, relayKey.ID()))
	must(&record.DeviceRegister{Org: devnet.DemoOrg, Device: relayKey.ID(), Class: "relay", Proof: proof})
	must(&record.GrantAdd{Grantor: "org:demo", Subject: "device:" + relayKey.ID(), Action: record.ActionRead, Resource: "device:" + sensor.ID() + "/readings"})
	r, err := relay.New(relay.Config{Client: c, Key: relayKey, Agreements: []uint64{1}, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()

	for i, v := range []float64{25, 33, 20} {
		raw, err := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: uint64(i + 1), Time: time.UnixMilli(1_700_000_000_000 + int64(i)), ContentType: "temperature/celsius", Value: &v})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Gateway(0).IngestIndex(ctx, sensor.ID(), raw, "test"); err != nil {
			t.Fatal(err)
		}
	}
	var cmds []record.Command
	for len(cmds) < 2 {
		if cmds, err = c.Commands(ctx, cooler.ID(), 0); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the cooler got %d commands; want 2", len(cmds))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if string(cmds[0].Payload) != "on" || string(cmds[1].Payload) != "off" {
		t.Fatalf("commands %q, %q; want on, off", cmds[0].Payload, cmds[1].Payload)
	}
	a, err := c.Agreement(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.State["commands"] != float64(1) || a.History != 3 { // deploy, hot, cool: the reading of 25 fired nothing
		t.Fatalf("state %v after %d history entries", a.State, a.History)
	}
}
