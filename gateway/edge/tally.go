package edge

import "sync/atomic"

// Tally counts events by a fixed set of keys (a transport's reasons for
// refusing or dropping something), without locks.
type Tally struct {
	keys []string
	n    []atomic.Uint64
}

// NewTally returns a Tally of keys, all at zero.
func NewTally(keys ...string) *Tally {
	return &Tally{keys: keys, n: make([]atomic.Uint64, len(keys))}
}

// Add counts one event of key, which must be one of t's keys: any other
// is a programming error, and panics.
func (t *Tally) Add(key string) {
	for i, k := range t.keys {
		if k == key {
			t.n[i].Add(1)
			return
		}
	}
	panic("edge: no counter " + key)
}

// Snapshot returns every key's count, zeros included.
func (t *Tally) Snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(t.keys))
	for i, k := range t.keys {
		m[k] = t.n[i].Load()
	}
	return m
}
