package gateway

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/rollup"
)

// randomEntries makes n log entries of random readings of three devices
// and three content types: random times (many on bucket boundaries,
// some out of order), values (integers, fractions, negatives, huge),
// batches of 1 to 4 readings, some sealed or byte-string values (which do
// not roll up).
func randomEntries(rng *rand.Rand, n int) []*reading.Entry {
	devices := []string{"did:key:z6Mkdev1", "did:key:z6Mkdev2", "did:key:z6Mkdev3"}
	types := []string{"temperature/celsius", "humidity/percent", "power/watt"}
	base := int64(1_765_000_000_000) / 86_400_000 * 86_400_000
	seqs := map[string]uint64{}
	out := make([]*reading.Entry, n)
	for i := range out {
		dev := devices[rng.IntN(len(devices))]
		env := &reading.Envelope{Device: dev, Raw: []byte(fmt.Sprint(i))}
		for range 1 + rng.IntN(4) {
			seqs[dev]++
			var ms int64
			switch rng.IntN(4) {
			case 0: // on a boundary of some bucket size, or just before one
				z := rollup.Sizes[rng.IntN(3)]
				ms = base + int64(rng.IntN(5))*z.MS - int64(rng.IntN(2))
			case 1: // within a few minutes
				ms = base + rng.Int64N(5*60_000)
			default: // within three days
				ms = base + rng.Int64N(3*86_400_000)
			}
			r := reading.Reading{Device: dev, Seq: seqs[dev], Time: time.UnixMilli(ms), ContentType: types[rng.IntN(len(types))]}
			switch rng.IntN(10) {
			case 0:
				r.Bytes = []byte{1}
			case 1:
				r.Sealed = &reading.Sealed{}
			case 2:
				v := float64(rng.Int64N(1<<40)) * 1e290 // sums overflow to infinity
				r.Value = &v
			default:
				v := math.Round(rng.NormFloat64()*1000) / float64(1+rng.IntN(100))
				r.Value = &v
			}
			env.Readings = append(env.Readings, r)
		}
		out[i] = &reading.Entry{Layout: 3, AuthHeight: 1, ReceivedAt: base + int64(i)*1000, Envelope: env}
	}
	return out
}

// bruteForce aggregates the numeric readings of ents (nil: erased), in
// log order, into buckets of size z, by the plainest code there is.
func bruteForce(ents []*reading.Entry, z rollup.Size) map[rollup.Key]rollup.Agg {
	out := map[rollup.Key]rollup.Agg{}
	for _, e := range ents {
		if e == nil {
			continue
		}
		for _, r := range e.Envelope.Readings {
			if r.Value == nil {
				continue
			}
			ms := r.Time.UnixMilli()
			start := ms - ms%z.MS
			k := rollup.Key{Device: e.Envelope.Device, Type: r.ContentType, Start: start}
			a, ok := out[k]
			v := *r.Value
			if !ok {
				out[k] = rollup.Agg{Count: 1, Sum: v, Min: v, Max: v, Last: v, LastTime: ms, LastSeq: r.Seq}
				continue
			}
			a.Count++
			a.Sum += v
			if v < a.Min {
				a.Min = v
			}
			if v > a.Max {
				a.Max = v
			}
			if ms > a.LastTime || ms == a.LastTime && r.Seq > a.LastSeq {
				a.Last, a.LastTime, a.LastSeq = v, ms, r.Seq
			}
			out[k] = a
		}
	}
	return out
}

