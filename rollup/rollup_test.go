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
	b, err := Decode(a.Encode())
	if err != nil || b != a {
		t.Fatalf("round trip %+v, %v", b, err)
	}
	if _, err := Decode(make([]byte, 56)); err == nil {
		t.Fatal("an aggregate of no readings decodes")
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
