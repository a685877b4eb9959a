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
	set  map[[32]byte]struct{}
	ring [][32]byte
	next int
}

func newSigCache(size int) *sigCache {
	return &sigCache{set: make(map[[32]byte]struct{}, size), ring: make([][32]byte, size)}
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

func (c *sigCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[k]; ok {
		return
	}
	if old := c.ring[c.next]; old != ([32]byte{}) {
		delete(c.set, old)
	}
	c.ring[c.next] = k
	c.set[k] = struct{}{}
	c.next = (c.next + 1) % len(c.ring)
}
