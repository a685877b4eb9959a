package auditbundle

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/record"
)

// TestExportVerify exports a devnet organisation's readings as its admin,
// verifies the bundle offline from a real header, refuses it with one
// thing changed anywhere (naming the item), and exports as an outsider.
func TestExportVerify(t *testing.T) {
	tn := startNet(t, 2, ratelimit.Limits{})
	keys := tn.register(t, 2)
	at := time.Now().Truncate(time.Millisecond)
	tn.send(t, keys[0], 1, at, 20.5)
	tn.send(t, keys[0], 2, at.Add(10*time.Millisecond), 21, 21.5, 22) // a batch
	tn.send(t, keys[1], 1, at.Add(20*time.Millisecond), 7)
	tn.send(t, keys[0], 5, at.Add(30*time.Millisecond), 23)
	tn.send(t, keys[1], 2, at.Add(40*time.Millisecond), 8)
	ctx := testutil.Context(t, 2*time.Minute)
	tn.waitAnchored(t, ctx, 4)

	b, err := Export(ctx, tn.adminClient(), ExportOptions{Org: devnet.DemoOrg, From: tn.start, To: at.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	writeSeed(t, data)
	trust := tn.trust(t, b.TrustHeight)
	verify := func(data []byte) (*Summary, error) {
		b, err := Decode(data)
		if err != nil {
			return nil, err
		}
		return Verify(ctx, b, VerifyOptions{Trust: trust})
	}
	s, err := verify(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Verified != 5 || s.Readings != 5 || s.Erased != 0 || s.Withheld != 0 || s.Exporter != tn.admin.ID() {
		t.Errorf("summary: %d verified of %d entries, %d erased, %d withheld, exporter %q", s.Verified, s.Readings, s.Erased, s.Withheld, s.Exporter)
	}
	perDevice := map[string]DeviceSummary{}
	for _, d := range s.Devices {
		perDevice[d.ID] = d
	}
	if d := perDevice[keys[0].ID()]; d.Entries != 3 || d.Readings != 5 || d.Events != 1 || d.Status != record.StatusActive {
		t.Errorf("device 0: %+v", d)
	}
	if d := perDevice[keys[1].ID()]; d.Entries != 2 || d.Readings != 2 {
		t.Errorf("device 1: %+v", d)
	}
	if len(s.Devices) != 2+tn.d.Size() { // the gateways are the organisation's devices too
		t.Errorf("%d devices, want %d", len(s.Devices), 2+tn.d.Size())
	}

	// A trusted header below the bundle's: the exporter includes the
	// headers from it; the light client skips forward.
	low := int64(2)
	b2, err := Export(ctx, tn.adminClient(), ExportOptions{Org: devnet.DemoOrg, Devices: []string{keys[1].ID()}, TrustHeight: low})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Verify(ctx, b2, VerifyOptions{Trust: tn.trust(t, low)}); err != nil || s.Verified != 2 {
		t.Errorf("bundle from header %d: %v (%+v)", low, err, s)
	}
	// A trusted header above the bundle's state: the headers between are
	// hash-linked back to it.
	now, err := client.New(tn.url).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	high := now.Height + 5
	b3, err := Export(ctx, tn.adminClient(), ExportOptions{Org: devnet.DemoOrg, Devices: []string{keys[0].ID()}, TrustHeight: high})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Verify(ctx, b3, VerifyOptions{Trust: tn.trust(t, high)}); err != nil || s.Verified != 3 || b3.StateHeight+1 >= high || int64(s.Headers) != high-b3.StateHeight {
		t.Errorf("bundle from header %d, above its state %d: %v (%+v)", high, b3.StateHeight, err, s)
	}
	// The first bundle with a later trusted header than the one it was
	// built from: not in the bundle.
	if _, err := Verify(ctx, b, VerifyOptions{Trust: tn.trust(t, b.StateHeight+3)}); err == nil || !strings.Contains(err.Error(), "not in the bundle") {
		t.Errorf("a trusted header the bundle lacks: %v", err)
	}
	// A wrong trusted hash.
	wrong := trust
	wrong.Hash = append([]byte(nil), trust.Hash...)
	wrong.Hash[0] ^= 1
	if _, err := Verify(ctx, b, VerifyOptions{Trust: wrong}); !errors.Is(err, lightclient.ErrTrustedHashMismatch) {
		t.Errorf("a wrong trusted hash: %v", err)
	}

	// One thing changed, re-encoded as a forger would: refused, naming it.
	st := b.StateHeight + 1
	for _, c := range []struct {
		name   string
		change func(b *Bundle)
		want   string
	}{
		{"a reading's signature", func(b *Bundle) { e := b.Readings[1].Envelope; e[len(e)-1] ^= 1 }, "reading 1 (gateway "},
		{"a reading's value", func(b *Bundle) { e := b.Readings[2].Envelope; e[len(e)-70] ^= 1 }, "reading 2 (gateway "},
		{"an inclusion proof hash", func(b *Bundle) { b.Readings[3].Inclusion[0][5] ^= 1 }, "reading 3 (gateway "},
		{"an anchor's ICS-23 proof", func(b *Bundle) { p := b.Proofs[b.Anchors[0].Proof].Proof; p[len(p)-3] ^= 1 }, "proof "},
		{"a history event", func(b *Bundle) { v := b.Proofs[b.Devices[0].History[0]].Value; v[len(v)-1] ^= 1 }, "proof "},
		{"the state header's app hash", func(b *Bundle) { last(b).SignedHeader.AppHash[0] ^= 1 }, "header " + itoa(st) + ": does not hash to the signed block id"},
		{"a validator signature", func(b *Bundle) { last(b).SignedHeader.Commit.Signatures[0].Signature[3] ^= 1 }, "header " + itoa(st) + ": its commit"},
		{"the time range", func(b *Bundle) { b.From-- }, "the exporter's signature does not check"},
		{"a reading's device", func(b *Bundle) { b.Readings[0].Device = b.Readings[4].Device }, "reading 0 (gateway "},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			c.change(f)
			forged, err := f.Encode()
			if err != nil {
				t.Fatal(err)
			}
			_, err = verify(forged)
			t.Logf("refused: %v", err)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("refusal = %v, want one naming %q", err, c.want)
			}
		})
	}

	// One byte of the file changed anywhere: refused (by Decode or
	// Verify).
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		i := rnd.IntN(len(data))
		f := append([]byte(nil), data...)
		f[i] ^= byte(1 << rnd.IntN(8))
		if _, err := verify(f); err == nil {
			t.Errorf("byte %d changed (%q near it): verified", i, data[max(i-30, 0):min(i+30, len(data))])
		}
	}

	// An erased entry: its envelope gone, its hash and place remain.
	e, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	r := &e.Readings[0]
	r.EntryHash = proof.LeafHash(e.ProofOf(0).Entry())
	r.Envelope, r.Signer = nil, nil
	r.Withheld = &proof.Unavailable{Code: proof.CodeErased, Message: "erased"}
	e.Exporter, e.Signature = "", nil
	e.Proofs, e.Devices, e.Anchors = dropUnused(e)
	if s, err := Verify(ctx, e, VerifyOptions{Trust: trust}); err != nil || s.Erased != 1 || s.Verified != 4 {
		t.Errorf("a bundle with an erased entry: %v (%+v)", err, s)
	}

	// An outsider: may list no one's readings; the bundle has the
	// devices' public history and no values.
	outsider := testutil.Key(t, identity.Ed25519)
	oc := client.New(tn.url).WithIdentity(&client.Identity{Key: outsider, ChainID: tn.d.ChainID()})
	ob, err := Export(ctx, oc, ExportOptions{Org: devnet.DemoOrg})
	if err != nil {
		t.Fatal(err)
	}
	osum, err := Verify(ctx, ob, VerifyOptions{Trust: tn.trust(t, ob.TrustHeight)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ob.Readings) != 0 || osum.Verified != 0 {
		t.Errorf("an outsider's bundle holds %d entries", len(ob.Readings))
	}
	for _, d := range osum.Devices {
		if d.Refused == "" || d.Events == 0 {
			t.Errorf("outsider's bundle, device %s: refused %q, %d events", d.ID, d.Refused, d.Events)
		}
	}
	if enc, _ := ob.Encode(); strings.Contains(string(enc), `"envelope"`) {
		t.Error("the outsider's bundle holds envelopes")
	}

	// An erasure of device 1's readings (entries 2 and 4): they leave the
	// gateway's lists; a new bundle has none of them and the erasure
	// record, proved.
	if _, err := client.New(tn.url).Send(ctx, tn.admin, "", &record.DataErase{Org: devnet.DemoOrg, Device: keys[1].ID(), Reason: "audit test"}, true); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, ctx, "device 1's readings erased at the gateway", func() bool {
		p, err := tn.adminClient().Reading(ctx, 4)
		return err == nil && p.Withheld != nil && p.Withheld.Code == proof.CodeErased
	})
	eb, err := Export(ctx, tn.adminClient(), ExportOptions{Org: devnet.DemoOrg, Devices: []string{keys[1].ID()}, From: tn.start})
	if err != nil {
		t.Fatal(err)
	}
	es, err := Verify(ctx, eb, VerifyOptions{Trust: tn.trust(t, eb.TrustHeight)})
	if err != nil {
		t.Fatal(err)
	}
	if d := es.Devices[0]; d.Entries != 0 || len(d.Erasures) != 1 || d.Erasures[0].Reason != "audit test" || d.Erasures[0].Signer != tn.admin.ID() {
		t.Errorf("after the erasure: %+v", d)
	}
}