// stored reads every roll-up of size z in the index.
func stored(t *testing.T, x *index, z rollup.Size) map[rollup.Key]rollup.Agg {
	t.Helper()
	out := map[rollup.Key]rollup.Agg{}
	for _, d := range []string{"did:key:z6Mkdev1", "did:key:z6Mkdev2", "did:key:z6Mkdev3"} {
		types, err := x.rollupTypes(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range types {
			err := x.scanRollups(d, typ, z, 0, math.MaxInt64, func(start int64, a *rollup.Agg) bool {
				out[rollup.Key{Device: d, Type: typ, Start: start}] = *a
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// sameAggs compares roll-ups bit for bit (an infinite sum too).
func sameAggs(t *testing.T, what string, got, want map[rollup.Key]rollup.Agg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d buckets; want %d", what, len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || g.Count != w.Count || math.Float64bits(g.Sum) != math.Float64bits(w.Sum) || g.Min != w.Min || g.Max != w.Max || g.Last != w.Last || g.LastSeq != w.LastSeq {
			t.Fatalf("%s: bucket %+v = %+v; want %+v", what, k, g, w)
		}
	}
}

// TestRollupsMatchBruteForce is the property test of the roll-ups: over
// random readings added in random batches, the stored roll-ups of every
// size equal a brute-force computation over the raw readings, bit for
// bit; after random entries are erased, they equal the brute force over
// the rest, as they do once more entries are added (ingest's cache of
// the blocks it wrote must not outlive an erasure); and rebuilt from the
// log they are the same again.
func TestRollupsMatchBruteForce(t *testing.T) {
	for round := range 4 {
		seed := rand.Uint64()
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(round)))
			ents := randomEntries(rng, 200+rng.IntN(300))
			x, err := openIndex(filepath.Join(t.TempDir(), "index"), slog.New(slog.DiscardHandler), true)
			if err != nil {
				t.Fatal(err)
			}
			defer x.close()
			// The last 50 entries come after the erasures, into blocks
			// the cache of written blocks held before them.
			added := 0
			addUpTo := func(end int) {
				for added < end {
					n := min(end-added, 1+rng.IntN(64))
					if err := x.add(uint64(added), ents[added:added+n]); err != nil {
						t.Fatal(err)
					}
					added += n
				}
			}
			addUpTo(len(ents) - 50)
			for _, z := range rollup.Sizes {
				sameAggs(t, fmt.Sprintf("seed %d, %s, as ingested", seed, z.Name), stored(t, x, z), bruteForce(ents[:added], z))
			}

			// Erase a random fifth of the entries, in a few batches.
			left := append([]*reading.Entry(nil), ents...)
			entryAt := func(i uint64) (*reading.Entry, error) { return left[i], nil }
			for range 3 {
				var gone []indexed
				for i, e := range left[:added] {
					if e == nil || rng.IntN(15) != 0 {
						continue
					}
					first, last := int64(math.MaxInt64), int64(math.MinInt64)
					for _, r := range e.Envelope.Readings {
						first, last = min(first, r.Time.UnixMilli()), max(last, r.Time.UnixMilli())
					}
					gone = append(gone, indexed{device: e.Envelope.Device, first: first, last: last, received: e.ReceivedAt, index: uint64(i)})
					left[i] = nil // the log erases it before the index forgets it
				}
				if err := x.remove(gone, entryAt); err != nil {
					t.Fatal(err)
				}
			}
			for _, z := range rollup.Sizes {
				sameAggs(t, fmt.Sprintf("seed %d, %s, after erasures", seed, z.Name), stored(t, x, z), bruteForce(left[:added], z))
			}
			addUpTo(len(ents))
			for _, z := range rollup.Sizes {
				sameAggs(t, fmt.Sprintf("seed %d, %s, ingested after erasures", seed, z.Name), stored(t, x, z), bruteForce(left, z))
			}
			before := map[rollup.Size]map[rollup.Key]rollup.Agg{}
			for _, z := range rollup.Sizes {
				before[z] = stored(t, x, z)
			}
			if err := x.rebuildRollups(uint64(len(left)), entryAt); err != nil {
				t.Fatal(err)
			}
			for _, z := range rollup.Sizes {
				sameAggs(t, fmt.Sprintf("seed %d, %s, rebuilt", seed, z.Name), stored(t, x, z), before[z])
			}
		})
	}
}

