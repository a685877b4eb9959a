package modbus_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/gateway/modbus"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// A Modbus sensor registered on the ledger as attested by a devnet's
// gateway: its polled values become readings signed by the gateway,
// stored under the sensor's id, and their proofs verify end to end and
// name the gateway as the attester. Suspended on the ledger, its readings
// are refused like any device's.
func TestAttestedReadings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 1, BasePort: base, FastBlocks: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	ks := devnet.Keystore(home)
	admin, err := ks.Load(devnet.DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := ks.Load(devnet.GatewayKey(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The sensor's id: a key made only to register it (it never signs a
	// reading), attested by the gateway.
	sk, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	pop, err := sk.Sign(record.PossessionMessage(d.ChainID(), devnet.DemoOrg, sk.ID()))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(d.APIURL(0))
	if _, err := device.RegisterAll(ctx, c, admin, d.ChainID(), []*record.DeviceRegister{{Org: devnet.DemoOrg, Device: sk.ID(),
		Class: "boiler", Proof: pop, AttestedBy: gw.ID()}}); err != nil {
		t.Fatal(err)
	}

	p := &plc{holding: map[uint16]uint16{}, input: map[uint16]uint16{}}
	p.set(p.input, 30, 215)
	p.set(p.holding, 100, 0x0002, 0x0001)
	f := math.Float32bits(1.25)
	p.set(p.holding, 200, uint16(f>>16), uint16(f))
	srv, addr := serve(t, p, "127.0.0.1:0")
	defer func() { srv.Stop() }()
	cfg, err := modbus.ParseConfig([]byte(strings.Replace(strings.Replace(example, "10.0.0.7:502", addr, 1), `interval = "10s"`,
		`interval = "200ms"`+"\ndevice = \""+sk.ID()+"\"", 1)))
	if err != nil {
		t.Fatal(err)
	}
	ingest := func(ctx context.Context, dev string, raw []byte) error {
		_, err := d.Gateway(0).IngestIndex(ctx, dev, raw, "modbus")
		return err
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- modbus.NewPoller(cfg, modbus.Attest(pctx, gw, cfg, ingest, nil), nil).Run(pctx) }()
	defer func() { stop(); <-done }()

	reader := c.WithIdentity(&client.Identity{Key: admin})
	var page struct {
		Items []client.ReadingItem `json:"items"`
	}
	deadline := time.Now().Add(time.Minute)
	for len(page.Items) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no readings of the sensor stored (%d)", len(page.Items))
		}
		time.Sleep(100 * time.Millisecond)
		if err := reader.Get(ctx, "/v1/readings?device="+sk.ID(), &page); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]float64{}
	for _, it := range page.Items[:3] {
		if it.Device != sk.ID() || it.Value == nil {
			t.Fatalf("%+v", it)
		}
		got[it.ContentType] = *it.Value
	}
	if got["temperature/celsius"] != 21.5 || got["energy/kwh"] != 65538 || got["pressure/bar"] != 1.25 {
		t.Fatalf("stored %v", got)
	}
	pr, err := reader.WaitReadingProof(ctx, page.Items[0].Index, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	v, err := reader.VerifyReading(ctx, d.ChainID(), pr)
	if err != nil {
		t.Fatal(err)
	}
	if v.Envelope.Device != sk.ID() || v.Envelope.Attester != gw.ID() {
		t.Fatalf("the proof says device %s attested by %q; want %s by the gateway %s", v.Envelope.Device, v.Envelope.Attester, sk.ID(), gw.ID())
	}

	// Suspended like any device: the gateway refuses its readings.
	if res, err := c.Send(ctx, admin, "", record.NewDeviceStatus(sk.ID(), record.StatusSuspended, "test"), true); err != nil || res.Code != 0 {
		t.Fatalf("suspend: %+v, %v", res, err)
	}
	var refused error
	for i := 0; refused == nil; i++ {
		if i == 200 {
			t.Fatal("the suspended sensor's readings are still taken")
		}
		v := 1.0
		raw, err := reading.SignAttested(gw, gw.ID(), sk.ID(), reading.Reading{ContentType: "temperature/celsius", Value: &v, Seq: uint64(time.Now().UnixMicro()), Time: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		refused = ingest(ctx, sk.ID(), raw)
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("suspended: %v", refused)
}
