package gateway

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestReadingVerifiesAfterPruning: a node that keeps only 10 past
// versions of the ledger state still proves a reading anchored long
// before, from records that stay in its current state (the anchor, the
// signer's history), whatever happened to the signer since: its key was
// rotated after the reading and it verifies with the old key. An entry
// that claims authentication after its signer was revoked still fails,
// through the API and in the offline store audit.
func TestReadingVerifiesAfterPruning(t *testing.T) {
	tn := startTestNetKeep(t, 10)
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
	e := tn.entry(t, idx)

	// A second device, revoked; then an entry (a lying or broken gateway's)
	// that says it was authenticated after the revocation.
	doomed := testutil.Key(t, identity.Ed25519)
	proof, _ := doomed.Sign(record.PossessionMessage("gw-test", "acme", doomed.ID()))
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.DeviceRegister{Org: "acme", Device: doomed.ID(), Proof: proof}, true); err != nil {
		t.Fatal(err)
	}
	res, err := tn.client.Send(ctx, tn.admin, "", record.NewDeviceStatus(doomed.ID(), record.StatusRevoked, "stolen"), true)
	if err != nil {
		t.Fatal(err)
	}
	doomedRaw, err := reading.Sign(doomed, doomed.ID(), temp(1, 99))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := reading.NewEntry(res.Height, time.Now(), doomedRaw)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := tn.gw.Log().Append([][]byte{forged})
	if err != nil {
		t.Fatal(err)
	}
	anchorHeight := tn.anchorNow(t, 0)

	// The sensor rotates its key after the reading.
	next := testutil.Key(t, identity.Ed25519)
	rp, _ := next.Sign(record.RotationMessage("gw-test", tn.sensor.ID(), next.ID()))
	if _, err := tn.client.Send(ctx, tn.sensor, "", &record.DeviceRotate{Device: tn.sensor.ID(), NewKey: next.ID(), Proof: rp}, true); err != nil {
		t.Fatal(err)
	}

	// Wait until the states of the authentication and anchor heights are
	// pruned.
	for {
		if _, err := tn.app.View(anchorHeight); err != nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the state of height %d was never pruned (height %d)", anchorHeight, tn.app.Height())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := tn.app.View(e.AuthHeight); err == nil {
		t.Fatalf("the state of the authentication height %d is still kept", e.AuthHeight)
	}

	p := tn.proof(t, idx)
	if p.Height <= anchorHeight+10 {
		t.Errorf("proof of height %d; want one of a state after pruning (anchor at %d)", p.Height, anchorHeight)
	}
	v, err := tn.client.VerifyReading(ctx, "gw-test", p)
	if err != nil {
		t.Fatalf("a reading anchored before the pruning horizon does not verify: %v", err)
	}
	if v.AuthHeight != e.AuthHeight || v.AnchorHeight != anchorHeight || v.Envelope.Device != tn.sensor.ID() {
		t.Errorf("verified: auth %d, anchor %d, device %s; want %d, %d, %s", v.AuthHeight, v.AnchorHeight, v.Envelope.Device, e.AuthHeight, anchorHeight, tn.sensor.ID())
	}
	if held := heldEvent(t, p); held.Key != tn.sensor.ID() {
		t.Errorf("key in force at the authentication height: %s; want the sensor's first key %s", held.Key, tn.sensor.ID())
	}

	// A forger cannot point the signer proof at the rotation (the key now
	// held): the rotation is after the authentication height.
	st, err := tn.app.View(0)
	if err != nil {
		t.Fatal(err)
	}
	later, err := ProveSigner(tn.app, st, tn.sensor.ID(), st.Height)
	if err != nil {
		t.Fatal(err)
	}
	forgedSigner := *p
	forgedSigner.Height, forgedSigner.Signer = st.Height, later
	if forgedSigner.AnchorProof, err = tn.app.Prove(p.AnchorProof.Key, st.Height); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.client.VerifyReading(ctx, "gw-test", &forgedSigner); err == nil || !strings.Contains(err.Error(), "not the one in force") && !strings.Contains(err.Error(), "after the authentication height") {
		t.Errorf("a signer proof of the key after its rotation: %v; want refused as not in force at the authentication height", err)
	}

	// The revoked device's entry: its proof shows the revocation in force
	// at the height the entry claims, and is refused.
	fp := tn.proof(t, fi)
	if !bytes.Equal(fp.Envelope, doomedRaw) {
		t.Error("the entry after revocation is answered without its envelope")
	}
	if _, err := tn.client.VerifyReading(ctx, "gw-test", fp); err == nil || !strings.Contains(err.Error(), "was revoked at height") {
		t.Errorf("entry authenticated after its signer's revocation: %v; want refused: revoked", err)
	}

	// The store audit reads the same rule from the current state.
	tn.gw.Close()
	rep, err := CheckLog(filepath.Join(tn.dir, "quiet-gateway"), tn.gwKey.ID(), st)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Index != fi || rep.Findings[0].What != FindSigner || !strings.Contains(rep.Findings[0].Detail, "was revoked at height") {
		t.Errorf("store audit after pruning: %+v; want one finding: entry %d's signer was revoked", rep.Findings, fi)
	}
}

// entry decodes the gateway's log entry at index.
func (tn *testNet) entry(t *testing.T, index uint64) *reading.Entry {
	t.Helper()
	raw, err := tn.gw.Log().Entry(index)
	if err != nil {
		t.Fatal(err)
	}
	e, err := reading.DecodeEntry(raw)
	if err != nil || e.AuthHeight < 1 {
		t.Fatalf("entry %d: %+v, %v; want one with its authentication height", index, e, err)
	}
	return e
}
