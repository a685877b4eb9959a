// Package rollup holds what reading roll-ups are: bucket sizes, how a
// bucket is found for a time, and the aggregate of a bucket (count, min,
// max, sum, mean, last). It is pure: the gateway keeps roll-ups in its
// store at ingest with it, and a client merging answers from several
// gateways computes buckets from de-duplicated raw readings with the same
// code, so both give the same numbers for the same readings in the same
// order (docs/data.md).
package rollup

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// Size is a bucket size.
type Size struct {
	Name string // "1m", "1h", "1d"
	Code byte   // its byte in store keys
	MS   int64  // its length, milliseconds
	// Block is how many consecutive buckets of this size are stored
	// together, in one Block (at most 64): the minutes of a quarter of an
	// hour, the hours of a day. A block is rewritten whole at ingest, so a
	// small one keeps ingest cheap and a large one makes long ranges few
	// values to read.
	Block int
}

// The bucket sizes roll-ups are kept at. Buckets are aligned on the Unix
// epoch, in UTC: a day bucket starts at 00:00 UTC.
var (
	Minute = Size{Name: "1m", Code: 'm', MS: 60_000, Block: 15}
	Hour   = Size{Name: "1h", Code: 'h', MS: 3_600_000, Block: 24}
	Day    = Size{Name: "1d", Code: 'd', MS: 86_400_000, Block: 1}
	// Sizes lists them, smallest first.
	Sizes = []Size{Minute, Hour, Day}
)

// ParseSize returns the size named s ("1m", "1h" or "1d").
func ParseSize(s string) (Size, error) {
	for _, z := range Sizes {
		if z.Name == s {
			return z, nil
		}
	}
	return Size{}, fmt.Errorf("bucket %q: want raw, 1m, 1h or 1d", s)
}

// Start is the start of the bucket of size z that holds ms (Unix ms).
func (z Size) Start(ms int64) int64 {
	s := ms / z.MS * z.MS
	if ms < 0 && s != ms {
		s -= z.MS // floor, for times before 1970
	}
	return s
}

// Agg is the aggregate of the numeric readings of one bucket. Sum adds
// the values in the order they were added (a gateway adds them in log
// order), so the same readings added in the same order give the same
// bits. Last is the value of the reading with the latest (time, seq).
type Agg struct {
	Count    uint64
	Sum      float64
	Min, Max float64
	Last     float64
	LastTime int64 // Unix ms of Last's reading on the bucket's time axis
	LastSeq  uint64
}

// Add adds a reading's value v, timed t (Unix ms) with sequence number
// seq.
func (a *Agg) Add(v float64, t int64, seq uint64) {
	if a.Count == 0 {
		*a = Agg{Count: 1, Sum: v, Min: v, Max: v, Last: v, LastTime: t, LastSeq: seq}
		return
	}
	a.Count++
	a.Sum += v
	a.Min, a.Max = min(a.Min, v), max(a.Max, v)
	if t > a.LastTime || t == a.LastTime && seq >= a.LastSeq {
		a.Last, a.LastTime, a.LastSeq = v, t, seq
	}
}

// Mean is Sum / Count.
func (a *Agg) Mean() float64 { return a.Sum / float64(a.Count) }

// aggLen is the length of an encoded Agg.
const aggLen = 7 * 8

// BlockStart is the start of the block of buckets of size z that holds
// the bucket starting at start, and the bucket's slot in it.
func (z Size) BlockStart(start int64) (int64, int) {
	span := Size{MS: z.MS * int64(z.Block)}
	b := span.Start(start)
	return b, int((start - b) / z.MS)
}

// Block is the stored form of the buckets of one device, content type
// and size in one span of Size.Block buckets: Has has bit i set when the
// bucket in slot i (starting at the block's start + i×size) holds
// readings, and Aggs[i] is then its aggregate. A year of minute buckets
// is 35,040 blocks, read in one sequential scan and decoded without an
// allocation.
type Block struct {
	Has  uint64
	Aggs [64]Agg
}

// Add adds a reading to the bucket in slot i.
func (b *Block) Add(i int, v float64, t int64, seq uint64) {
	if b.Has&(1<<i) == 0 {
		b.Has |= 1 << i
		b.Aggs[i] = Agg{}
	}
	b.Aggs[i].Add(v, t, seq)
}

// Set sets the bucket in slot i to a; an aggregate of no readings
// removes it.
func (b *Block) Set(i int, a Agg) {
	if a.Count == 0 {
		b.Has &^= 1 << i
		return
	}
	b.Has |= 1 << i
	b.Aggs[i] = a
}

