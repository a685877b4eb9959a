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
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*f = nil
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return errors.New("client: a column of numbers is a JSON array")
	}
	p := bytes.TrimSpace(b[1 : len(b)-1])
	out := make(Floats, 0, bytes.Count(p, []byte{','})+1)
	for n := 0; len(p) > 0; n++ {
		i := 0
		for i < len(p) && p[i] != ',' && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' {
			i++
		}
		tok := p[:i]
		if string(tok) == "null" {
			out = append(out, math.NaN())
		} else {
			if !jsonNumber(tok) {
				return fmt.Errorf("client: item %d of a column of numbers is %q, not a number", n, truncate(string(tok), 40))
			}
			v, err := strconv.ParseFloat(string(tok), 64)
			if err != nil {
				return fmt.Errorf("client: item %d of a column of numbers: %q is out of range", n, truncate(string(tok), 40))
			}
			out = append(out, v)
		}
		p = bytes.TrimSpace(p[i:])
		if len(p) == 0 {
			break
		}
		if p[0] != ',' {
			return fmt.Errorf("client: a column of numbers has %q after item %d; want a comma", p[0], n)
		}
		if p = bytes.TrimSpace(p[1:]); len(p) == 0 {
			return errors.New("client: a column of numbers ends with a comma")
		}
	}
	*f = out
	return nil
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
