package rollup

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestJSONRows: the hand-written rows are byte for byte what
// encoding/json makes of the same Bucket, over random values (tiny, huge,
// negative zero, overflowing sums), starts (whole minutes, fractions of a
// second, before 1970) and device and type names that need escaping.
func TestJSONRows(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 17))
	value := func() float64 {
		switch rng.IntN(8) {
		case 0:
			return math.Copysign(0, -1)
		case 1:
			return rng.NormFloat64() * 1e-9
		case 2:
			return rng.NormFloat64() * 1e25
		case 3:
			return math.MaxFloat64
		case 4:
			return float64(rng.IntN(1000))
		default:
			return rng.NormFloat64() * 100
		}
	}
	names := []string{"did:key:z6Mkdev1", "temperature/celsius", `a "quoted" <b> & \ name`, "ünïcode\u2028"}
	var e JSONRows
	for i := range 20_000 {
		var a Agg
		for range 1 + rng.IntN(3) {
			a.Add(value(), 0, 0)
		}
		start := Minute.Start(rng.Int64N(400*365*Day.MS) - 100*365*Day.MS)
		switch rng.IntN(10) {
		case 0:
			start += rng.Int64N(60_000)
		case 1:
			start = Day.Start(start) // midnight
		}
		dev, typ := names[rng.IntN(2)], names[rng.IntN(len(names))]
		want, err := json.Marshal(BucketOf(dev, typ, start, &a))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Append(nil, dev, typ, start, &a); string(got) != string(want) {
			t.Fatalf("seed %d, row %d: Append = %s; want %s", seed, i, got, want)
		}
	}
}
