package ratelimit

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkAllowMessage measures one decision: on one key, round-robin over
// 10,000 keys, and on many keys from all cores at once (one lock).
func BenchmarkAllowMessage(b *testing.B) {
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("did:key:z6Mk%040d", i)
	}
	b.Run("one key", func(b *testing.B) {
		l := New(DefaultLimits(), 100000, nil)
		for b.Loop() {
			l.AllowMessage(keys[0], 200)
		}
	})
	b.Run("10k keys", func(b *testing.B) {
		l := New(DefaultLimits(), 100000, nil)
		i := 0
		for b.Loop() {
			l.AllowMessage(keys[i%len(keys)], 200)
			i++
		}
	})
	b.Run("10k keys parallel", func(b *testing.B) {
		l := New(DefaultLimits(), 100000, nil)
		var next atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.AllowMessage(keys[next.Add(1)%uint64(len(keys))], 200)
			}
		})
	})
	b.Run("eviction churn", func(b *testing.B) {
		l := New(DefaultLimits(), 1000, nil)
		i := 0
		for b.Loop() {
			l.AllowMessage(keys[i%len(keys)], 200)
			i++
		}
	})
}
