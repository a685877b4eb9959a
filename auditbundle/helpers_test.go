package auditbundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// testNet is a devnet with the demo organisation's admin and devices that
// sent readings.
type testNet struct {
	d       *devnet.Devnet
	url     string
	admin   *identity.Key
	devices []*identity.Key
	start   time.Time // every reading is timed at or after it
}

// startNet starts a devnet of validators nodes, stopped when the test ends.
func startNet(t testing.TB, validators int, limits ratelimit.Limits) *testNet {
	t.Helper()
	base, err := chain.FreePortBase(validators)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	c := devnet.Config{Home: home, Validators: validators, BasePort: base, FastBlocks: true, NoSync: true}
	if limits != (ratelimit.Limits{}) {
		c.Limits, c.SourceLimits = limits, limits
	}
	d, err := devnet.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx := testutil.Context(t, time.Minute)
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	admin, err := devnet.Keystore(home).Load(devnet.DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testNet{d: d, url: d.APIURL(0), admin: admin, start: time.Now().Add(-time.Second).Truncate(time.Millisecond)}
}

// register registers n devices of the demo organisation.
func (tn *testNet) register(t testing.TB, n int) []*identity.Key {
	t.Helper()
	var regs []*record.DeviceRegister
	var keys []*identity.Key
	for range n {
		k := testutil.Key(t, identity.Ed25519)
		pop, err := k.Sign(record.PossessionMessage(tn.d.ChainID(), devnet.DemoOrg, k.ID()))
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, &record.DeviceRegister{Org: devnet.DemoOrg, Device: k.ID(), Class: "sensor", Proof: pop})
		keys = append(keys, k)
	}
	if _, err := device.RegisterAll(testutil.Context(t, time.Minute), client.New(tn.url), tn.admin, tn.d.ChainID(), regs); err != nil {
		t.Fatal(err)
	}
	tn.devices = append(tn.devices, keys...)
	return keys
}

// send sends one envelope of readings seq, seq+1, ... of k, timed from at
// a millisecond apart, and returns its log index.
func (tn *testNet) send(t testing.TB, k *identity.Key, seq uint64, at time.Time, values ...float64) {
	t.Helper()
	var rs []reading.Reading
	for i, v := range values {
		rs = append(rs, reading.Reading{Seq: seq + uint64(i), Time: at.Add(time.Duration(i) * time.Millisecond), ContentType: "temperature/celsius", Value: &v})
	}
	raw, err := reading.Sign(k, k.ID(), rs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := post(tn.url, raw); err != nil {
		t.Fatal(err)
	}
}

func post(url string, raw []byte) error {
	res, err := http.Post(url+"/v1/readings", "application/cose", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/readings: %s: %s", res.Status, b)
	}
	return nil
}

// waitAnchored waits until log entry last is anchored (so are those before).
func (tn *testNet) waitAnchored(t testing.TB, ctx context.Context, last uint64) {
	t.Helper()
	if _, err := tn.adminClient().WaitReadingProof(ctx, last, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// adminClient reads as the demo organisation's admin.
func (tn *testNet) adminClient() *client.Client {
	return client.New(tn.url).WithIdentity(&client.Identity{Key: tn.admin, ChainID: tn.d.ChainID()})
}

// trust is the trusted header a bundle was built from, as an auditor
// would get its hash: from the node.
func (tn *testNet) trust(t testing.TB, height int64) lightclient.TrustOptions {
	t.Helper()
	h, err := waitHeader(testutil.Context(t, 30*time.Second), client.New(tn.url), height)
	if err != nil {
		t.Fatal(err)
	}
	return lightclient.TrustOptions{Height: height, Hash: h.SignedHeader.Hash()}
}
