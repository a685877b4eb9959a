package rollup

import (
	"math"
	"testing"
)

func TestStartAndAgg(t *testing.T) {
	for _, c := range []struct {
		z        Size
		ms, want int64
	}{
		{Minute, 0, 0}, {Minute, 59_999, 0}, {Minute, 60_000, 60_000}, {Hour, 3_600_001, 3_600_000},
		{Day, 86_399_999, 0}, {Minute, -1, -60_000}, {Day, -86_400_000, -86_400_000},
	} {
		if got := c.z.Start(c.ms); got != c.want {
			t.Errorf("%s.Start(%d) = %d; want %d", c.z.Name, c.ms, got, c.want)
		}
	}
	var a Agg
	a.Add(3, 10, 1)
	a.Add(-2, 30, 2)
	a.Add(7, 30, 3) // same time, higher seq: last
	a.Add(100, 20, 4)
	if a.Count != 4 || a.Sum != 108 || a.Min != -2 || a.Max != 100 || a.Last != 7 || a.Mean() != 27 {
		t.Fatalf("agg %+v", a)
	}
	big := Agg{}
	big.Add(math.MaxFloat64, 1, 1)
	big.Add(math.MaxFloat64, 2, 2)
	if r := BucketOf("d", "t", 0, &big); r.Sum != nil || r.Mean != nil || r.Max != math.MaxFloat64 {
		t.Fatalf("overflowing bucket %+v: want no sum or mean", r)
	}
	for _, s := range []string{"1m", "1h", "1d"} {
		if z, err := ParseSize(s); err != nil || z.Name != s {
			t.Errorf("ParseSize(%s) = %+v, %v", s, z, err)
		}
	}
	if _, err := ParseSize("5m"); err == nil {
		t.Error("ParseSize(5m) accepted")
	}
}

func TestBlock(t *testing.T) {
	for _, z := range Sizes {
		if z.Block < 1 || z.Block > 64 || z.MS*int64(z.Block) > Day.MS || Day.MS%(z.MS*int64(z.Block)) != 0 {
			t.Errorf("%s: a block of %d buckets does not tile a day", z.Name, z.Block)
		}
	}
	for _, c := range []struct {
		z     Size
		start int64
		block int64
		slot  int
	}{
		{Minute, 0, 0, 0}, {Minute, 14 * 60_000, 0, 14}, {Minute, 59 * 60_000, 45 * 60_000, 14}, {Minute, 3_600_000, 3_600_000, 0}, {Hour, 23 * 3_600_000, 0, 23},
		{Hour, 86_400_000 + 3_600_000, 86_400_000, 1}, {Day, 5 * 86_400_000, 5 * 86_400_000, 0}, {Minute, -60_000, -900_000, 14},
	} {
		if b, i := c.z.BlockStart(c.start); b != c.block || i != c.slot {
			t.Errorf("%s.BlockStart(%d) = %d, %d; want %d, %d", c.z.Name, c.start, b, i, c.block, c.slot)
		}
	}
	var b Block
	b.Add(0, 3, 10, 1)
	b.Add(23, -2, 30, 2)
	b.Add(23, 7, 30, 3)
	b.Add(7, 1e300, 20, 4)
	b.Set(7, Agg{}) // removed
	b.Add(7, 5, 21, 5)
	var got Block
	if err := got.Decode(b.Append(nil), Hour); err != nil {
		t.Fatal(err)
	}
	if got.Has != b.Has || got.Has != 1|1<<7|1<<23 {
		t.Fatalf("decoded slots %#x; want %#x", got.Has, b.Has)
	}
	for _, i := range []int{0, 7, 23} {
		if got.Aggs[i] != b.Aggs[i] {
			t.Errorf("slot %d = %+v; want %+v", i, got.Aggs[i], b.Aggs[i])
		}
	}
	if a := got.Aggs[7]; a.Count != 1 || a.Sum != 5 {
		t.Errorf("slot 7 after Set(no readings) and Add = %+v; want one reading of 5", a)
	}
	for _, c := range []struct {
		name string
		v    []byte
		z    Size
	}{
		{"short", []byte{0, 0, 0}, Minute},
		{"no buckets", make([]byte, 8), Minute},
		{"slot beyond the block", b.Append(nil), Minute},
		{"truncated", b.Append(nil)[:8+56*3-1], Hour},
		{"trailing byte", append(b.Append(nil), 0), Hour},
		{"no readings", append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 56)...), Day},
	} {
		got.Has = 1
		if err := got.Decode(c.v, c.z); err == nil || got.Has != 0 {
			t.Errorf("Decode(%s) = %v, slots %#x; want an error and no slots", c.name, err, got.Has)
		}
	}
}

// FuzzBlockDecode: any bytes decode to a block or an error, never a
// panic, and a block decoded re-encodes to the same bytes.
func FuzzBlockDecode(f *testing.F) {
	var b Block
	b.Add(3, 1.5, 1, 1)
	b.Add(14, math.Inf(1), 2, 2)
	f.Add(b.Append(nil), byte(0))
	f.Add(make([]byte, 8), byte(2))
	f.Fuzz(func(t *testing.T, v []byte, size byte) {
		z := Sizes[int(size)%len(Sizes)]
		var got Block
		if err := got.Decode(v, z); err != nil {
			if got.Has != 0 {
				t.Fatalf("Decode failed (%v) but left slots %#x", err, got.Has)
			}
			return
		}
		if again := got.Append(nil); string(again) != string(v) {
			t.Fatalf("Decode then Append = %x; want %x", again, v)
		}
	})
}
