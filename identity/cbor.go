package identity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// This file holds the small part of CBOR (RFC 8949) that COSE_Sign1 needs.
// The reader accepts definite lengths only and integers, lengths and tag
// numbers in their shortest form (the preferred serialization, §4.1), so
// every item it accepts has exactly one encoding. It never allocates.

// CBOR major types (RFC 8949 §3.1).
const (
	majorUint   = 0
	majorNegInt = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

// maxCBORDepth bounds the nesting of items skipped by cborReader.skip.
const maxCBORDepth = 16

// majorName names the major types in error messages.
func majorName(major byte) string {
	switch major {
	case majorUint:
		return "unsigned integer"
	case majorNegInt:
		return "negative integer"
	case majorBytes:
		return "byte string"
	case majorText:
		return "text string"
	case majorArray:
		return "array"
	case majorMap:
		return "map"
	case majorTag:
		return "tag"
	}
	return "simple value or float"
}

// cborReader reads CBOR items from data, starting at off.
type cborReader struct {
	data []byte
	off  int
}

func (r *cborReader) remaining() int { return len(r.data) - r.off }

func errCBOREnd() error { return errors.New("cbor: unexpected end of data") }

// head reads the head of an item: its major type and argument (a value, a
// length, a count, a tag number, or the bits of a simple value or float).
func (r *cborReader) head() (major byte, arg uint64, err error) {
	if r.remaining() < 1 {
		return 0, 0, errCBOREnd()
	}
	ib := r.data[r.off]
	r.off++
	major, ai := ib>>5, ib&0x1f
	switch {
	case ai < 24:
		return major, uint64(ai), nil
	case ai == 31:
		return 0, 0, errors.New("cbor: indefinite-length items are not allowed")
	case ai > 27:
		return 0, 0, fmt.Errorf("cbor: reserved additional information %d", ai)
	}
	n := 1 << (ai - 24)
	if r.remaining() < n {
		return 0, 0, errCBOREnd()
	}
	for _, c := range r.data[r.off : r.off+n] {
		arg = arg<<8 | uint64(c)
	}
	r.off += n
	if major == majorSimple {
		// ai 25 to 27 are floats. ai 24 is a simple value in one byte,
		// which must not be one that fits in the initial byte (§3.3).
		if ai == 24 && arg < 32 {
			return 0, 0, fmt.Errorf("cbor: simple value %d in two bytes", arg)
		}
		return major, arg, nil
	}
	var shortest bool
	switch n {
	case 1:
		shortest = arg >= 24
	case 2:
		shortest = arg > math.MaxUint8
	case 4:
		shortest = arg > math.MaxUint16
	default:
		shortest = arg > math.MaxUint32
	}
	if !shortest {
		return 0, 0, fmt.Errorf("cbor: %s argument %d not in shortest form", majorName(major), arg)
	}
	return major, arg, nil
}

// expect reads the head of an item of the given major type.
func (r *cborReader) expect(major byte) (uint64, error) {
	m, arg, err := r.head()
	if err != nil {
		return 0, err
	}
	if m != major {
		return 0, fmt.Errorf("cbor: got %s, want %s", majorName(m), majorName(major))
	}
	return arg, nil
}

// take returns the next n bytes of data, capped so that appending to the
// result cannot overwrite what follows.
func (r *cborReader) take(n uint64) ([]byte, error) {
	if n > uint64(r.remaining()) {
		return nil, errCBOREnd()
	}
	end := r.off + int(n)
	b := r.data[r.off:end:end]
	r.off = end
	return b, nil
}

// bytes reads a byte string.
func (r *cborReader) bytes() ([]byte, error) {
	n, err := r.expect(majorBytes)
	if err != nil {
		return nil, err
	}
	return r.take(n)
}

// int reads an integer that fits in an int64.
func (r *cborReader) int() (int64, error) {
	m, arg, err := r.head()
	if err != nil {
		return 0, err
	}
	if m != majorUint && m != majorNegInt {
		return 0, fmt.Errorf("cbor: got %s, want integer", majorName(m))
	}
	if arg > math.MaxInt64 {
		return 0, errors.New("cbor: integer out of range")
	}
	if m == majorNegInt {
		return -1 - int64(arg), nil
	}
	return int64(arg), nil
}

// skip reads over one well-formed item, nested at most maxCBORDepth deep.
// Text strings must be valid UTF-8.
func (r *cborReader) skip(depth int) error {
	if depth > maxCBORDepth {
		return fmt.Errorf("cbor: items nested more than %d deep", maxCBORDepth)
	}
	m, arg, err := r.head()
	if err != nil {
		return err
	}
	var items uint64
	switch m {
	case majorUint, majorNegInt, majorSimple:
		return nil
	case majorBytes:
		_, err := r.take(arg)
		return err
	case majorText:
		s, err := r.take(arg)
		if err != nil {
			return err
		}
		if !utf8.Valid(s) {
			return errors.New("cbor: text string is not valid UTF-8")
		}
		return nil
	case majorArray:
		items = arg
	case majorMap:
		if arg > uint64(r.remaining())/2 {
			return errCBOREnd()
		}
		items = 2 * arg
	case majorTag:
		items = 1
	}
	// Every item takes at least one byte: refuse counts the data cannot
	// hold before looping over them.
	if items > uint64(r.remaining()) {
		return errCBOREnd()
	}
	for range items {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// AppendCBORHead appends the shortest head of a CBOR item of the given
// major type (0 unsigned, 2 bytes, 3 text, 6 tag...) and argument (RFC
// 8949, section 3).
func AppendCBORHead(b []byte, major byte, arg uint64) []byte {
	m := major << 5
	switch {
	case arg < 24:
		return append(b, m|byte(arg))
	case arg <= math.MaxUint8:
		return append(b, m|24, byte(arg))
	case arg <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(arg))
	case arg <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(arg))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), arg)
}

// headSize returns the size of the shortest head with argument arg.
func headSize(arg uint64) int {
	switch {
	case arg < 24:
		return 1
	case arg <= math.MaxUint8:
		return 2
	case arg <= math.MaxUint16:
		return 3
	case arg <= math.MaxUint32:
		return 5
	}
	return 9
}

// appendBytes appends p as a byte string.
func appendBytes(b, p []byte) []byte {
	return append(AppendCBORHead(b, majorBytes, uint64(len(p))), p...)
}

// appendInt appends v as an integer.
func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return AppendCBORHead(b, majorNegInt, uint64(-1-v))
	}
	return AppendCBORHead(b, majorUint, uint64(v))
}
