package client

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// TestQueryCBOR: a Series goes through CBOR as typed arrays and comes
// back the same, NaN where a number was not finite; what is not a typed
// array of the right kind is refused with a reason, and changes nothing.
func TestQueryCBOR(t *testing.T) {
	in := QueryAnswer{Gateway: "gw", Axis: AxisDevice, Bucket: "1m", Devices: 1, Next: "c", Series: []Series{{
		Device: "d", Type: "t", T: Ints{0, 60000, -60000}, Count: Ints{1, 2, 3},
		Min: Floats{1, 2, 3}, Max: Floats{1, 2, 4}, Sum: Floats{1, math.Inf(1), 7}, Mean: Floats{1, math.NaN(), 7.0 / 3}, Last: Floats{1, 2, 3.5}}}}
	b, err := cbor.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte{0xd8, TagFloat64LE, 0x58, 24}) || !bytes.Contains(b, []byte{0xd8, TagSint64LE, 0x58, 24}) {
		t.Fatalf("columns are not typed arrays: % x", b)
	}
	var out QueryAnswer
	if err := DecodeQueryCBOR(b, &out); err != nil {
		t.Fatal(err)
	}
	s := out.Series[0]
	if out.Gateway != "gw" || out.Next != "c" || s.Len() != 3 || s.T[2] != -60000 || s.Count[2] != 3 || s.Mean[2] != 7.0/3 || !math.IsNaN(s.Sum[1]) || !math.IsNaN(s.Mean[1]) {
		t.Fatalf("decoded %+v", out)
	}

	for _, bad := range []struct {
		name string
		in   []byte
		want string
	}{
		{"an array of numbers", []byte{0x81, 0x01}, "tagged typed array"},
		{"a float32 array", []byte{0xd8, 85, 0x44, 0, 0, 0, 0}, "tag 85"},
		{"a tag on text", []byte{0xd8, TagFloat64LE, 0x60}, "byte string"},
		{"a length that is no multiple of 8", []byte{0xd8, TagFloat64LE, 0x43, 1, 2, 3}, "no whole number"},
		{"a short byte string", []byte{0xd8, TagFloat64LE, 0x48, 1, 2}, "says 8 bytes and holds 2"},
		{"an indefinite byte string", []byte{0xd8, TagFloat64LE, 0x5f, 0xff}, "no definite length"},
		{"a huge length", []byte{0xd8, TagFloat64LE, 0x5b, 0, 0, 1, 0, 0, 0, 0, 0}, "over the"},
	} {
		f := Floats{7}
		if err := f.UnmarshalCBOR(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) || len(f) != 1 || f[0] != 7 {
			t.Errorf("%s: UnmarshalCBOR = %v, left %v; want an error saying %q and nothing changed", bad.name, err, f, bad.want)
		}
	}
	counts := Ints{7}
	if err := counts.UnmarshalCBOR(append([]byte{0xd8, TagUint64LE, 0x48}, 0, 0, 0, 0, 0, 0, 0, 0x80)); err == nil || len(counts) != 1 {
		t.Errorf("a count of 2^63 = %v, %v; want refused", counts, err)
	}
	short := in
	short.Series = []Series{in.Series[0]}
	short.Series[0].Last = Floats{1}
	b, _ = cbor.Marshal(short)
	out = QueryAnswer{Gateway: "kept"}
	if err := DecodeQueryCBOR(b, &out); err == nil || !strings.Contains(err.Error(), "columns of 3 and 1") || out.Gateway != "kept" {
		t.Errorf("columns of unequal length = %v, %+v", err, out)
	}
}

// FuzzDecodeQueryCBOR: any bytes decode to an answer whose series have
// columns of one length, or to an error, never a panic.
func FuzzDecodeQueryCBOR(f *testing.F) {
	ok, _ := cbor.Marshal(QueryAnswer{Gateway: "gw", Series: []Series{{Device: "d", T: Ints{1}, Count: Ints{1}, Min: Floats{1}, Max: Floats{1}, Sum: Floats{1}, Mean: Floats{1}, Last: Floats{1}}}})
	f.Add(ok)
	f.Add([]byte{0xbf, 0x66, 's', 'e', 'r', 'i', 'e', 's', 0x9f, 0xff, 0xff})
	f.Add([]byte{0xd8, TagFloat64LE, 0x48, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a QueryAnswer
		if DecodeQueryCBOR(b, &a) != nil {
			return
		}
		for _, s := range a.Series {
			if len(s.Count) != s.Len() || len(s.Min) != s.Len() || len(s.Max) != s.Len() || len(s.Sum) != s.Len() || len(s.Mean) != s.Len() || len(s.Last) != s.Len() {
				t.Fatalf("%x decoded to a series of unequal columns", b)
			}
		}
		var f Floats
		_ = f.UnmarshalCBOR(b)
		var n Ints
		_ = n.UnmarshalCBOR(b)
	})
}
