package testutil

import (
	"math"
	"math/rand/v2"

	"github.com/thingnet/thingnet/rollup"
)

// RandomRun makes a run of n buckets of size step (ms), in order from a
// random start (negative ones too), with a gap of up to 1,000 buckets now
// and then, each holding 1 to most readings (their times within the
// bucket): values rounded to hundredths, negative ones among them, and
// now and then one of edge. For tests of bucket encodings.
func RandomRun(rng *rand.Rand, n int, step int64, most int, edge []float64) (starts []int64, aggs []rollup.Agg) {
	starts, aggs = make([]int64, n), make([]rollup.Agg, n)
	t := (rng.Int64N(1<<41) - 1<<40) / step * step
	for i := range n {
		t += step
		if rng.IntN(60) == 0 {
			t += step * (1 + rng.Int64N(1000)) // a gap
		}
		starts[i] = t
		for range 1 + rng.IntN(most) {
			v := math.Round(rng.NormFloat64()*1e4) / 100
			if len(edge) > 0 && rng.IntN(30) == 0 {
				v = edge[rng.IntN(len(edge))]
			}
			aggs[i].Add(v, t+rng.Int64N(step), uint64(i))
		}
	}
	return starts, aggs
}
