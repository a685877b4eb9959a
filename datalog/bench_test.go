package datalog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkAppend measures Append of batches of 200-byte entries, with and
// without fsync, and reports entries/s.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, batch := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("sync=%t/batch=%d", sync, batch), func(b *testing.B) {
				dir := b.TempDir()
				l, err := Open(Config{Dir: dir, NoSync: !sync})
				if err != nil {
					b.Fatalf("Open(%s) = %v", dir, err)
				}
				defer l.Close()
				entries := make([][]byte, batch)
				for i := range entries {
					entries[i] = bytes.Repeat([]byte{byte(i)}, 200)
				}
				b.SetBytes(int64(batch * 200))
				b.ResetTimer()
				for b.Loop() {
					if _, err := l.Append(entries); err != nil {
						b.Fatalf("Append = %v", err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkInclusionProof measures InclusionProof of random entries in a
// log of 100,000 entries.
func BenchmarkInclusionProof(b *testing.B) {
	const size = 100_000
	dir := b.TempDir()
	l, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		b.Fatalf("Open(%s) = %v", dir, err)
	}
	defer l.Close()
	for l.Size() < size {
		if _, err := l.Append(testEntries(l.Size(), 1000)); err != nil {
			b.Fatalf("Append = %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	b.ResetTimer()
	for b.Loop() {
		i := rng.Uint64N(size)
		if _, err := l.InclusionProof(i, size); err != nil {
			b.Fatalf("InclusionProof(%d, %d) = %v", i, size, err)
		}
	}
}

// BenchmarkCheck measures Check of a stopped log of 100,000 entries of 240
// bytes (a layout 2 reading entry) next to its baseline, reading every
// entry once through an open Log; it reports entries/s.
func BenchmarkCheck(b *testing.B) {
	const size = 100_000
	dir := b.TempDir()
	l, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		b.Fatalf("Open(%s) = %v", dir, err)
	}
	for l.Size() < size {
		es := make([][]byte, 1000)
		for i := range es {
			es[i] = bytes.Repeat([]byte{byte(l.Size() + uint64(i))}, 240)
		}
		if _, err := l.Append(es); err != nil {
			b.Fatalf("Append = %v", err)
		}
	}
	l.Close()
	b.Run("read-all-entries", func(b *testing.B) {
		for b.Loop() {
			l, err := Open(Config{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			for i := range uint64(size) {
				if _, err := l.Entry(i); err != nil {
					b.Fatal(err)
				}
			}
			l.Close()
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			rep, err := Check(CheckConfig{Dir: dir})
			if err != nil || len(rep.Findings) != 0 {
				b.Fatalf("Check = %+v, %v", rep, err)
			}
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
	})
}