// Append appends b's stored form to dst: Has, 8 bytes big-endian, then
// the aggregate of each bucket present in slot order, its seven fields
// (count, sum, min, max, last, last time, last seq) 8 bytes big-endian
// each.
func (b *Block) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, b.Has)
	for h := b.Has; h != 0; h &= h - 1 {
		a := &b.Aggs[bits.TrailingZeros64(h)]
		for _, u := range [7]uint64{a.Count, math.Float64bits(a.Sum), math.Float64bits(a.Min), math.Float64bits(a.Max),
			math.Float64bits(a.Last), uint64(a.LastTime), a.LastSeq} {
			dst = binary.BigEndian.AppendUint64(dst, u)
		}
	}
	return dst
}

// Decode sets b from v, a block of buckets of size z made by Append. A
// block of no buckets, of a bucket beyond z.Block or of no readings, or
// of the wrong length is refused, and b is then left empty.
func (b *Block) Decode(v []byte, z Size) error {
	b.Has = 0
	if len(v) < 8 {
		return fmt.Errorf("rollup: a block is at least 8 bytes, not %d", len(v))
	}
	has := binary.BigEndian.Uint64(v)
	if has == 0 || z.Block < 64 && has>>z.Block != 0 {
		return fmt.Errorf("rollup: block of %s buckets has slots %#x: want 1 to %d of them", z.Name, has, z.Block)
	}
	if n := bits.OnesCount64(has); len(v) != 8+n*aggLen {
		return fmt.Errorf("rollup: a block of %d buckets is %d bytes, not %d", n, 8+n*aggLen, len(v))
	}
	p := v[8:]
	for h := has; h != 0; h &= h - 1 {
		u := func(k int) uint64 { return binary.BigEndian.Uint64(p[8*k:]) }
		a := &b.Aggs[bits.TrailingZeros64(h)]
		*a = Agg{Count: u(0), Sum: math.Float64frombits(u(1)), Min: math.Float64frombits(u(2)), Max: math.Float64frombits(u(3)),
			Last: math.Float64frombits(u(4)), LastTime: int64(u(5)), LastSeq: u(6)}
		if a.Count == 0 {
			return fmt.Errorf("rollup: block of %s buckets: slot %d holds no readings", z.Name, bits.TrailingZeros64(h))
		}
		p = p[aggLen:]
	}
	b.Has = has
	return nil
}

// Bucket is one bucket of a query's answer (GET /v1/readings/query with
// bucket=1m|1h|1d): the numeric readings of one device and content type
// timed in [Start, Start+size). Sum and Mean are absent when they are not
// finite (values near the float64 limits overflow).
type Bucket struct {
	Device string    `json:"device"`
	Type   string    `json:"type"`
	Start  time.Time `json:"start"`
	Count  uint64    `json:"count"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Sum    *float64  `json:"sum,omitempty"`
	Mean   *float64  `json:"mean,omitempty"`
	Last   float64   `json:"last"`
}

// BucketOf is a's answer row.
func BucketOf(device, typ string, start int64, a *Agg) Bucket {
	b := Bucket{Device: device, Type: typ, Start: time.UnixMilli(start).UTC(), Count: a.Count, Min: a.Min, Max: a.Max, Last: a.Last}
	if s, m := a.Sum, a.Mean(); !math.IsInf(s, 0) && !math.IsNaN(s) {
		b.Sum, b.Mean = &s, &m
	}
	return b
}

// Point is one numeric reading on a time axis (the device's time or the
// gateway's receive time, Unix ms).
type Point struct {
	Device, Type string
	Time         int64
	Seq          uint64
	Value        float64
}

// Key names a bucket.
type Key struct {
	Device, Type string
	Start        int64
}

// Compute aggregates points, in the order given, into buckets of size z,
// and returns them in order of device, type and start.
func Compute(points []Point, z Size) []Bucket {
	var out []Bucket
	Aggregate(points, z, func(k Key, a *Agg) { out = append(out, BucketOf(k.Device, k.Type, k.Start, a)) })
	return out
}

// Aggregate aggregates points, in the order given, into buckets of size
// z, and calls fn with them in order of device, type and start.
func Aggregate(points []Point, z Size, fn func(Key, *Agg)) {
	aggs := map[Key]*Agg{}
	var keys []Key
	for _, p := range points {
		k := Key{p.Device, p.Type, z.Start(p.Time)}
		a, ok := aggs[k]
		if !ok {
			a = &Agg{}
			aggs[k] = a
			keys = append(keys, k)
		}
		a.Add(p.Value, p.Time, p.Seq)
	}
	slices.SortFunc(keys, CompareKeys)
	for _, k := range keys {
		fn(k, aggs[k])
	}
}

// CompareKeys orders buckets by device, type and start.
func CompareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Device, b.Device), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Start, b.Start))
}
