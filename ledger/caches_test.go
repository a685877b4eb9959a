package ledger

import (
	"bytes"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

func cacheTestTxs(t testing.TB, n int) [][]byte {
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	txs := make([][]byte, n)
	for i := range txs {
		grant := &record.GrantAdd{Grantor: "device:" + k.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + k.ID() + "/readings"}
		if txs[i], err = record.NewTx(k, "", testChain, uint64(i+1), 100, grant); err != nil {
			t.Fatal(err)
		}
	}
	return txs
}

// TestTxCache: a tx's bytes, in whatever slice, find the tx decoded once;
// the oldest tx is forgotten first; what does not decode is not cached.
func TestTxCache(t *testing.T) {
	txs := cacheTestTxs(t, 3)
	c := newTxCache(2)
	first, err := c.decode(txs[0])
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.decode(bytes.Clone(txs[0])); err != nil || again != first {
		t.Fatalf("the same bytes again: %p, %v; want the cached %p", again, err, first)
	}
	if first.Nonce != 1 {
		t.Fatalf("decoded nonce %d; want 1", first.Nonce)
	}
	c.decode(txs[1])
	c.decode(txs[2]) // the ring holds 2: txs[0] goes
	if again, _ := c.decode(txs[0]); again == first {
		t.Error("txs[0] still cached after two newer txs in a cache of 2")
	}
	if _, err := c.decode([]byte("junk")); err == nil {
		t.Error("junk decoded")
	}
	if _, ok := c.m["junk"]; ok || len(c.m) != 2 {
		t.Errorf("cache holds %d txs (junk: %v); want 2, no junk", len(c.m), ok)
	}
}

// BenchmarkTxCacheHit: a lookup of a cached tx, the common case (about
// six per tx per node).
func BenchmarkTxCacheHit(b *testing.B) {
	txs := cacheTestTxs(b, 64)
	c := newTxCache(1024)
	for _, raw := range txs {
		if _, err := c.decode(raw); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if _, err := c.decode(txs[i%len(txs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
