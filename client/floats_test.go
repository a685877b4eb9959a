package client

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestFloats(t *testing.T) {
	var s Series
	in := `{"device":"d","type":"t","t":[0,60000],"count":[1,2],"min":[1.5,-0],"max":[ 1e300 , 2],"sum":[null,3E-7],"mean":[null,1.5e-7],"last":[]}`
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.Min[0] != 1.5 || !math.Signbit(s.Min[1]) || s.Max[0] != 1e300 || !math.IsNaN(s.Sum[0]) || s.Sum[1] != 3e-7 || s.Last == nil || len(s.Last) != 0 {
		t.Fatalf("decoded %+v", s)
	}
	var n Ints
	for _, bad := range []string{`[1.5]`, `[null]`, `[9223372036854775808]`, `[1e3]`} {
		if err := n.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("Ints.UnmarshalJSON(%s) = %v; want an error", bad, n)
		}
	}
	out, err := json.Marshal(s.Sum)
	if err != nil || string(out) != "[null,3e-7]" {
		t.Fatalf("Marshal(%v) = %s, %v; want [null,3e-7]", s.Sum, out, err)
	}
	for _, bad := range []struct{ in, want string }{
		{`{}`, "array"},
		{`[1,]`, "comma"},
		{`[1 2]`, "want a comma"},
		{`["1"]`, "not a number"},
		{`[NaN]`, "not a number"},
		{`[0x10]`, "not a number"},
		{`[01]`, "not a number"},
		{`[1e400]`, "not a number"},
		{`[1.]`, "not a number"},
	} {
		f := Floats{7}
		if err := f.UnmarshalJSON([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) || len(f) != 1 || f[0] != 7 {
			t.Errorf("UnmarshalJSON(%s) = %v, left %v; want an error saying %q and nothing changed", bad.in, err, f, bad.want)
		}
	}
}

// FuzzFloats: any bytes decode to a column or an error, never a panic;
// a column decoded encodes to one that decodes to the same numbers.
func FuzzFloats(f *testing.F) {
	for _, s := range []string{`[1.5,-0,null,1e-7,2.5E+300]`, `null`, ` [ ] `, `[1,]`, `[-]`, `[0.1e5, 123456789012345678901234567890]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Floats
		if err := got.UnmarshalJSON(b); err != nil {
			return
		}
		enc, err := got.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var again Floats
		if err := again.UnmarshalJSON(enc); err != nil || len(again) != len(got) {
			t.Fatalf("%q decoded to %v, encoded %s, decoded %v, %v", b, got, enc, again, err)
		}
		for i := range got {
			if math.Float64bits(got[i]) != math.Float64bits(again[i]) && !(math.IsNaN(got[i]) && math.IsNaN(again[i])) {
				t.Fatalf("%q: item %d %v, then %v", b, i, got[i], again[i])
			}
		}
	})
}
