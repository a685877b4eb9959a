package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/fxamacker/cbor/v2"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/rollup"
)

// Tags of RFC 8746 typed arrays a Series' columns travel as in
// format=cbor (docs/data.md): a CBOR tag on a byte string that holds the
// numbers one after another, little-endian, 8 bytes each.
const (
	TagUint64LE  = 71 // counts
	TagSint64LE  = 79 // bucket starts, Unix ms
	TagFloat64LE = 86 // min, max, sum, mean, last; NaN where not finite
)

// maxTypedArray bounds a column's bytes: a series holds at most 8,192
// buckets (the gateway's), a column 8 bytes a bucket; a little room
// above for other servers.
const maxTypedArray = 1 << 20

// AppendTypedArrayHead appends the tag and byte-string head of a typed
// array of n 8-byte numbers; the numbers follow, little-endian.
func AppendTypedArrayHead(dst []byte, tag uint64, n int) []byte {
	return identity.AppendCBORHead(identity.AppendCBORHead(dst, 6, tag), 2, uint64(n)*8)
}

// MarshalCBOR writes f as a typed array of float64s (tag 86), NaN where a
// value is not finite, as the gateway does.
func (f Floats) MarshalCBOR() ([]byte, error) {
	b := AppendTypedArrayHead(make([]byte, 0, 16+8*len(f)), TagFloat64LE, len(f))
	for _, v := range f {
		if math.IsInf(v, 0) {
			v = math.NaN()
		}
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b, nil
}

// UnmarshalCBOR reads a typed array of float64s (tag 86). Anything else
// is an error that says what was wrong, and f is then left as it was.
func (f *Floats) UnmarshalCBOR(b []byte) error {
	p, err := typedArray(b, TagFloat64LE)
	if err != nil {
		return err
	}
	out := make(Floats, len(p)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	*f = out
	return nil
}

// MarshalCBOR writes n as a typed array of int64s (tag 79).
func (n Ints) MarshalCBOR() ([]byte, error) {
	b := AppendTypedArrayHead(make([]byte, 0, 16+8*len(n)), TagSint64LE, len(n))
	for _, v := range n {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b, nil
}

// UnmarshalCBOR reads a typed array of int64s (tag 79) or of uint64s
// (tag 71, counts) below 2^63.
func (n *Ints) UnmarshalCBOR(b []byte) error {
	p, err := typedArray(b, TagSint64LE, TagUint64LE)
	if err != nil {
		return err
	}
	unsigned := b[0] == 0xd8 && b[1] == TagUint64LE
	out := make(Ints, len(p)/8)
	for i := range out {
		v := binary.LittleEndian.Uint64(p[8*i:])
		if unsigned && v > math.MaxInt64 {
			return fmt.Errorf("client: item %d of a column of counts, %d, is over 2^63-1", i, v)
		}
		out[i] = int64(v)
	}
	*n = out
	return nil
}

// typedArray returns the numbers' bytes of b, one CBOR item: a tag of
// tags (in one byte after 0xd8, as every typed-array tag is) on a
// definite-length byte string of a multiple of 8 bytes.
func typedArray(b []byte, tags ...byte) ([]byte, error) {
	if len(b) < 3 || b[0] != 0xd8 {
		return nil, errors.New("client: a column in CBOR is a tagged typed array (RFC 8746)")
	}
	ok := false
	for _, t := range tags {
		ok = ok || b[1] == t
	}
	if !ok {
		return nil, fmt.Errorf("client: a column in CBOR has tag %d; want one of %v (RFC 8746)", b[1], tags)
	}
	h := b[2]
	if h>>5 != 2 {
		return nil, errors.New("client: a typed array's tag is on something else than a byte string")
	}
	var n uint64
	p := b[3:]
	switch ai := h & 0x1f; {
	case ai < 24:
		n = uint64(ai)
	case ai == 24 && len(p) >= 1:
		n, p = uint64(p[0]), p[1:]
	case ai == 25 && len(p) >= 2:
		n, p = uint64(binary.BigEndian.Uint16(p)), p[2:]
	case ai == 26 && len(p) >= 4:
		n, p = uint64(binary.BigEndian.Uint32(p)), p[4:]
	case ai == 27 && len(p) >= 8:
		n, p = binary.BigEndian.Uint64(p), p[8:]
	default:
		return nil, errors.New("client: a typed array's byte string has no definite length")
	}
	switch {
	case n > maxTypedArray:
		return nil, fmt.Errorf("client: a typed array of %d bytes is over the %d a column may hold", n, maxTypedArray)
	case n%8 != 0:
		return nil, fmt.Errorf("client: a typed array of %d bytes is no whole number of 8-byte numbers", n)
	case uint64(len(p)) != n:
		return nil, fmt.Errorf("client: a typed array says %d bytes and holds %d", n, len(p))
	}
	return p, nil
}

// queryCBOR decodes answers of format=cbor: an indefinite-length map and
// series array (the gateway streams them), no duplicate keys.
var queryCBOR = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthAllowed,
		MaxArrayElements: 1 << 20,
		MaxNestedLevels:  8,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// DecodeQueryCBOR decodes an answer of GET /v1/readings/query with
// format=cbor (docs/data.md) into a: the fields of QueryAnswer under their
// JSON names, buckets in Series, each column a typed array.
func DecodeQueryCBOR(b []byte, a *QueryAnswer) error {
	var out QueryAnswer
	if err := queryCBOR.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("decoding a query answer in CBOR: %w", err)
	}
	for i, s := range out.Series {
		n := len(s.T)
		for _, l := range []int{len(s.Count), len(s.Min), len(s.Max), len(s.Sum), len(s.Mean), len(s.Last)} {
			if l != n {
				return fmt.Errorf("decoding a query answer in CBOR: series %d has columns of %d and %d buckets", i, n, l)
			}
		}
	}
	*a = out
	return nil
}

// The compact forms a Series' columns may take in format=cbor
// (docs/data.md, "Columns in CBOR"), beside the typed arrays: a bucket
// start column that is regular (T[i] = T[i-1] + step but at a few gaps)
// as runs, a count column of one number as that number, and a column of
// floats identical to an earlier one as that column's name. A device
// reading once a minute has one reading in every minute bucket, so min =
// max = sum = mean = last and every count is 1: its year of minute
// buckets is the min column alone, 8 bytes a bucket instead of 56.

// floatColumns are the float columns of a Series in their order on the
// wire; a column may name only one before it.
var floatColumns = [5]string{"min", "max", "sum", "mean", "last"}

// Bounds of the runs form of a start column, so that no start overflows:
// |start| below 2^62, a step below 2^40 ms, at most 2^17 buckets.
const (
	maxRunStart = 1 << 62
	maxRunStep  = 1 << 40
)

// AppendSeriesCBOR appends the buckets of device and content type typ
// that start at starts (in order, each at least step after the one
// before) and aggregate aggs, as a Series in format=cbor (docs/data.md):
// a map of device, type, t, count, min, max, sum, mean and last, each
// column in its compact form where that is shorter, else a typed array.
// Values that are not finite are NaN. step is the bucket size in ms.
func AppendSeriesCBOR(dst []byte, device, typ string, step int64, starts []int64, aggs []rollup.Agg) []byte {
	n := len(starts)
	dst = append(dst, 0xa9) // a map of 9 pairs
	dst = AppendCBORText(AppendCBORText(dst, "device"), device)
	dst = AppendCBORText(AppendCBORText(dst, "type"), typ)
	dst = AppendCBORText(dst, "t")
	runs := 0
	regular := step > 0 && step < maxRunStep
	for i, t := range starts {
		if i == 0 || t != starts[i-1]+step {
			runs++
		}
		regular = regular && t > -maxRunStart && t < maxRunStart
	}
	if regular && n > 0 && 2*runs < n {
		dst = identity.AppendCBORHead(append(dst, 0x83), 0, uint64(n))
		dst = identity.AppendCBORHead(dst, 0, uint64(step))
		dst = AppendTypedArrayHead(dst, TagSint64LE, 2*runs)
		for i, t := range starts {
			if i == 0 || t != starts[i-1]+step {
				dst = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(dst, uint64(i)), uint64(t))
			}
		}
	} else {
		dst = AppendTypedArrayHead(dst, TagSint64LE, n)
		for _, t := range starts {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(t))
		}
	}
	dst = AppendCBORText(dst, "count")
	one := n > 0
	for i := range aggs {
		one = one && aggs[i].Count == aggs[0].Count
	}
	if one && aggs[0].Count <= math.MaxInt64 {
		dst = identity.AppendCBORHead(dst, 0, aggs[0].Count)
	} else {
		dst = AppendTypedArrayHead(dst, TagUint64LE, n)
		for i := range aggs {
			dst = binary.LittleEndian.AppendUint64(dst, aggs[i].Count)
		}
	}
	same := sameColumns(aggs)
	for c, name := range floatColumns {
		dst = AppendCBORText(dst, name)
		if e := same[c]; e >= 0 {
			dst = AppendCBORText(dst, floatColumns[e])
			continue
		}
		dst = AppendTypedArrayHead(dst, TagFloat64LE, n)
		for i := range aggs {
			dst = binary.LittleEndian.AppendUint64(dst, columnBits(&aggs[i], c))
		}
	}
	return dst
}