func last(b *Bundle) *Header { return &b.Headers[len(b.Headers)-1] }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// dropUnused removes the proofs no longer referred to (a test's edit),
// renumbering the references.
func dropUnused(b *Bundle) ([]*record.Proof, []Device, []Anchor) {
	used := make([]bool, len(b.Proofs))
	for _, a := range b.Anchors {
		used[a.Proof] = true
	}
	for _, d := range b.Devices {
		used[d.Record] = true
		for _, h := range append(slices.Clone(d.History), d.Erasures...) {
			used[h] = true
		}
	}
	for _, r := range b.Readings {
		for _, s := range r.Signer {
			used[s] = true
		}
	}
	pos := make([]int, len(b.Proofs))
	var ps []*record.Proof
	for i, p := range b.Proofs {
		if used[i] {
			pos[i] = len(ps)
			ps = append(ps, p)
		}
	}
	for i := range b.Anchors {
		b.Anchors[i].Proof = pos[b.Anchors[i].Proof]
	}
	for i := range b.Devices {
		b.Devices[i].Record = pos[b.Devices[i].Record]
		for j := range b.Devices[i].History {
			b.Devices[i].History[j] = pos[b.Devices[i].History[j]]
		}
		for j := range b.Devices[i].Erasures {
			b.Devices[i].Erasures[j] = pos[b.Devices[i].Erasures[j]]
		}
	}
	for i := range b.Readings {
		for j := range b.Readings[i].Signer {
			b.Readings[i].Signer[j] = pos[b.Readings[i].Signer[j]]
		}
	}
	return ps, b.Devices, b.Anchors
}

// writeSeed keeps a real bundle as the fuzz test's seed when asked
// (THINGNET_WRITE_FUZZ_SEED=1).
func writeSeed(t *testing.T, data []byte) {
	if os.Getenv("THINGNET_WRITE_FUZZ_SEED") == "" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "devnet-bundle"), []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(data))+")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
