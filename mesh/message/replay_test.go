package message

import (
	"math/rand/v2"
	"testing"
)

// TestReplayWindow checks the window against a set of every sequence
// number seen, on random arrival orders.
func TestReplayWindow(t *testing.T) {
	for round := range 200 {
		r := rand.New(rand.NewPCG(uint64(round), 1))
		var w ReplayWindow
		seen := map[uint64]bool{}
		var top uint64
		for range 2000 {
			var seq uint64
			switch r.IntN(4) {
			case 0:
				seq = top + 1 + uint64(r.IntN(3*WindowSize))
			default:
				seq = top - uint64(r.IntN(WindowSize+50))
			}
			if seq == 0 || seq > top+10*WindowSize {
				continue
			}
			want := !seen[seq] && (seq > top || top-seq < WindowSize)
			if got := w.Fresh(seq); got != want {
				t.Fatalf("round %d: fresh(%d) with top %d = %v, want %v", round, seq, top, got, want)
			}
			if want {
				w.Mark(seq)
				seen[seq] = true
				top = max(top, seq)
			}
			var back ReplayWindow
			if err := back.UnmarshalBinary(w.MarshalBinary()); err != nil || back != w {
				t.Fatalf("binary form does not round-trip: %v", err)
			}
		}
	}
}
