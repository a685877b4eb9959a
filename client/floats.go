package client

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/thingnet/thingnet/rollup"
)

// Floats is a column of numbers of a Series: in JSON an array of numbers
// where null stands for a value that is not finite (NaN here). It has its
// own codec, without reflection: a year of minute buckets is millions of
// numbers.
type Floats []float64

// MarshalJSON writes f as a JSON array, NaN and infinities as null.
func (f Floats) MarshalJSON() ([]byte, error) {
	if f == nil {
		return []byte("null"), nil
	}
	b := make([]byte, 0, 2+len(f)*20)
	b = append(b, '[')
	for i, v := range f {
		if i > 0 {
			b = append(b, ',')
		}
		b = rollup.AppendFloat(b, v)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads a JSON array of numbers and nulls (NaN), or null
// (nil). Anything else, a number out of float64's range among them, is an
// error that names what was wrong, and f is then left as it was.
func (f *Floats) UnmarshalJSON(b []byte) error {
	out, err := parseColumn(b, Floats(nil), func(out Floats, tok []byte) (Floats, bool) {
		if string(tok) == "null" {
			return append(out, math.NaN()), true
		}
		v, err := strconv.ParseFloat(string(tok), 64)
		return append(out, v), err == nil && jsonNumber(tok)
	})
	if err == nil {
		*f = out
	}
	return err
}

// Ints is a column of integers of a Series (bucket starts, counts), with
// its own decoder, as Floats.
type Ints []int64

// UnmarshalJSON reads a JSON array of integers, or null (nil).
func (n *Ints) UnmarshalJSON(b []byte) error {
	out, err := parseColumn(b, Ints(nil), func(out Ints, tok []byte) (Ints, bool) {
		v, err := strconv.ParseInt(string(tok), 10, 64)
		return append(out, v), err == nil && jsonNumber(tok)
	})
	if err == nil {
		*n = out
	}
	return err
}

// parseColumn reads a JSON array (or null) of number tokens, each added
// to the column by item (false: not a number it takes).
func parseColumn[S ~[]E, E any](b []byte, _ S, item func(S, []byte) (S, bool)) (S, error) {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil, nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, errors.New("client: a column of numbers is a JSON array")
	}
	p := bytes.TrimSpace(b[1 : len(b)-1])
	out := make(S, 0, bytes.Count(p, []byte{','})+1)
	for n := 0; len(p) > 0; n++ {
		i := 0
		for i < len(p) && p[i] != ',' && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' {
			i++
		}
		var ok bool
		if out, ok = item(out, p[:i]); !ok {
			return nil, fmt.Errorf("client: item %d of a column of numbers, %q, is not a number it can hold", n, truncate(string(p[:i]), 40))
		}
		p = bytes.TrimSpace(p[i:])
		if len(p) == 0 {
			break
		}
		if p[0] != ',' {
			return nil, fmt.Errorf("client: a column of numbers has %q after item %d; want a comma", p[0], n)
		}
		if p = bytes.TrimSpace(p[1:]); len(p) == 0 {
			return nil, errors.New("client: a column of numbers ends with a comma")
		}
	}
	return out, nil
}

// jsonNumber says whether b is a JSON number (RFC 8259, section 6).
func jsonNumber(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	digits := func() int {
		n := 0
		for n < len(b) && '0' <= b[n] && b[n] <= '9' {
			n++
		}
		b = b[n:]
		return n
	}
	if len(b) > 1 && b[0] == '0' && '0' <= b[1] && b[1] <= '9' {
		return false // no leading zeros
	}
	if digits() == 0 {
		return false
	}
	if len(b) > 0 && b[0] == '.' {
		b = b[1:]
		if digits() == 0 {
			return false
		}
	}
	if len(b) > 0 && (b[0] == 'e' || b[0] == 'E') {
		b = b[1:]
		if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
			b = b[1:]
		}
		if digits() == 0 {
			return false
		}
	}
	return len(b) == 0
}
