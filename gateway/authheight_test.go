package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// silentLedger lets a gateway read the ledger but submit nothing: the test
// decides when the log is anchored (anchorNow).
type silentLedger struct{ NodeLedger }

func (silentLedger) Submit(context.Context, []byte) error {
	return errors.New("test: this gateway submits nothing; the test anchors")
}

// quietGateway replaces the test net's gateway with one that never anchors
// by itself (the test anchors with anchorNow), in a fresh directory.
func (tn *testNet) quietGateway(t *testing.T) {
	t.Helper()
	tn.gw.Close()
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "quiet-gateway"), Key: tn.gwKey, AnchorInterval: time.Hour},
		silentLedger{NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}})
	if err != nil {
		t.Fatal(err)
	}
	tn.gw = gw
	t.Cleanup(func() { gw.Close() })
}

// anchorNow anchors the gateway's log at its current size, signed by the
// gateway's key as its duty loop would, and returns the anchor's height.
func (tn *testNet) anchorNow(t *testing.T, from uint64) int64 {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	size, root := tn.gw.Log().Root()
	m := &record.DataAnchor{Size: size, Root: root[:]}
	if from > 0 {
		p, err := tn.gw.Log().ConsistencyProof(from, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p {
			m.Consistency = append(m.Consistency, h[:])
		}
	}
	if _, err := tn.client.Send(ctx, tn.gwKey, "", m, true); err != nil {
		t.Fatalf("anchoring size %d: %v", size, err)
	}
	st, err := tn.app.View(0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.Anchor(tn.gwKey.ID())
	if err != nil || a.Size != size {
		t.Fatalf("anchor after committing size %d: %+v, %v", size, a, err)
	}
	return a.Height
}

// TestReadingProvableAfterSuspension is issue 3: a reading the gateway
// accepted while its device was active stays provable when the device is
// suspended before the anchor, because the log entry records the height at
// which the gateway authenticated it, and the proof shows the device's
// record at that height. A gateway that backdates an entry to a height at
// which the device was not registered is caught.
func TestReadingProvableAfterSuspension(t *testing.T) {
	tn := startTestNet(t)
	tn.quietGateway(t)
	ctx := testutil.Context(t, time.Minute)

	raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), temp(1, 21.5))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := tn.post(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := tn.gw.Log().Entry(idx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := reading.DecodeEntry(entry)
	if err != nil || e.Layout != 3 || e.AuthHeight < 1 || e.ReceivedAt < 1 {
		t.Fatalf("stored entry: %+v, %v; want layout 3 with the authentication height and receive time", e, err)
	}

	// Suspended before the anchor.
	if _, err := tn.client.Send(ctx, tn.admin, "", record.NewDeviceStatus(tn.sensor.ID(), record.StatusSuspended, "test"), true); err != nil {
		t.Fatal(err)
	}
	anchorHeight := tn.anchorNow(t, 0)
	st, err := tn.app.View(anchorHeight)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := st.Device(tn.sensor.ID()); err != nil || d.Status != record.StatusSuspended {
		t.Fatalf("sensor at the anchor's height %d: %+v, %v; want suspended", anchorHeight, d, err)
	}

	p := tn.proof(t, idx)
	if held := heldEvent(t, p); p.AuthHeight != e.AuthHeight || held.Height > e.AuthHeight || held.Status != record.StatusActive {
		t.Fatalf("proof: auth height %d, signer's event in force %+v; want auth height %d and an active event at or before it", p.AuthHeight, held, e.AuthHeight)
	}
	v, err := tn.client.VerifyReading(ctx, "gw-test", p)
	if err != nil {
		t.Fatalf("a reading accepted before its device was suspended does not verify: %v", err)
	}
	if v.AuthHeight != e.AuthHeight || v.AnchorHeight != anchorHeight {
		t.Errorf("verified: auth %d, anchor %d; want %d, %d", v.AuthHeight, v.AnchorHeight, e.AuthHeight, anchorHeight)
	}

	// The authentication height is covered by the anchored root: changing
	// it breaks the inclusion, and a height at or after the anchor is
	// refused outright.
	for _, h := range []int64{e.AuthHeight - 1, e.AuthHeight + 1} {
		bad := *p
		bad.AuthHeight = h
		if _, err := tn.client.VerifyReading(ctx, "gw-test", &bad); err == nil {
			t.Errorf("a proof claiming authentication at height %d (entry says %d) verified", h, e.AuthHeight)
		}
	}
	bad := *p
	bad.AuthHeight = anchorHeight
	if _, err := tn.client.VerifyReading(ctx, "gw-test", &bad); err == nil || !strings.Contains(err.Error(), "not before its anchor") {
		t.Errorf("authentication at the anchor's height: %v; want refused as not before its anchor", err)
	}

	// A lying gateway: a device registered late, and an entry that claims
	// the gateway authenticated its reading at height 1, before it existed.
	late := testutil.Key(t, identity.Ed25519)
	pop, _ := late.Sign(record.PossessionMessage("gw-test", "acme", late.ID()))
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.DeviceRegister{Org: "acme", Device: late.ID(), Proof: pop}, true); err != nil {
		t.Fatal(err)
	}
	lateRaw, err := reading.Sign(late, late.ID(), temp(1, 30))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := reading.NewEntry(1, time.Now(), lateRaw)
	if err != nil {
		t.Fatal(err)
	}
	size := tn.gw.Log().Size()
	fi, err := tn.gw.Log().Append([][]byte{forged})
	if err != nil {
		t.Fatal(err)
	}
	tn.anchorNow(t, size)
	fp, err := tn.client.Reading(ctx, fi)
	if err != nil {
		t.Fatal(err)
	}
	if fp.AuthHeight != 1 {
		t.Fatalf("forged entry: auth height %d, want 1", fp.AuthHeight)
	}
	// No proof can be made of it (the reading itself is still answered).
	if err := fp.Err(); !errors.Is(err, proof.ErrUnprovable) || !strings.Contains(err.Error(), "was not registered at height 1") {
		t.Errorf("backdated entry's proof error: %v; want unprovable, not registered at height 1", err)
	}
	if _, err := tn.client.VerifyReading(ctx, "gw-test", fp); err == nil || !strings.Contains(err.Error(), "was not registered at height 1") {
		t.Errorf("backdated entry: %v; want refused as not registered at height 1", err)
	}
	// A lying gateway's proof of it as a layout 1 entry, with the device's
	// history at the anchor (where it is registered): the entry is not
	// what the anchored root covers, so it cannot be swapped in.
	st, err = tn.app.View(0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.AnchorCovering(tn.gwKey.ID(), fi)
	if err != nil {
		t.Fatal(err)
	}
	swapped := &proof.Reading{Gateway: tn.gwKey.ID(), Index: fi, Envelope: fp.Envelope, Anchor: *a, Height: st.Height}
	incl, err := tn.gw.Log().InclusionProof(fi, a.Size)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range incl {
		swapped.Inclusion = append(swapped.Inclusion, h[:])
	}
	if swapped.AnchorProof, err = tn.app.Prove(record.AnchorAtKey(a.Gateway, a.Size), st.Height); err != nil {
		t.Fatal(err)
	}
	if swapped.Signer, err = ProveSigner(tn.app, st, late.ID(), a.Height); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.client.VerifyReading(ctx, "gw-test", swapped); err == nil || !strings.Contains(err.Error(), "inclusion") {
		t.Errorf("the backdated entry as a layout 1 entry: %v; want refused: not included", err)
	}
}

// TestLayout1EntriesStillVerify: entries written before layout 2 (the
// envelope alone) verify as before, with the signer at the anchor's height.
func TestLayout1EntriesStillVerify(t *testing.T) {
	tn := startTestNet(t)
	tn.quietGateway(t)
	ctx := testutil.Context(t, time.Minute)
	raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), temp(1, 20))
	if err != nil {
		t.Fatal(err)
	}
	i, err := tn.gw.Log().Append([][]byte{raw})
	if err != nil {
		t.Fatal(err)
	}
	h := tn.anchorNow(t, 0)
	p := tn.proof(t, i)
	if held := heldEvent(t, p); p.AuthHeight != 0 || p.Anchor.Height != h || held.Height > h {
		t.Fatalf("layout 1 proof: auth height %d, anchor %d, signer's event in force %+v; want 0, the anchor's %d, an event at or before it", p.AuthHeight, p.Anchor.Height, held, h)
	}
	if _, err := tn.client.VerifyReading(ctx, "gw-test", p); err != nil {
		t.Fatalf("layout 1 entry: %v", err)
	}
	// Suspended before anchoring: a layout 1 entry cannot say when it was
	// authenticated, so it is refused as before.
	raw2, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(2, 20))
	size := tn.gw.Log().Size()
	i2, err := tn.gw.Log().Append([][]byte{raw2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", record.NewDeviceStatus(tn.sensor.ID(), record.StatusSuspended, "test"), true); err != nil {
		t.Fatal(err)
	}
	tn.anchorNow(t, size)
	if _, err := tn.client.VerifyReading(ctx, "gw-test", tn.proof(t, i2)); err == nil || !strings.Contains(err.Error(), "was suspended") {
		t.Errorf("layout 1 entry of a device suspended before the anchor: %v; want refused as suspended", err)
	}
}

