package agreements

import (
	"testing"

	"github.com/thingnet/thingnet/agreements/lang"
)

func BenchmarkCompileThermostat(b *testing.B) {
	src := example(&testing.T{}, "thermostat")
	for b.Loop() {
		d, err := lang.Parse(src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(d, map[string]string{"sensor": devA, "cooler": devB, "buyer": "home", "seller": "acme"}, lang.DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFireThermostat(b *testing.B) {
	d, _ := lang.Parse(example(&testing.T{}, "thermostat"))
	p, err := Compile(d, map[string]string{"sensor": devA, "cooler": devB, "buyer": "home", "seller": "acme"}, lang.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	in, _ := p.Init(1, 1)
	var seq uint64
	for b.Loop() {
		seq++
		if _, err := p.Fire(in, "hot", &Input{Agreement: 1, Height: 2, Reading: &Reading{Device: devA, Seq: seq, ContentType: "temperature/celsius", Value: 35}}); err != nil {
			b.Fatal(err)
		}
	}
}
