package ledger

import (
	"crypto/sha256"
	"sync"

	"github.com/thingnet/thingnet/record"
)

// The caches below only skip repeated work on the same input: each holds
// the result of a pure function, so a hit and a miss give the same answer
// and every node stays deterministic whatever its cache holds.

// txCache remembers decoded txs by hash between CheckTx, rechecks,
// preverification and FinalizeBlock, so a tx is decoded once per node.
// Decoded txs are never modified after decoding.
type txCache struct {
	mu   sync.Mutex
	m    map[[32]byte]*record.Tx
	ring [][32]byte
	next int
}

func newTxCache(size int) *txCache {
	return &txCache{m: make(map[[32]byte]*record.Tx, size), ring: make([][32]byte, size)}
}

// decode returns the decoded tx for raw, from the cache or by decoding it.
// Only successfully decoded txs are cached.
func (c *txCache) decode(raw []byte) (*record.Tx, error) {
	if len(raw) > record.MaxTxBytes {
		return record.DecodeTx(raw) // refused for its size, unhashed
	}
	h := sha256.Sum256(raw)
	c.mu.Lock()
	tx, ok := c.m[h]
	c.mu.Unlock()
	if ok {
		return tx, nil
	}
	tx, err := record.DecodeTx(raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[h]; !ok {
		if old := c.ring[c.next]; old != ([32]byte{}) {
			delete(c.m, old)
		}
		c.ring[c.next] = h
		c.m[h] = tx
		c.next = (c.next + 1) % len(c.ring)
	}
	return tx, nil
}
