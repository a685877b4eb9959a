package client

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/rollup"
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
	// Compact columns: runs of starts with a gap, one count, names.
	one := []rollup.Agg{{Count: 1, Sum: 1, Min: 1, Max: 1, Last: 1}, {Count: 1, Sum: 2, Min: 2, Max: 2, Last: 2}, {Count: 1, Sum: -3, Min: -3, Max: -3, Last: -3}}
	f.Add(append(AppendSeriesCBOR([]byte("\xbf\x66series\x9f"), "d", "t", 60_000, []int64{0, 60_000, 600_000}, one), 0xff, 0xff))
	f.Add(append(AppendSeriesCBOR([]byte("\xbf\x66series\x9f"), "d", "t", 60_000, []int64{0, 60_000, 120_000, 180_000, 240_000}, append(one, rollup.Agg{Count: 2, Sum: 9, Min: 4, Max: 5, Last: 4}, one[0])), 0xff, 0xff))
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

// TestSeriesCBORCompact: AppendSeriesCBOR sends each column in its
// shortest form — starts as runs, one count, a float column as the name
// of an identical earlier one — and Series.UnmarshalCBOR gives back the
// columns bit for bit (NaN where a value was not finite), over random
// series: one reading a bucket, several, gaps, negative numbers and
// values near the float64 limits.
func TestSeriesCBORCompact(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 8746))
	t.Logf("seed %d", seed)
	edge := []float64{0, math.Copysign(0, -1), -1.5, 1e-310, -math.MaxFloat64, math.MaxFloat64, math.SmallestNonzeroFloat64, 21.25}
	for round := range 300 {
		n := rng.IntN(40)
		if round%10 == 0 {
			n = rng.IntN(3000)
		}
		const step = 60_000
		most := 1
		if rng.IntN(3) == 0 {
			most = 3
		}
		starts, aggs := testutil.RandomRun(rng, n, step, most, edge)
		b := AppendSeriesCBOR(nil, "did:key:z6Mk", "temperature/celsius", step, starts, aggs)
		var s Series
		if err := s.UnmarshalCBOR(b); err != nil {
			t.Fatalf("round %d: %v (% x)", round, err, b[:min(len(b), 200)])
		}
		if s.Device != "did:key:z6Mk" || s.Type != "temperature/celsius" || s.Len() != n || !slices.Equal(s.T, Ints(starts)) {
			t.Fatalf("round %d: series %s %s of %d starts %v; want %d starting %v", round, s.Device, s.Type, s.Len(), s.T, n, starts)
		}
		for i := range aggs {
			a := &aggs[i]
			want := []uint64{columnBits(a, 0), columnBits(a, 1), columnBits(a, 2), columnBits(a, 3), columnBits(a, 4)}
			got := []uint64{math.Float64bits(s.Min[i]), math.Float64bits(s.Max[i]), math.Float64bits(s.Sum[i]), math.Float64bits(s.Mean[i]), math.Float64bits(s.Last[i])}
			if s.Count[i] != int64(a.Count) || !slices.Equal(got, want) {
				t.Fatalf("round %d, bucket %d: count %d, bits %x; want %d, %x", round, i, s.Count[i], got, a.Count, want)
			}
		}
		if most == 1 && n > 2 && len(b) > 9*n+300 { // the min column, 8 bytes a bucket, and gaps' runs
			t.Errorf("round %d: %d buckets of one reading each take %d bytes; want the min column and little else", round, n, len(b))
		}
	}
}

