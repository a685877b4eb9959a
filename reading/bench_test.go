package reading

import (
	"fmt"
	"testing"

	"github.com/thingnet/thingnet/identity"
)

// BenchmarkDecodeVerify measures what a gateway spends per reading to
// decode an envelope and verify its signature, for a single reading and a
// batch of 10 under one signature.
func BenchmarkDecodeVerify(b *testing.B) {
	for _, alg := range allAlgs() {
		k := seededKey(b, alg, 3)
		pub := k.Public()
		for _, n := range []int{1, 10} {
			raw := mustSign(b, k, k.ID(), batchOf(1, n)...)
			b.Run(fmt.Sprintf("%v/readings=%d", alg, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					e, err := Decode(raw)
					if err != nil {
						b.Fatal(err)
					}
					if err := e.Verify(pub); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reading")
				b.ReportMetric(float64(len(raw))/float64(n), "bytes/reading")
			})
		}
	}
}

// BenchmarkDecode measures decoding alone (the cheap checks a gateway
// makes before it verifies).
func BenchmarkDecode(b *testing.B) {
	k := seededKey(b, identity.Ed25519, 3)
	for _, n := range []int{1, 10} {
		raw := mustSign(b, k, k.ID(), batchOf(1, n)...)
		b.Run(fmt.Sprintf("readings=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reading")
		})
	}
}

func BenchmarkSeqTrackerAdvance(b *testing.B) {
	t := NewSeqTracker(1 << 16)
	devs := make([]string, 1024)
	for i := range devs {
		devs[i] = fmt.Sprintf("did:key:z6Mk%040d", i)
	}
	seq := uint64(0)
	for b.Loop() {
		seq++
		if err := t.Advance(devs[seq%1024], []uint64{seq}); err != nil {
			b.Fatal(err)
		}
	}
}
