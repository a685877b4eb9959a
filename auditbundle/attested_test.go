package auditbundle

import (
	"context"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestExportAttested: readings a gateway attested for a sensor too weak
// to sign (a Modbus sensor) are counted apart in the verified bundle, so
// an auditor never takes them for device-signed ones.
func TestExportAttested(t *testing.T) {
	tn := startNet(t, 1, ratelimit.Limits{})
	ctx := testutil.Context(t, 2*time.Minute)
	signer := tn.register(t, 1)[0]
	gw, err := devnet.Keystore(tn.d.Home()).Load(devnet.GatewayKey(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	sensor := testutil.Key(t, identity.Ed25519) // its id only: it never signs
	pop, _ := sensor.Sign(record.PossessionMessage(tn.d.ChainID(), devnet.DemoOrg, sensor.ID()))
	if _, err := device.RegisterAll(ctx, client.New(tn.url), tn.admin, tn.d.ChainID(), []*record.DeviceRegister{{Org: devnet.DemoOrg,
		Device: sensor.ID(), Class: "boiler", Proof: pop, AttestedBy: gw.ID()}}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Truncate(time.Millisecond)
	tn.send(t, signer, 1, at, 20.5)
	v1, v2 := 61.0, 62.0
	raw, err := reading.SignAttested(gw, gw.ID(), sensor.ID(),
		reading.Reading{Seq: 1, Time: at, ContentType: "temperature/celsius", Value: &v1},
		reading.Reading{Seq: 2, Time: at.Add(time.Millisecond), ContentType: "temperature/celsius", Value: &v2})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := tn.d.Gateway(0).IngestIndex(ctx, sensor.ID(), raw, "modbus")
	if err != nil {
		t.Fatal(err)
	}
	tn.waitAnchored(t, ctx, idx)

	b, err := Export(ctx, tn.adminClient(), ExportOptions{Org: devnet.DemoOrg, Devices: []string{signer.ID(), sensor.ID()}, From: tn.start, To: at.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Verify(context.Background(), b, VerifyOptions{Trust: tn.trust(t, b.TrustHeight)})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]DeviceSummary{}
	for _, d := range s.Devices {
		per[d.ID] = d
	}
	if d := per[sensor.ID()]; d.Readings != 2 || d.Attested != 2 {
		t.Errorf("the attested sensor: %d readings, %d attested; want 2 and 2", d.Readings, d.Attested)
	}
	if d := per[signer.ID()]; d.Readings != 1 || d.Attested != 0 {
		t.Errorf("the device-signed sensor: %d readings, %d attested; want 1 and 0", d.Readings, d.Attested)
	}
	if len(s.SignersOther) != 1 || s.SignersOther[0] != gw.ID() {
		t.Errorf("signers other than the devices: %v; want the gateway", s.SignersOther)
	}
}
