package device_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/record"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/reading"
)

func temp(v float64) reading.Reading {
	return reading.Reading{ContentType: "temperature/celsius", Value: &v}
}

// waitAnchored asks WasAnchored until the reading is anchored.
func waitAnchored(t *testing.T, ctx context.Context, d *device.Device, rc *device.Receipt) *device.Anchoring {
	t.Helper()
	for {
		a, err := d.WasAnchored(ctx, rc)
		if err != nil {
			t.Fatalf("WasAnchored: %v", err)
		}
		if a.Anchored {
			return a
		}
		select {
		case <-ctx.Done():
			t.Fatal("the reading was never anchored")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestDevice runs a device against a real devnet through a dead gateway
// and a lying one: it sends readings (one signature per batch), checks a
// sender's record and grant and its own reading's anchor with proofs, ends
// up on the honest gateway, and after a restart with no network at all
// still has its trusted header and sequence numbers.
func TestDevice(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	me := tn.register(t, identity.Ed25519)
	sender := tn.register(t, identity.P256)
	tn.send(t, me, &record.GrantAdd{Grantor: "device:" + me.ID(), Subject: "device:" + sender.ID(), Action: "message", Resource: "device:" + me.ID()})
	stranger, _ := identity.GenerateKey(identity.Ed25519)

	dir := t.TempDir()
	lying := liar(t, tn.d.APIURL(1), lieHeader)
	honest := tn.gw(2)
	d, err := device.New(me, device.WithGateways(deadGateway(t), device.Gateway{API: lying.URL}, honest),
		device.WithChainID(tn.d.ChainID()), device.WithStateDir(dir), device.WithTrust(tn.trust))
	if err != nil {
		t.Fatal(err)
	}

	rc, err := d.SendBatch(ctx, []reading.Reading{temp(21.5), temp(21.625), temp(22)})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if env, err := reading.Decode(rc.Envelope); err != nil || !env.Batch || len(env.Readings) != 3 || rc.Index < 0 {
		t.Fatalf("receipt %+v: %v", rc, err)
	}
	if rc.Gateway.API != lying.URL {
		t.Errorf("sent to %s; want the first gateway that answers (%s)", rc.Gateway.API, lying.URL)
	}

	ok, err := d.IsActiveAndGranted(ctx, sender.ID(), "message")
	if err != nil || !ok {
		t.Fatalf("IsActiveAndGranted(granted sender) = %v, %v", ok, err)
	}
	if got := d.Gateway(); got != honest {
		t.Errorf("after the lying gateway, the device uses %s; want %s", got.API, honest.API)
	}
	for _, c := range []struct {
		who, action string
	}{{sender.ID(), "command"}, {stranger.ID(), "message"}} {
		a, err := d.Authorize(ctx, c.who, c.action)
		if err != nil || a.Granted {
			t.Errorf("Authorize(%s, %s) = %+v, %v; want not granted", c.who, c.action, a, err)
		}
	}
	tn.send(t, tn.admin, record.NewDeviceStatus(sender.ID(), record.StatusSuspended, "test"))
	if a, err := d.Authorize(ctx, sender.ID(), "message"); err != nil || a.Active() || a.Status != record.StatusSuspended {
		t.Errorf("Authorize(suspended sender) = %+v, %v", a, err)
	}

	// The batch went to the lying gateway, which stores it honestly; its
	// anchor checks out with headers from the honest one.
	a := waitAnchored(t, ctx, d, rc)
	if a.Height <= 0 || a.Index != rc.Index {
		t.Errorf("anchoring = %+v", a)
	}

	// Restart with every gateway dead: the trusted header and sequence
	// numbers come back from the state directory.
	h, state := d.TrustedHeight(), mustState(t, d)
	next := d.NextSeq()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, device.TrustedFile))
	if err != nil || fi.Size() > 64<<10 {
		t.Fatalf("trusted state file: %v, %v", fi, err)
	}
	t.Logf("persistent state: %s %d bytes (4 validators), trusted height %d", device.TrustedFile, fi.Size(), h)
	d2, err := device.New(me, device.WithGateways(deadGateway(t)), device.WithStateDir(dir))
	if err != nil {
		t.Fatalf("restart with no network: %v", err)
	}
	if d2.TrustedHeight() != h || !bytes.Equal(mustState(t, d2), state) {
		t.Errorf("after restart: trusted height %d; want %d (same state)", d2.TrustedHeight(), h)
	}
	if c, _ := d2.ChainID(ctx); c != tn.d.ChainID() {
		t.Errorf("chain id after restart = %q", c)
	}
	if s := d2.NextSeq(); s < next {
		t.Errorf("after restart the next seq is %d, below %d", s, next)
	}
	if _, err := d2.Send(ctx, temp(1)); err == nil {
		t.Error("Send with every gateway dead succeeded")
	}
	// Back on the network it resumes from the saved header.
	d3, err := device.New(me, device.WithGateways(honest), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	if ok, err := d3.IsActiveAndGranted(ctx, me.ID(), "message"); err != nil || ok {
		t.Errorf("IsActiveAndGranted(self, no grant) = %v, %v", ok, err)
	}
	if d3.TrustedHeight() <= h {
		t.Errorf("the resumed light client did not move on from %d", h)
	}
}

func mustState(t *testing.T, d *device.Device) []byte {
	t.Helper()
	b, err := d.TrustedState()
	if err != nil || b == nil {
		t.Fatalf("trusted state: %v", err)
	}
	return b
}

// TestLyingGateways puts a gateway that lies in each way first: the
// device detects it, uses the next one, and gets the true answer.
func TestLyingGateways(t *testing.T) {
	tn := startNet(t)
	me := tn.register(t, identity.Ed25519)
	sender := tn.register(t, identity.Ed25519)
	tn.send(t, me, &record.GrantAdd{Grantor: "device:" + me.ID(), Subject: "device:" + sender.ID(), Action: "message", Resource: "device:" + me.ID()})
	for _, how := range []lie{lieHeader, lieProof, lieValidators} {
		t.Run(string(how), func(t *testing.T) {
			ctx := ctxT(t)
			bad := liar(t, tn.d.APIURL(0), how)
			// The device trusts a header already (provisioned through an
			// honest gateway): the lies are about newer ones.
			dir := t.TempDir()
			d0, err := device.New(me, device.WithGateways(tn.gw(3)), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust), device.WithStateDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := d0.IsActiveAndGranted(ctx, sender.ID(), "message"); err != nil || !ok {
				t.Fatalf("through the honest gateway: %v, %v", ok, err)
			}
			trusted := d0.TrustedHeight()
			d0.Close()
			// A newer state than the trusted header covers, so that the
			// device needs a header from the liar (without a new block it
			// would prove from the header it trusts, and no lie be told).
			if err := tn.d.WaitForHeight(ctx, trusted+2); err != nil {
				t.Fatal(err)
			}
			// Alone, the liar is caught.
			alone, err := device.New(me, device.WithGateways(device.Gateway{API: bad.URL}), device.WithStateDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			h := alone.TrustedHeight()
			_, err = alone.IsActiveAndGranted(ctx, sender.ID(), "message")
			if err == nil {
				t.Fatalf("a %s was not detected", how)
			}
			if how != lieProof && alone.TrustedHeight() != h { // a proof lie may come with a true (verified) header
				t.Errorf("the trusted header moved from %d to %d on a lie", h, alone.TrustedHeight())
			}
			t.Logf("detected: %v", err)
			if how != lieProof && !errors.Is(err, lightclient.ErrBadHeader) && !errors.Is(err, lightclient.ErrTrustedHashMismatch) && !errors.Is(err, lightclient.ErrNotVerified) {
				t.Errorf("error %v is not a light-client refusal", err)
			}
			if how == lieProof && !errors.Is(err, record.ErrBadProof) {
				t.Errorf("error %v is not a proof refusal", err)
			}
			// With an honest one behind it, the device gets the truth.
			d, err := device.New(me, device.WithGateways(device.Gateway{API: bad.URL}, tn.gw(3)), device.WithStateDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := d.IsActiveAndGranted(ctx, sender.ID(), "message"); err != nil || !ok {
				t.Fatalf("with an honest gateway after the liar: %v, %v", ok, err)
			}
			if d.Gateway().API != tn.d.APIURL(3) {
				t.Errorf("device uses %s after the lie", d.Gateway().API)
			}
		})
	}
}

// TestTransports sends over device.MQTT (Paho) and device.CoAP (go-coap) to a devnet
// gateway, and finds and verifies each reading's anchor.
func TestTransports(t *testing.T) {
	tn := startNet(t)
	me := tn.register(t, identity.P256)
	for _, tr := range []device.Transport{device.MQTT, device.CoAP} {
		t.Run(string(tr), func(t *testing.T) {
			ctx := ctxT(t)
			d, err := device.New(me, device.WithGateways(deadGateway(t), tn.gw(1)), device.WithTransport(tr), device.WithTrust(tn.trust), device.WithStateDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			rc, err := d.Send(ctx, temp(20))
			if err != nil {
				t.Fatalf("Send over %s: %v", tr, err)
			}
			if _, err := d.SendBatch(ctx, []reading.Reading{temp(20.5), temp(21)}); err != nil {
				t.Fatalf("SendBatch over %s: %v", tr, err)
			}
			if rc.Index != -1 {
				t.Errorf("index %d known over %s", rc.Index, tr)
			}
			a := waitAnchored(t, ctx, d, rc)
			if a.Index < 0 || !a.Anchored {
				t.Errorf("anchoring = %+v", a)
			}
			tok, err := d.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, claims, err := identity.ParseCWT(tok); err != nil || claims.Subject != me.ID() {
				t.Errorf("token: %+v, %v", claims, err)
			}
		})
	}
}

// TestStaleGateway: a gateway that answers from an old, genuine state (the
// sender still active, before its suspension) is refused once the device
// trusts a newer header, and the next gateway gives the current answer.
func TestStaleGateway(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	me := tn.register(t, identity.Ed25519)
	sender := tn.register(t, identity.Ed25519)
	tn.send(t, me, &record.GrantAdd{Grantor: "device:" + me.ID(), Subject: "device:" + sender.ID(), Action: "message", Resource: "device:" + me.ID()})
	old := tn.d.App(0).Height() // the sender is active and granted here
	tn.send(t, tn.admin, record.NewDeviceStatus(sender.ID(), record.StatusSuspended, "stolen"))
	if err := tn.d.WaitForHeight(ctx, old+device.DefaultMaxLag+3); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	honest := tn.gw(2)
	d0, err := device.New(me, device.WithGateways(honest), device.WithTrust(tn.trust), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := d0.IsActiveAndGranted(ctx, sender.ID(), "message"); err != nil || ok {
		t.Fatalf("suspended sender through the honest gateway: %v, %v", ok, err)
	}
	d0.Close()
	stale := staleLiar(t, tn.d.APIURL(1), old)
	// Without the freshness bound the old state would pass: its proofs are
	// genuine, and old headers verify backwards from the trusted one.
	lax, err := device.New(me, device.WithGateways(device.Gateway{API: stale.URL}), device.WithStateDir(t.TempDir()), device.WithTrust(tn.trust), device.WithFreshness(1<<40, 0))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := lax.IsActiveAndGranted(ctx, sender.ID(), "message"); err != nil || !ok {
		t.Fatalf("the stale answer without freshness bounds: %v, %v; want the (old) yes", ok, err)
	}
	alone, err := device.New(me, device.WithGateways(device.Gateway{API: stale.URL}), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := alone.IsActiveAndGranted(ctx, sender.ID(), "message"); !errors.Is(err, device.ErrStale) {
		t.Fatalf("an answer from the state of block %d: %v, %v; want ErrStale", old, ok, err)
	}
	d, err := device.New(me, device.WithGateways(device.Gateway{API: stale.URL}, honest), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := d.Authorize(ctx, sender.ID(), "message"); err != nil || a.Status != record.StatusSuspended {
		t.Fatalf("with an honest gateway after the stale one: %+v, %v", a, err)
	}
}