// TestSeriesCBORRefused: compact columns that are not well formed are
// refused with a reason, and the series is left as it was.
func TestSeriesCBORRefused(t *testing.T) {
	one := []rollup.Agg{{Count: 1, Sum: 1, Min: 1, Max: 1, Last: 1}, {Count: 1, Sum: 2, Min: 2, Max: 2, Last: 2}, {Count: 1, Sum: 3, Min: 3, Max: 3, Last: 3}}
	ok := AppendSeriesCBOR(nil, "d", "t", 60_000, []int64{0, 60_000, 120_000}, one)
	if !bytes.Contains(ok, []byte{0x83, 3, 0x19, 0xea, 0x60}) || !bytes.Contains(ok, []byte("\x65count\x01")) || !bytes.Contains(ok, []byte("\x64last\x63min")) {
		t.Fatalf("compact forms not used: % x", ok)
	}
	// swap replaces the first old in ok by new.
	swap := func(old, new []byte) []byte {
		if !bytes.Contains(ok, old) {
			t.Fatalf("% x not in % x", old, ok)
		}
		return bytes.Replace(ok, old, new, 1)
	}
	runs := func(n, step byte, pairs ...uint64) []byte {
		b := AppendTypedArrayHead([]byte{0x83, n, 0x18, step}, TagSint64LE, len(pairs))
		for _, p := range pairs {
			b = binary.LittleEndian.AppendUint64(b, p)
		}
		return b
	}
	head := bytes.Index(ok, []byte{0x61, 't', 0x83})
	tail := bytes.Index(ok, []byte("\x65count"))
	withT := func(t []byte) []byte {
		return append(append(append([]byte{}, ok[:head+2]...), t...), ok[tail:]...)
	}
	m := bytes.Index(ok, []byte("\x63min\xd8"))
	minByName := append(append(append([]byte{}, ok[:m]...), "\x63min\x63max"...), ok[m+4+4+24:]...)
	for _, bad := range []struct {
		name string
		in   []byte
		want string
	}{
		{"a column naming a later one", swap([]byte("\x63max\x63min"), []byte("\x63max\x64last")), "a column before it"},
		{"a column naming an unknown one", swap([]byte("\x63max\x63min"), []byte("\x63max\x63foo")), "repeats \"foo\""},
		{"the min column by name", minByName, "a column before it"},
		{"a count over 2^63-1", swap([]byte("\x65count\x01"), []byte("\x65count\x1b\x80\x00\x00\x00\x00\x00\x00\x00")), "over 2^63-1"},
		{"a count as text", swap([]byte("\x65count\x01"), []byte("\x65count\x61\x31")), "typed array"},
		{"runs not from bucket 0", withT(runs(3, 60, 1, 0)), "from bucket 0"},
		{"runs out of order", withT(runs(3, 60, 0, 0, 2, 9, 1, 5)), "in order"},
		{"a run beyond the buckets", withT(runs(3, 60, 0, 0, 3, 9)), "in order"},
		{"no runs", withT(runs(3, 60)), "16 bytes each"},
		{"half a pair", withT(runs(3, 60, 0)), "16 bytes each"},
		{"a step of 0", withT(runs(3, 0, 0, 0)), "1 ms to 2^40"},
		{"a start near 2^63", withT(runs(3, 60, 0, 1<<62)), "below 2^62"},
		{"more buckets than the columns", withT(runs(4, 60, 0, 0)), "columns of 4 and 3"},
		{"runs of text", withT([]byte{0x83, 3, 0x61, 'x', 0x40}), "unsigned integers"},
	} {
		s := Series{Device: "kept"}
		if err := s.UnmarshalCBOR(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) || s.Device != "kept" {
			t.Errorf("%s: UnmarshalCBOR = %v, left %+v; want an error saying %q and nothing changed", bad.name, err, s, bad.want)
		}
	}
}

// BenchmarkDecodeQueryCBORYear decodes a year of one device's minute
// buckets, one reading each (525,600 buckets in series of 8,192, as a
// gateway sends them: the min column and runs), into Series columns.
func BenchmarkDecodeQueryCBORYear(b *testing.B) {
	const minutes, series = 365 * 24 * 60, 8192
	ans := []byte("\xbf\x66series\x9f")
	for from := 0; from < minutes; from += series {
		n := min(series, minutes-from)
		starts, aggs := make([]int64, n), make([]rollup.Agg, n)
		for i := range n {
			v := 20 + 5*math.Sin(float64(from+i)/720)
			starts[i] = int64(from+i) * 60_000
			aggs[i].Add(v, starts[i], uint64(from+i))
		}
		ans = AppendSeriesCBOR(ans, "did:key:z6Mk", "temperature/celsius", 60_000, starts, aggs)
	}
	ans = append(ans, 0xff, 0xff)
	b.SetBytes(int64(len(ans)))
	for b.Loop() {
		var a QueryAnswer
		if err := DecodeQueryCBOR(ans, &a); err != nil || len(a.Series) != (minutes+series-1)/series {
			b.Fatal(err, len(a.Series))
		}
	}
}