// columnBits is the bits of float column c (floatColumns) of a as sent:
// NaN where it is not finite.
func columnBits(a *rollup.Agg, c int) uint64 {
	var v float64
	switch c {
	case 0:
		v = a.Min
	case 1:
		v = a.Max
	case 2:
		v = a.Sum
	case 3:
		v = a.Mean()
	default:
		v = a.Last
	}
	if math.IsInf(v, 0) {
		v = math.NaN() // as null in JSON: the sum overflowed
	}
	return math.Float64bits(v)
}

// sameColumns says, for each float column, the first column before it
// whose numbers are its own, bit for bit, in every bucket of aggs (-1 if
// none, or if there are no buckets).
func sameColumns(aggs []rollup.Agg) [5]int {
	const pairs = 1<<(1*5+0) | 1<<(2*5+0) | 1<<(2*5+1) | 1<<(3*5+0) | 1<<(3*5+1) | 1<<(3*5+2) |
		1<<(4*5+0) | 1<<(4*5+1) | 1<<(4*5+2) | 1<<(4*5+3) // bit c*5+e: column c is column e, e < c
	eq := uint32(pairs)
	if len(aggs) == 0 {
		eq = 0
	}
	for i := 0; i < len(aggs) && eq != 0; i++ {
		a := &aggs[i]
		if a.Count == 1 && !math.IsNaN(a.Min) {
			continue // one reading: each column is its value (mean: value/1)
		}
		var v [5]uint64
		for c := range v {
			v[c] = columnBits(a, c)
		}
		for p := eq; p != 0; p &= p - 1 {
			b := bits.TrailingZeros32(p)
			if v[b/5] != v[b%5] {
				eq &^= 1 << b
			}
		}
	}
	out := [5]int{-1, -1, -1, -1, -1}
	for c := 4; c > 0; c-- {
		for e := c - 1; e >= 0; e-- {
			if eq&(1<<(c*5+e)) != 0 {
				out[c] = e
			}
		}
	}
	return out
}

