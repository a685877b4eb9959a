package identity

import "sync"

// DIDCache remembers parsed did:keys. ParseDID checks the point (for
// Ed25519, that it is not of small order), which costs as much as a fifth
// of a signature verification; a ledger or gateway parses the same few ids
// again and again. It holds at most max ids and is safe for concurrent use.
// A hit returns what ParseDID returned, so caching never changes a result.
type DIDCache struct {
	mu  sync.Mutex
	m   map[string]PublicKey
	max int
}

// NewDIDCache returns a cache of at most max ids.
func NewDIDCache(max int) *DIDCache {
	return &DIDCache{m: make(map[string]PublicKey), max: max}
}

// Parse is ParseDID, cached.
func (c *DIDCache) Parse(did string) (PublicKey, error) {
	c.mu.Lock()
	k, ok := c.m[did]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := ParseDID(did)
	if err != nil {
		return k, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m) // crude but bounded; the working set refills at once
	}
	c.m[did] = k
	c.mu.Unlock()
	return k, nil
}