// TestRollupScanAllocs: reading a week of minute buckets from the store
// and writing them as JSON rows allocates per block read at most, never
// per bucket (10,080 buckets, 168 blocks).
func TestRollupScanAllocs(t *testing.T) {
	x, err := openIndex(filepath.Join(t.TempDir(), "index"), slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	const dev, typ, minutes = "did:key:z6Mkdev1", "temperature/celsius", 7 * 24 * 60
	base := int64(1_735_689_600_000) // 2025-01-01
	ents := make([]*reading.Entry, minutes)
	for i := range ents {
		v := float64(i) / 7
		ents[i] = &reading.Entry{Layout: 3, AuthHeight: 1, ReceivedAt: base, Envelope: &reading.Envelope{Device: dev, Raw: []byte{byte(i)},
			Readings: []reading.Reading{{Device: dev, Seq: uint64(i + 1), Time: time.UnixMilli(base + int64(i)*60_000), ContentType: typ, Value: &v}}}}
	}
	if err := x.add(0, ents); err != nil {
		t.Fatal(err)
	}
	if raceEnabled {
		t.Skip("the race detector allocates on its own: counts are measured without it")
	}
	var rows rollup.JSONRows
	buf := make([]byte, 0, 4<<20)
	n := 0
	allocs := testing.AllocsPerRun(5, func() {
		buf, n = buf[:0], 0
		err := x.scanRollups(dev, typ, rollup.Minute, base, base+minutes*60_000, func(start int64, a *rollup.Agg) bool {
			buf = rows.Append(buf, dev, typ, start, a)
			n++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if n != minutes || allocs > minutes/60 {
		t.Fatalf("scanned %d buckets with %.0f allocations; want %d buckets and at most one allocation per block", n, allocs, minutes)
	}
	t.Logf("%d buckets, %.0f allocations", n, allocs)
}

// TestRollupsCatchUpAfterCrash: roll-ups are written back, so a crash
// (the index closed without writing what is pending) leaves m/rolled
// behind m/indexed; rolling the entries between them again gives the
// roll-ups of every entry, bit for bit, as the start does (restore).
func TestRollupsCatchUpAfterCrash(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 7))
	ents := randomEntries(rng, 300)
	dir := filepath.Join(t.TempDir(), "index")
	x, err := openIndex(dir, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	add := func(from, to int) {
		for from < to {
			n := min(to-from, 1+rng.IntN(32))
			if err := x.add(uint64(from), ents[from:from+n]); err != nil {
				t.Fatal(err)
			}
			from += n
		}
	}
	add(0, 150)
	if err := x.flushRollups(); err != nil {
		t.Fatal(err)
	}
	add(150, len(ents))                  // pending: well within rollupWriteEvery
	if err := x.db.Close(); err != nil { // the crash: nothing pending written
		t.Fatal(err)
	}
	x, err = openIndex(dir, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	rolled, _ := x.u64(keyRolled, "roll-up meta")
	indexed, _ := x.covered()
	if rolled != 150 || indexed != uint64(len(ents)) {
		t.Fatalf("after the crash: rolled %d, indexed %d; want 150 and %d (the roll-ups of the last batches pending)", rolled, indexed, len(ents))
	}
	entryAt := func(i uint64) (*reading.Entry, error) { return ents[i], nil }
	if err := x.catchUpRollups(rolled, indexed, entryAt); err != nil {
		t.Fatal(err)
	}
	for _, z := range rollup.Sizes {
		sameAggs(t, fmt.Sprintf("seed %d, %s, caught up", seed, z.Name), stored(t, x, z), bruteForce(ents, z))
	}
	if rolled, _ = x.u64(keyRolled, "roll-up meta"); rolled != indexed {
		t.Fatalf("after catching up: rolled %d; want %d", rolled, indexed)
	}
}
