package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// indexUse is what the readings index holds under one key kind.
type indexUse struct {
	keys    int
	logical uint64 // bytes of its keys and values
}

// indexKinds are the index's key kinds, by prefix.
var indexKinds = []string{"r/", "v/", "Ar/", "Av/", "Ae/", "An/", "AN/", "s/", "u/", "m/"}

// measureIndex compacts the index and reports what each key kind holds,
// and the bytes of its tables (compressed).
func measureIndex(t *testing.T, x *index) (map[string]indexUse, uint64) {
	t.Helper()
	if err := x.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := x.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	out := map[string]indexUse{}
	for _, p := range indexKinds {
		hi := append([]byte(p[:len(p)-1]), p[len(p)-1]+1)
		it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte(p), UpperBound: hi})
		if err != nil {
			t.Fatal(err)
		}
		var u indexUse
		for it.First(); it.Valid(); it.Next() {
			u.keys++
			u.logical += uint64(len(it.Key()) + len(it.Value()))
		}
		it.Close()
		out[p] = u
	}
	m := x.db.Metrics().Total()
	return out, uint64(m.TablesSize)
}

// TestArchiveIndexFolds: once entries are archived, their readings-index
// keys fold into a few bytes a reading (measured before and after, by key
// kind); queries on both axes find exactly what they found before; after
// a restart (with the fold to do again, as after a crash between a drop
// and its fold) the archived readings still read and prove, a replayed
// archived envelope is still refused, an anonymous read of an archived
// reading is refused by the read rule without fetching any segment (its
// public part proved), an erasure still finds and removes
// an archived reading, and verify store checks the archived store.
func TestArchiveIndexFolds(t *testing.T) {
	const (
		envelopes = 400
		perEnv    = 10
		segment   = 100
	)
	tn := startTestNet(t)
	ctx := testutil.Context(t, 3*time.Minute)
	tn.gw.Close()
	tn.startGatewayWith(t, func(c *Config) { c.Limits = wideLimits })
	// Readings 30 s apart over about 33 hours: blocks of two or three days.
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
	var envs [][]byte
	seq := uint64(0)
	for range envelopes {
		rs := make([]reading.Reading, perEnv)
		for k := range rs {
			seq++
			v := float64(seq)
			rs[k] = reading.Reading{Seq: seq, Time: base.Add(time.Duration(seq) * 30 * time.Second), ContentType: "temperature/celsius", Value: &v}
		}
		raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), rs...)
		if err != nil {
			t.Fatal(err)
		}
		if err := tn.gw.Ingest(ctx, "", raw, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, raw)
	}
	dev := tn.sensor.ID()
	all := func() []uint64 {
		t.Helper()
		idx, err := tn.gw.index.query(dev, time.UnixMilli(0), time.UnixMilli(math.MaxInt64), math.MaxInt)
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	received := func() []uint64 {
		t.Helper()
		var out []uint64
		if err := tn.gw.index.scanTimes(client.AxisReceived, dev, 0, 0, math.MaxInt64, func(_ int64, i uint64) (bool, error) {
			out = append(out, i)
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// A window inside the second day, from the middle of an envelope.
	from, to := base.Add(20*time.Hour+15*time.Second), base.Add(26*time.Hour)
	window := func() []uint64 {
		t.Helper()
		idx, err := tn.gw.index.query(dev, from, to, math.MaxInt)
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	wantAll, wantRecv, wantWindow := all(), received(), window()
	if len(wantAll) != envelopes {
		t.Fatalf("query before archiving = %d entries; want %d", len(wantAll), envelopes)
	}
	before, diskBefore := measureIndex(t, tn.gw.index)
	tn.proof(t, envelopes-1) // all anchored

	store := &memSegments{files: map[string][]byte{}}
	start := func() {
		t.Helper()
		if err := tn.gw.StartArchive(ArchiveConfig{Archive: true, SegmentEntries: segment, MinPins: NoPins, Interval: 20 * time.Millisecond}, store); err != nil {
			t.Fatal(err)
		}
	}
	start()
	testutil.WaitFor(t, ctx, "every full segment archived and folded", func() bool {
		f, err := tn.gw.index.folded()
		return err == nil && f == envelopes
	})
	after, diskAfter := measureIndex(t, tn.gw.index)
	readings := float64(envelopes * perEnv)
	t.Logf("readings index of %d readings (%d entries), before and after archiving; bytes of keys and values per reading:", envelopes*perEnv, envelopes)
	t.Logf("%-4s %8s %8s %10s %10s", "kind", "keys", "keys'", "B/reading", "B/reading'")
	var sumB, sumA uint64
	for _, k := range indexKinds {
		b, a := before[k], after[k]
		sumB, sumA = sumB+b.logical, sumA+a.logical
		t.Logf("%-4s %8d %8d %10.1f %10.1f", k, b.keys, a.keys, float64(b.logical)/readings, float64(a.logical)/readings)
	}
	t.Logf("all  %8s %8s %10.1f %10.1f", "", "", float64(sumB)/readings, float64(sumA)/readings)
	t.Logf("tables after a full compaction: %.1f B a reading before, %.1f after", float64(diskBefore)/readings, float64(diskAfter)/readings)
	if after["r/"].keys != 0 || after["v/"].keys != 0 {
		t.Errorf("after archiving: %d r/ and %d v/ keys left; want every archived entry's folded", after["r/"].keys, after["v/"].keys)
	}
	if folded := after["Ar/"].logical + after["Av/"].logical + after["Ae/"].logical; float64(folded) > 8*readings {
		t.Errorf("folded blocks hold %d bytes for %.0f readings; want at most 8 a reading", folded, readings)
	}
	check := func(when string) {
		t.Helper()
		if got := all(); !slices.Equal(got, wantAll) {
			t.Errorf("%s: query of every reading = %d entries; want the %d found before archiving", when, len(got), len(wantAll))
		}
		if got := received(); !slices.Equal(got, wantRecv) {
			t.Errorf("%s: the receive-time scan = %d entries; want the %d found before archiving", when, len(got), len(wantRecv))
		}
		if got := window(); !slices.Equal(got, wantWindow) {
			t.Errorf("%s: query of a window = %v; want %v", when, got, wantWindow)
		}
	}
	check("archived")

	// A restart: reads and proofs, the replay state, queries. The fold
	// mark is set back first, as a crash between a drop and its fold (or
	// a store archived before folding) leaves it: the archive loop folds
	// every segment again, from the segments, and finds what it found.
	if err := tn.gw.index.db.Set(keyFolded, make([]byte, 8), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	tn.gw.Close()
	// Counted before the restart: its archive loop may fetch at once.
	n := func() int { store.mu.Lock(); defer store.mu.Unlock(); return store.fetches }()
	tn.startGatewayWith(t, func(c *Config) { c.Limits = wideLimits })
	start()
	testutil.WaitFor(t, ctx, "every segment folded again", func() bool {
		f, err := tn.gw.index.folded()
		return err == nil && f == envelopes
	})
	// Folding again reads the segments: the restarted gateway's cache is
	// empty, so it fetches them. (Counted, 3 of the 4 in about one run of
	// three, 4 in the others; which path found the fourth is not known.)
	if got := func() int { store.mu.Lock(); defer store.mu.Unlock(); return store.fetches }(); got-n < 1 {
		t.Errorf("folding again fetched %d segments; want the segments fetched (a restarted gateway's cache is empty)", got-n)
	}
	check("after restart")
	tn.forgetSegments()
	for _, i := range []uint64{0, 150, envelopes - 1} {
		if _, err := tn.client.VerifyReading(ctx, "gw-test", tn.proof(t, i)); err != nil {
			t.Errorf("after restart, VerifyReading(archived %d) = %v", i, err)
		}
	}
	if err := tn.gw.Ingest(ctx, "", envs[3], "127.0.0.1"); err == nil || !strings.Contains(err.Error(), reading.ErrReplay.Error()) {
		t.Errorf("after restart, a replay of archived entry 3 = %v; want %v", err, reading.ErrReplay)
	}
	// Anonymous: the read rule refuses before any segment is fetched; the
	// public part is still proved. The organisation's admin reads it.
	tn.forgetSegments()
	fetched := func() int { store.mu.Lock(); defer store.mu.Unlock(); return store.fetches }
	n = fetched()
	anon := client.New(tn.client.BaseURL)
	if p, err := anon.Reading(ctx, 5); err != nil || p.Withheld == nil || p.Withheld.Code != proof.CodeWithheld || p.Envelope != nil || len(p.Inclusion) == 0 {
		t.Errorf("anonymous GET archived reading 5 = %+v, %v; want withheld, with its inclusion proof", p, err)
	} else if _, err := proof.VerifyAnchored(ctx, client.Checker{Client: anon, ChainID: "gw-test"}, p); err != nil {
		t.Errorf("the public part of archived reading 5 does not verify: %v", err)
	}
	if les, err := anon.LogEntries(ctx, 0, 10); err != nil || len(les.Entries) != 10 || les.Entries[3].Withheld == nil {
		t.Errorf("anonymous GET /v1/log/entries of archived entries = %+v, %v; want 10 withheld", les, err)
	}
	if got := fetched(); got != n {
		t.Errorf("anonymous reads of archived entries fetched %d segments; want none", got-n)
	}
	if p := tn.proof(t, 5); p.Envelope == nil || fetched() == n {
		t.Errorf("the admin's GET archived reading 5 = %+v after %d fetches; want the envelope, fetched", p, fetched()-n)
	}
	var list struct{ Items []client.ReadingItem }
	if err := tn.client.Get(ctx, fmt.Sprintf("/v1/readings?device=%s&limit=5", dev), &list); err != nil || len(list.Items) != 5 {
		t.Errorf("after restart, the list = %d items, %v; want 5 archived ones", len(list.Items), err)
	}

	// An erasure finds archived entry 2 through its folded keys and takes
	// it out of them.
	e2 := base.Add(21 * 30 * time.Second) // reading 21, entry 2
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.DataErase{Org: "acme", Device: dev, From: e2.UnixMilli(), To: e2.UnixMilli() + 1, Reason: "subject's request"}, true); err != nil {
		t.Fatalf("data.erase: %v", err)
	}
	testutil.WaitFor(t, ctx, "archived entry 2 erased and out of the index", func() bool {
		tn.gw.storeMu.Lock() // the erasure and its index keys' removal together
		defer tn.gw.storeMu.Unlock()
		_, err := tn.gw.data.Entry(2)
		idx, qerr := tn.gw.index.query(dev, e2, e2.Add(time.Millisecond), 10)
		return errors.Is(err, datalog.ErrErased) && qerr == nil && len(idx) == 0
	})
	if got, want := all(), slices.DeleteFunc(slices.Clone(wantAll), func(i uint64) bool { return i == 2 }); !slices.Equal(got, want) {
		t.Errorf("after erasing entry 2: %d entries; want %d", len(got), len(want))
	}

	// verify store on the archived, folded store. Archiving stops first,
	// as the node stops it before its file service (twice: idempotent).
	tn.gw.StopArchive()
	tn.gw.StopArchive()
	tn.gw.Close()
	st, err := tn.app.View(0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := CheckLogWith(ctx, tn.dir+"/gateway", tn.gwKey.ID(), st, store.Fetch, tn.gwKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || len(rep.Erased) != 1 {
		t.Errorf("verify store: findings %+v, erased %+v; want none, and entry 2 erased", rep.Findings, rep.Erased)
	}
	if len(rep.Archived) != envelopes/segment {
		t.Errorf("verify store: %d archived segments; want %d", len(rep.Archived), envelopes/segment)
	}
	for _, s := range rep.Archived {
		if s.Status != SegmentChecked {
			t.Errorf("verify store: segment %+v; want checked", s)
		}
	}
}

// FuzzDecodeBlock: a folded block of any bytes decodes to pairs in order
// within its day, or fails; what decodes encodes back to the same bytes.
func FuzzDecodeBlock(f *testing.F) {
	f.Add(uint64(19_700), uint64(0), encodeBlock(19_700, 0, []pair{{19_700*dayMS + 5, 0}, {19_700*dayMS + 5, 1}, {19_700*dayMS + 900, 0}}))
	f.Add(uint64(1), uint64(4096), []byte{0x80})
	f.Add(uint64(0), uint64(7), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, day, first uint64, b []byte) {
		day %= math.MaxUint64 / dayMS
		ps, err := decodeBlock(day, first, b)
		if err != nil {
			return
		}
		for k, p := range ps {
			if p.ms/dayMS != day || (k > 0 && cmpPair(ps[k-1], p) >= 0) {
				t.Fatalf("decodeBlock = %v: pair %d out of its day or order", ps, k)
			}
		}
		if len(ps) > 0 {
			if again, err := decodeBlock(day, first, encodeBlock(day, first, ps)); err != nil || !slices.Equal(again, ps) {
				t.Fatalf("re-encoded block decodes to %v, %v; want %v", again, err, ps)
			}
		}
	})
}
