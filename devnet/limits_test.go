package devnet

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestDevnetLimits: a devnet's gateways take its Limits per device and its
// SourceLimits per address: with the address limit raised, two devices
// on 127.0.0.1 both pass, and each is still stopped at its own burst.
func TestDevnetLimits(t *testing.T) {
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	dev := ratelimit.DefaultLimits()
	dev.MsgsPerSec, dev.Burst = 0.001, 4 // no refill during the test
	d, err := Start(Config{Home: t.TempDir(), BasePort: base, FastBlocks: true, NoSync: true, Limits: dev, SourceLimits: SourceLimitsFor(1000, 2000)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	ctx := testutil.Context(t, 2*time.Minute)
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	admin, err := Keystore(d.Home()).Load(DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]*identity.Key, 2)
	var regs []*record.DeviceRegister
	for i := range keys {
		keys[i], _ = identity.GenerateKey(identity.Ed25519)
		proof, _ := keys[i].Sign(record.PossessionMessage(d.ChainID(), DemoOrg, keys[i].ID()))
		regs = append(regs, &record.DeviceRegister{Org: DemoOrg, Device: keys[i].ID(), Class: "sensor", Proof: proof})
	}
	if _, err := device.RegisterAll(ctx, client.New(d.APIURL(0)), admin, d.ChainID(), regs); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitForHeight(ctx, d.App(0).Height()+1); err != nil { // every node has applied the registrations
		t.Fatal(err)
	}
	post := func(k *identity.Key, seq uint64) (int, string) {
		v := 20.5
		raw, err := reading.Sign(k, k.ID(), reading.Reading{Seq: seq, Time: time.Now(), ContentType: "temperature/celsius", Value: &v})
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.Post(d.APIURL(0)+"/v1/readings", "application/cose", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		for i, k := range keys {
			if code, body := post(k, seq); code != http.StatusAccepted {
				t.Fatalf("device %d's envelope %d (8 from 127.0.0.1 in all, within each device's burst of 4): %d %s", i, seq, code, body)
			}
		}
	}
	code, body := post(keys[0], 5)
	if code == http.StatusAccepted || !strings.Contains(body, "device") {
		t.Fatalf("device 0's 5th envelope, over its burst: %d %s; want a refusal by the per-device limit", code, body)
	}
	if st := d.Gateway(0).Stats(); st.Accepted != 8 || st.Limited != 1 {
		t.Errorf("gateway 0: %d stored, %d refused by the limits; want 8 and 1", st.Accepted, st.Limited)
	}
}
