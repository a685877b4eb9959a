package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/record"
)

// memSegments is a SegmentStore in memory, content-addressed by SHA-256,
// that a test can make lose or alter a segment. (The devnet test archives
// through the real file service.)
type memSegments struct {
	mu       sync.Mutex
	files    map[string][]byte
	unpinned []string
	fetches  int
}

func (m *memSegments) Publish(_ context.Context, b []byte) (string, error) {
	sum := sha256.Sum256(b)
	c := "bafkmem" + hex.EncodeToString(sum[:8])
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[c] = bytes.Clone(b)
	return c, nil
}

func (m *memSegments) Fetch(_ context.Context, c string, max uint64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches++
	b, ok := m.files[c]
	if !ok {
		return nil, fmt.Errorf("no provider of %s", c)
	}
	if uint64(len(b)) > max {
		return nil, fmt.Errorf("%s is over %d bytes", c, max)
	}
	return bytes.Clone(b), nil
}

func (m *memSegments) Pin(context.Context, string) error { return nil }
func (m *memSegments) Unpin(_ context.Context, c string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unpinned = append(m.unpinned, c)
	return nil
}

func (m *memSegments) set(c string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b == nil {
		delete(m.files, c)
	} else {
		m.files[c] = b
	}
}

// TestArchiveReadings archives the gateway's first segment and reads its
// readings back with their proofs; a lost segment and an altered one are
// reported (503 archive_unavailable, counted), never skipped; a restarted
// gateway serves them again.
func TestArchiveReadings(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, 2*time.Minute)
	for k := range 6 {
		tn.sendSigned(t, temp(uint64(k+1), float64(k)))
	}
	before := tn.proof(t, 1) // anchored, read while stored
	store := &memSegments{files: map[string][]byte{}}
	start := func() {
		if err := tn.gw.StartArchive(ArchiveConfig{Archive: true, SegmentEntries: 4, MinPins: NoPins, Interval: 50 * time.Millisecond}, store); err != nil {
			t.Fatal(err)
		}
	}
	start()
	for {
		if r, _ := tn.gw.data.LastArchived(); r.End() == 4 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the first segment was never archived")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := tn.gw.data.Entry(1); !errors.Is(err, datalog.ErrArchived) {
		t.Fatalf("stored entry 1 = %v; want its bytes dropped (ErrArchived)", err)
	}
	st, _ := tn.gw.ledger.View()
	rec, err := st.LogArchiveCovering(tn.gw.id, 1)
	if err != nil {
		t.Fatal(err)
	}
	tn.forgetSegments() // read through the store, not the archiver's cache

	// Read back: the same reading and proof as before, verified end to end.
	p, err := tn.client.Reading(ctx, 1)
	if err != nil || p.Err() != nil {
		t.Fatalf("GET archived reading 1 = %v, %v", err, p.Err())
	}
	if !bytes.Equal(p.Envelope, before.Envelope) || !bytes.Equal(p.Anchor.Root, before.Anchor.Root) {
		t.Errorf("archived reading 1 differs from the stored one")
	}
	if _, err := tn.client.VerifyReading(ctx, "gw-test", p); err != nil {
		t.Errorf("VerifyReading(archived 1) = %v", err)
	}
	var list struct{ Items []client.ReadingItem }
	if err := tn.client.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &list); err != nil || len(list.Items) != 6 {
		t.Errorf("list = %d items, %v; want all 6, archived ones included", len(list.Items), err)
	}

	// Lost, then altered: 503 archive_unavailable naming the CID, counted.
	orig, _ := store.Fetch(ctx, rec.CID, rec.Size)
	altered := bytes.Clone(orig)
	altered[len(altered)-1] ^= 1
	for name, b := range map[string][]byte{"lost": nil, "altered": altered} {
		tn.forgetSegments()
		store.set(rec.CID, b)
		n := tn.gw.Stats().ArchiveUnavailable
		_, err := tn.client.Reading(ctx, 2)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "archive_unavailable" || !bytes.Contains([]byte(ae.Message), []byte(rec.CID)) {
			t.Errorf("%s segment: GET reading 2 = %v; want 503 archive_unavailable naming %s", name, err, rec.CID)
		}
		if got := tn.gw.Stats().ArchiveUnavailable; got <= n {
			t.Errorf("%s segment: ArchiveUnavailable = %d; want it counted", name, got)
		}
		if err := tn.client.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &list); err == nil {
			t.Errorf("%s segment: the list answered %d items; want the error, not a silent skip", name, len(list.Items))
		}
	}
	store.set(rec.CID, orig)

	// A restarted gateway serves them again.
	tn.gw.Close()
	tn.startGateway(t)
	start()
	if p, err := tn.client.Reading(ctx, 3); err != nil || p.Err() != nil {
		t.Fatalf("after restart, GET archived reading 3 = %v", err)
	}
	if s, err := tn.gw.ArchiveStatus(); err != nil || s.Archived != 4 || s.Recorded != 4 {
		t.Errorf("ArchiveStatus = %+v, %v; want 4 archived and recorded", s, err)
	}
}

