package rules

import (
	"testing"
	"time"
)

// BenchmarkObserve: one reading a second into a device's window through
// one rule: "window" reads two 5-minute windows (300 readings each),
// "plain" only the reading (the baseline: the engine's fixed cost).
func BenchmarkObserve(b *testing.B) {
	for _, c := range []struct{ name, when string }{
		{"plain", "reading.value > 30.0"},
		{"window", "mean(temperature, 5m) > 30 && count(5m) >= 3"},
	} {
		b.Run(c.name, func(b *testing.B) {
			e, err := NewEngine(Config{Rules: []Rule{{Name: "r", Org: "acme", When: c.when}}})
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				e.Observe(dev, "temperature/celsius", uint64(i+1), t0.Add(time.Duration(i)*time.Second), float64(20+i%20))
				i++
			}
		})
	}
}