// TestCheckLog checks a gateway's stopped log against the ledger: clean
// as written; a backdated entry (its signer not registered at the height
// it claims) is named, and so is an entry whose payload was altered after
// the anchor, with the first anchor it breaks.
func TestCheckLog(t *testing.T) {
	tn := startTestNet(t)
	tn.quietGateway(t)
	for seq := uint64(1); seq <= 3; seq++ {
		raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), temp(seq, 20))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tn.post(t, raw); err != nil {
			t.Fatal(err)
		}
	}
	first := tn.anchorNow(t, 0)
	check := func() *LogReport {
		t.Helper()
		st, err := tn.app.View(0)
		if err != nil {
			t.Fatal(err)
		}
		tn.gw.Close() // the check reads a stopped gateway's store
		rep, err := CheckLog(filepath.Join(tn.dir, "quiet-gateway"), tn.gwKey.ID(), st)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := check(); len(rep.Findings) != 0 || rep.Size != 3 || rep.Anchors != 1 || rep.FirstBadAnchor != nil {
		t.Fatalf("untouched log: %+v", rep)
	}

	// A backdated entry, anchored: the log is consistent, the signer is not.
	tn.quietGateway2(t)
	late := testutil.Key(t, identity.Ed25519)
	proof, _ := late.Sign(record.PossessionMessage("gw-test", "acme", late.ID()))
	if _, err := tn.client.Send(testutil.Context(t, time.Minute), tn.admin, "", &record.DeviceRegister{Org: "acme", Device: late.ID(), Proof: proof}, true); err != nil {
		t.Fatal(err)
	}
	raw, _ := reading.Sign(late, late.ID(), temp(1, 30))
	forged, _ := reading.NewEntry(1, time.Now(), raw)
	if _, err := tn.gw.Log().Append([][]byte{forged}); err != nil {
		t.Fatal(err)
	}
	tn.anchorNow(t, 3)
	rep := check()
	if len(rep.Findings) != 1 || rep.Findings[0].Index != 3 || rep.Findings[0].What != FindSigner || rep.FirstBadAnchor != nil {
		t.Fatalf("backdated entry: %+v; want one signer finding at entry 3", rep.Findings)
	}

	// Entry 1's value altered on disk, after its anchor.
	db, err := pebble.Open(filepath.Join(tn.dir, "quiet-gateway", "datalog"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := binary.BigEndian.AppendUint64([]byte{'e'}, 1)
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	e := bytes.Clone(v)
	closer.Close()
	e[len(e)-64-2-1] ^= 0x01
	if err := db.Set(k, e, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// Entry 2 replaced by bytes that are no entry at all.
	if err := db.Set(binary.BigEndian.AppendUint64([]byte{'e'}, 2), []byte("not a reading"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep = check()
	var got []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%d %s", f.Index, f.What))
	}
	want := "0 anchor,1 entry,1 signature,2 entry,2 malformed,3 signer"
	if strings.Join(got, ",") != want || rep.FirstBadAnchor == nil || rep.FirstBadAnchor.Height != first {
		t.Errorf("altered entry: %v (first bad anchor %+v); want %s and the anchor at height %d", got, rep.FirstBadAnchor, want, first)
	}
}

// quietGateway2 reopens the quiet gateway on its directory after a check
// closed it.
func (tn *testNet) quietGateway2(t *testing.T) {
	t.Helper()
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "quiet-gateway"), Key: tn.gwKey, AnchorInterval: time.Hour},
		silentLedger{NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}})
	if err != nil {
		t.Fatal(err)
	}
	tn.gw = gw
	t.Cleanup(func() { gw.Close() })
}

// heldEvent decodes the signer's history event that a proof says was in
// force at the authentication height.
func heldEvent(t *testing.T, p *proof.Reading) *record.Event {
	t.Helper()
	if p.Signer == nil || p.Signer.Event == nil {
		t.Fatalf("proof of entry %d has no signer proof", p.Index)
	}
	var e record.Event
	if err := record.Unmarshal(p.Signer.Event.Value, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}
