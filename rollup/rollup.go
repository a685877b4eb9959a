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
	"fmt"
	"math"
	"slices"
	"time"
)

// Size is a bucket size.
type Size struct {
	Name string // "1m", "1h", "1d"
	Code byte   // its byte in store keys
	MS   int64  // its length, milliseconds
}

// The bucket sizes roll-ups are kept at. Buckets are aligned on the Unix
// epoch, in UTC: a day bucket starts at 00:00 UTC.
var (
	Minute = Size{Name: "1m", Code: 'm', MS: 60_000}
	Hour   = Size{Name: "1h", Code: 'h', MS: 3_600_000}
	Day    = Size{Name: "1d", Code: 'd', MS: 86_400_000}
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

// Encode is a's stored form: its seven fields, 8 bytes big-endian each.
func (a *Agg) Encode() []byte {
	b := make([]byte, 0, aggLen)
	for _, u := range []uint64{a.Count, math.Float64bits(a.Sum), math.Float64bits(a.Min), math.Float64bits(a.Max),
		math.Float64bits(a.Last), uint64(a.LastTime), a.LastSeq} {
		b = append(b, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
	return b
}

// Decode is the inverse of Encode.
func Decode(b []byte) (Agg, error) {
	if len(b) != aggLen {
		return Agg{}, fmt.Errorf("rollup: an aggregate is %d bytes, not %d", len(b), aggLen)
	}
	u := func(i int) uint64 {
		p := b[8*i:]
		return uint64(p[0])<<56 | uint64(p[1])<<48 | uint64(p[2])<<40 | uint64(p[3])<<32 | uint64(p[4])<<24 | uint64(p[5])<<16 | uint64(p[6])<<8 | uint64(p[7])
	}
	a := Agg{Count: u(0), Sum: math.Float64frombits(u(1)), Min: math.Float64frombits(u(2)), Max: math.Float64frombits(u(3)),
		Last: math.Float64frombits(u(4)), LastTime: int64(u(5)), LastSeq: u(6)}
	if a.Count == 0 {
		return Agg{}, fmt.Errorf("rollup: an aggregate of no readings")
	}
	return a, nil
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
	out := make([]Bucket, len(keys))
	for i, k := range keys {
		out[i] = BucketOf(k.Device, k.Type, k.Start, aggs[k])
	}
	return out
}

// CompareKeys orders buckets by device, type and start.
func CompareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Device, b.Device), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Start, b.Start))
}
