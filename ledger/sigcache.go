package ledger

import (
	"crypto/sha256"
	"sync"
)

// sigCache remembers (tx, key) pairs whose signature this node has verified,
// so that a tx verified in CheckTx is not verified again in FinalizeBlock.
// It holds at most size entries and forgets the oldest first. It only ever
// skips work: a miss verifies, so every node reaches the same result.
type sigCache struct {
	mu   sync.Mutex
	set  map[[32]byte]struct{} // sigCacheKey(tx, key)
	txs  map[[32]byte]int      // tx hash -> entries of set with that tx
	ring []sigCacheEntry
	next int
}

type sigCacheEntry struct{ key, tx [32]byte }

func newSigCache(size int) *sigCache {
	return &sigCache{set: make(map[[32]byte]struct{}, size), txs: make(map[[32]byte]int, size), ring: make([]sigCacheEntry, size)}
}

func sigCacheKey(txHash [32]byte, pub []byte) [32]byte {
	h := sha256.New()
	h.Write(txHash[:])
	h.Write(pub)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *sigCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.set[k]
	return ok
}

// hasTx reports whether tx's signature was verified with some key: the
// block's batch need not hold it, as execution looks up the signer's key
// and finds (tx, key) here or verifies it then.
func (c *sigCache) hasTx(txHash [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txs[txHash] > 0
}

func (c *sigCache) add(txHash [32]byte, k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[k]; ok {
		return
	}
	if old := c.ring[c.next]; old.key != ([32]byte{}) {
		delete(c.set, old.key)
		if c.txs[old.tx]--; c.txs[old.tx] <= 0 {
			delete(c.txs, old.tx)
		}
	}
	c.ring[c.next] = sigCacheEntry{k, txHash}
	c.set[k] = struct{}{}
	c.txs[txHash]++
	c.next = (c.next + 1) % len(c.ring)
}
