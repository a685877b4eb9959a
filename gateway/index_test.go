package gateway

import (
	"crypto/sha256"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestIndexReplayState: add writes one replay state per device and batch,
// and it is the device's last envelope of the batch, whatever the order
// of the batch's devices; a reopened index reads the same.
func TestIndexReplayState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	x, err := openIndex(dir, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 19))
	ents := randomEntries(rng, 300)
	type state struct {
		seq  uint64
		hash [32]byte
	}
	want := map[string]state{}
	for added := 0; added < len(ents); {
		n := min(len(ents)-added, 1+rng.IntN(64))
		if err := x.add(uint64(added), ents[added:added+n]); err != nil {
			t.Fatal(err)
		}
		for _, e := range ents[added : added+n] {
			env := e.Envelope
			want[env.Device] = state{env.Readings[len(env.Readings)-1].Seq, sha256.Sum256(env.Raw)}
		}
		added += n
	}
	check := func(when string) {
		t.Helper()
		got := map[string]state{}
		if err := x.replayState(func(device string, seq uint64, hash [32]byte) { got[device] = state{seq, hash} }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: replay state of %d devices; want %d", when, len(got), len(want))
		}
		for d, w := range want {
			if got[d] != w {
				t.Errorf("%s: replay state of %s = seq %d; want seq %d and the last envelope's hash", when, d, got[d].seq, w.seq)
			}
			if seq, found, err := x.lastSeq(d); err != nil || !found || seq != w.seq {
				t.Errorf("%s: lastSeq(%s) = %d, %v, %v; want %d", when, d, seq, found, err, w.seq)
			}
		}
	}
	check("as added")
	if err := x.close(); err != nil {
		t.Fatal(err)
	}
	if x, err = openIndex(dir, slog.New(slog.DiscardHandler), false); err != nil {
		t.Fatal(err)
	}
	defer x.close()
	check("reopened")
}
