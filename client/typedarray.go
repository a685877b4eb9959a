package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/fxamacker/cbor/v2"
	"github.com/thingnet/thingnet/identity"
	"math"
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
