package rollup

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// AppendFloat appends v as encoding/json writes a float64 — the shortest
// decimal that reads back to the same bits, in exponent form below 1e-6
// and from 1e21 — or null when v is not finite (JSON has no infinity).
func AppendFloat(dst []byte, v float64) []byte {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return append(dst, "null"...)
	}
	f := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		f = 'e'
	}
	dst = strconv.AppendFloat(dst, v, f, -1, 64)
	if n := len(dst); f == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2], dst = dst[n-1], dst[:n-1] // e-09 is written e-9
	}
	return dst
}

// JSONRows appends buckets as encoding/json marshals a Bucket (the rows
// of GET /v1/readings/query), byte for byte, with neither reflection nor
// an allocation per bucket: the device and type are quoted once per run of
// buckets of the same pair, the date once per day.
type JSONRows struct {
	device, typ string
	head        []byte // {"device":"…","type":"…","start":"
	haveDay     bool
	day         int64
	date        []byte // 2006-01-02T
}

// Append appends the bucket of device and typ that starts at start (Unix
// ms) and aggregates a.
func (e *JSONRows) Append(dst []byte, device, typ string, start int64, a *Agg) []byte {
	if e.head == nil || device != e.device || typ != e.typ {
		d, _ := json.Marshal(device)
		t, _ := json.Marshal(typ)
		e.device, e.typ = device, typ
		e.head = append(append(append(append(append(e.head[:0], `{"device":`...), d...), `,"type":`...), t...), `,"start":"`...)
	}
	dst = append(dst, e.head...)
	dst = e.appendTime(dst, start)
	dst = append(dst, `","count":`...)
	dst = strconv.AppendUint(dst, a.Count, 10)
	dst = append(dst, `,"min":`...)
	m := len(dst)
	dst = AppendFloat(dst, a.Min)
	min := dst[m:]
	// Of a bucket of one reading every number is the same: written once.
	same := func(dst []byte, v float64) []byte {
		if math.Float64bits(v) == math.Float64bits(a.Min) {
			return append(dst, min...)
		}
		return AppendFloat(dst, v)
	}
	dst = append(dst, `,"max":`...)
	dst = same(dst, a.Max)
	if s := a.Sum; !math.IsInf(s, 0) && !math.IsNaN(s) {
		dst = append(dst, `,"sum":`...)
		dst = same(dst, s)
		dst = append(dst, `,"mean":`...)
		dst = same(dst, a.Mean())
	}
	dst = append(dst, `,"last":`...)
	dst = same(dst, a.Last)
	return append(dst, '}')
}

// appendTime appends ms (Unix ms) as time.Time marshals it in UTC
// (RFC 3339, fractional seconds only when there are some).
func (e *JSONRows) appendTime(dst []byte, ms int64) []byte {
	const dayMS = 86_400_000
	d := Day.Start(ms) / dayMS
	r := ms - d*dayMS
	if r%1000 != 0 || d < -719_162 || d >= 2_932_897 { // fractions, or a year outside 0001–9999
		return time.UnixMilli(ms).UTC().AppendFormat(dst, time.RFC3339Nano)
	}
	if !e.haveDay || d != e.day {
		e.date = time.UnixMilli(d*dayMS).UTC().AppendFormat(e.date[:0], "2006-01-02T")
		e.haveDay, e.day = true, d
	}
	s := r / 1000
	two := func(dst []byte, n int64) []byte { return append(dst, byte('0'+n/10), byte('0'+n%10)) }
	dst = append(dst, e.date...)
	dst = two(dst, s/3600)
	dst = append(dst, ':')
	dst = two(dst, s/60%60)
	dst = append(dst, ':')
	dst = two(dst, s%60)
	return append(dst, 'Z')
}