// AppendCBORText appends s as a CBOR text string.
func AppendCBORText(dst []byte, s string) []byte {
	return append(identity.AppendCBORHead(dst, 3, uint64(len(s))), s...)
}

// seriesCBOR is a Series as it comes in CBOR, its columns not yet
// decoded: each in one of the forms AppendSeriesCBOR writes.
type seriesCBOR struct {
	Device string          `cbor:"device"`
	Type   string          `cbor:"type"`
	T      cbor.RawMessage `cbor:"t"`
	Count  cbor.RawMessage `cbor:"count"`
	Min    cbor.RawMessage `cbor:"min"`
	Max    cbor.RawMessage `cbor:"max"`
	Sum    cbor.RawMessage `cbor:"sum"`
	Mean   cbor.RawMessage `cbor:"mean"`
	Last   cbor.RawMessage `cbor:"last"`
}

// UnmarshalCBOR reads a Series of format=cbor, its columns typed arrays
// or their compact forms (AppendSeriesCBOR), into the same columns as
// JSON gives. A column in no form of its own, a name of a column that is
// not before it, runs that are out of order or out of bounds, and columns
// of unequal length are errors that say which, and s is then left as it
// was.
func (s *Series) UnmarshalCBOR(b []byte) error {
	var w seriesCBOR
	if err := queryCBOR.Unmarshal(b, &w); err != nil {
		return err
	}
	out := Series{Device: w.Device, Type: w.Type}
	var err error
	if out.T, err = startColumn(w.T); err != nil {
		return fmt.Errorf("client: column t: %w", err)
	}
	n := len(out.T)
	if out.Count, err = countColumn(w.Count, n); err != nil {
		return fmt.Errorf("client: column count: %w", err)
	}
	cols := [5]*Floats{&out.Min, &out.Max, &out.Sum, &out.Mean, &out.Last}
	for c, raw := range [5]cbor.RawMessage{w.Min, w.Max, w.Sum, w.Mean, w.Last} {
		if name, ok := cborTextItem(raw); ok {
			e := slices.Index(floatColumns[:c], name)
			if e < 0 {
				return fmt.Errorf("client: column %s repeats %q: want one of %v, a column before it", floatColumns[c], name, floatColumns[:c])
			}
			*cols[c] = slices.Clone(*cols[e])
			continue
		}
		if raw == nil {
			return fmt.Errorf("client: series of %d buckets has no column %s", n, floatColumns[c])
		}
		if err := cols[c].UnmarshalCBOR(raw); err != nil {
			return fmt.Errorf("client: column %s: %w", floatColumns[c], err)
		}
		if len(*cols[c]) != n {
			return fmt.Errorf("client: series has columns of %d and %d buckets", n, len(*cols[c]))
		}
	}
	*s = out
	return nil
}