// forgetSegments empties the gateway's segment cache.
func (tn *testNet) forgetSegments() {
	a := tn.gw.arch.Load()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cache = nil
}

// TestRecutAfterErasure: an entry erased after its segment was archived
// leaves that segment too: the gateway cuts the range again with the
// entry as its leaf hash only, records the re-cut (the old CID among the
// replaced), and the old copy is dropped from its store; the readings
// kept still verify through the new segment, the erased one answers
// erased, and a restarted gateway has nothing left to re-cut.
func TestRecutAfterErasure(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, 2*time.Minute)
	base := time.UnixMilli(1_700_000_000_000)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	var values [][]byte
	for k := range 6 {
		r, v := secret(uint64(k+1), at(k+1))
		tn.sendSigned(t, r)
		values = append(values, v)
	}
	tn.proof(t, 5) // all six anchored
	store := &memSegments{files: map[string][]byte{}}
	start := func() {
		t.Helper()
		if err := tn.gw.StartArchive(ArchiveConfig{Archive: true, SegmentEntries: 4, MinPins: NoPins, Interval: 50 * time.Millisecond}, store); err != nil {
			t.Fatal(err)
		}
	}
	start()
	testutil.WaitFor(t, ctx, "the first segment archived", func() bool { r, _ := tn.gw.data.LastArchived(); return r.End() == 4 })
	st, _ := tn.gw.ledger.View()
	first, err := st.LogArchiveCovering(tn.gw.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	holds := func(cid string, v []byte) bool {
		t.Helper()
		b, err := store.Fetch(ctx, cid, 1<<30)
		if err != nil {
			t.Fatalf("segment %s: %v", cid, err)
		}
		plain, err := openSegment(tn.gwKey, first, b)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(plain, v)
	}
	if !holds(first.CID, values[1]) {
		t.Fatal("the first cut does not hold reading 2's value: the search sees nothing")
	}

	// Erase reading 2 (entry 1), archived already.
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.DataErase{Org: "acme", Device: tn.sensor.ID(), From: at(2).UnixMilli(), To: at(3).UnixMilli(), Reason: "subject's request"}, true); err != nil {
		t.Fatalf("data.erase: %v", err)
	}
	var rec *record.LogArchive
	testutil.WaitFor(t, ctx, "the segment re-cut", func() bool {
		st, err := tn.gw.ledger.View()
		if err != nil {
			return false
		}
		rec, err = st.LogArchiveCovering(tn.gw.id, 0)
		return err == nil && rec.CID != first.CID
	})
	if len(rec.Replaced) != 1 || rec.Replaced[0] != first.CID || rec.First != 0 || rec.Count != 4 {
		t.Fatalf("re-cut record %+v; want range 0..3 replacing %s", rec, first.CID)
	}
	if holds(rec.CID, values[1]) {
		t.Fatal("the re-cut segment still holds the erased value")
	}
	testutil.WaitFor(t, ctx, "the gateway to drop its pin of the replaced segment", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return slices.Contains(store.unpinned, first.CID)
	})
	for _, k := range []int{0, 2, 3} {
		if !holds(rec.CID, values[k]) {
			t.Fatalf("the re-cut segment lost reading %d, which was not erased", k+1)
		}
	}
	tn.forgetSegments()
	for _, i := range []uint64{0, 2, 3} {
		if _, err := tn.client.VerifyReading(ctx, "gw-test", tn.proof(t, i)); err != nil {
			t.Fatalf("VerifyReading(%d) through the re-cut segment = %v", i, err)
		}
	}
	if p := tn.proof(t, 1); p.Withheld == nil || p.Withheld.Code != proof.CodeErased || p.Envelope != nil {
		t.Fatalf("erased entry 1 answers %+v; want withheld, erased", p.Withheld)
	}
	testutil.WaitFor(t, ctx, "the marks cleared", func() bool {
		s, err := tn.gw.ArchiveStatus()
		return err == nil && s.Recut == 1 && s.PendingRecut == 0
	})

	// A restart: nothing left to re-cut, the record unchanged.
	tn.gw.Close()
	tn.startGateway(t)
	start()
	if s, err := tn.gw.ArchiveStatus(); err != nil || s.PendingRecut != 0 {
		t.Fatalf("after restart, ArchiveStatus = %+v, %v; want nothing pending", s, err)
	}
	if p := tn.proof(t, 1); p.Withheld == nil || p.Withheld.Code != proof.CodeErased {
		t.Fatalf("after restart, erased entry 1 answers %+v", p.Withheld)
	}
}