// startColumn decodes a column of bucket starts: a typed array of int64s
// (as Ints.UnmarshalCBOR reads it) or runs, [n, step, typed array of (i, start) pairs]: bucket j of the run
// that begins at bucket i starts at start + (j-i)×step.
func startColumn(raw cbor.RawMessage) (Ints, error) {
	if len(raw) == 0 || raw[0] != 0x83 {
		var t Ints
		err := t.UnmarshalCBOR(raw)
		return t, err
	}
	n, p, ok := cborUint(raw[1:])
	step, p, ok2 := cborUint(p)
	if !ok || !ok2 {
		return nil, errors.New("runs are [n, step, pairs] with n and step unsigned integers")
	}
	if n > maxTypedArray/8 || step == 0 || step >= maxRunStep {
		return nil, fmt.Errorf("runs of %d buckets %d ms apart: want at most %d buckets, 1 ms to 2^40 ms apart", n, step, maxTypedArray/8)
	}
	pairs, err := typedArray(p, TagSint64LE)
	if err != nil {
		return nil, err
	}
	if len(pairs)%16 != 0 || len(pairs) == 0 && n > 0 {
		return nil, fmt.Errorf("runs' pairs are %d bytes: want (index, start) pairs, 16 bytes each, the first at index 0", len(pairs))
	}
	out := make(Ints, n)
	for k := 0; k < len(pairs); k += 16 {
		i, start := binary.LittleEndian.Uint64(pairs[k:]), int64(binary.LittleEndian.Uint64(pairs[k+8:]))
		end := n
		if k+16 < len(pairs) {
			end = binary.LittleEndian.Uint64(pairs[k+16:])
		}
		if k == 0 && i != 0 || i >= end || end > n || start <= -maxRunStart || start >= maxRunStart {
			return nil, fmt.Errorf("run %d at bucket %d of %d, starting %d: want runs in order from bucket 0, starts below 2^62", k/16, i, n, start)
		}
		for j := i; j < end; j++ {
			out[j] = start + int64(j-i)*int64(step)
		}
	}
	return out, nil
}

// countColumn decodes a column of n counts: a typed array (of uint64s,
// as Ints.UnmarshalCBOR reads it) or one unsigned integer, the count of
// every bucket.
func countColumn(raw cbor.RawMessage, n int) (Ints, error) {
	if v, rest, ok := cborUint(raw); ok && len(rest) == 0 {
		if v > math.MaxInt64 {
			return nil, fmt.Errorf("a count of %d is over 2^63-1", v)
		}
		out := make(Ints, n)
		for i := range out {
			out[i] = int64(v)
		}
		return out, nil
	}
	var out Ints
	if err := out.UnmarshalCBOR(raw); err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("series has columns of %d and %d buckets", n, len(out))
	}
	return out, nil
}

// cborUint reads an unsigned integer item at the start of b.
func cborUint(b []byte) (v uint64, rest []byte, ok bool) {
	if len(b) == 0 || b[0]>>5 != 0 {
		return 0, b, false
	}
	switch ai := b[0] & 0x1f; {
	case ai < 24:
		return uint64(ai), b[1:], true
	case ai == 24 && len(b) >= 2:
		return uint64(b[1]), b[2:], true
	case ai == 25 && len(b) >= 3:
		return uint64(binary.BigEndian.Uint16(b[1:])), b[3:], true
	case ai == 26 && len(b) >= 5:
		return uint64(binary.BigEndian.Uint32(b[1:])), b[5:], true
	case ai == 27 && len(b) >= 9:
		return binary.BigEndian.Uint64(b[1:]), b[9:], true
	}
	return 0, b, false
}

// cborTextItem reads b, one CBOR item, as a short text string.
func cborTextItem(b []byte) (string, bool) {
	if len(b) == 0 || b[0]>>5 != 3 || b[0]&0x1f >= 24 || len(b) != 1+int(b[0]&0x1f) {
		return "", false
	}
	return string(b[1:]), true
}
