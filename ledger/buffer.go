package ledger

import (
	"fmt"
	"sort"

	corestore "cosmossdk.io/core/store"
	"github.com/thingnet/thingnet/record"
)

// buffer stages one transaction's writes over the working tree so that a
// failing transaction changes nothing. Writes reach the tree in key order,
// which keeps the IAVL shape (and so the app hash) independent of the order
// in which a handler happened to write. Scans see the tree without the staged
// writes; handlers read what they need before they write.
type buffer struct {
	base   writer
	writes map[string][]byte // nil value: delete
}

func newBuffer(base writer) *buffer { return &buffer{base: base, writes: map[string][]byte{}} }

func (b *buffer) Get(key []byte) ([]byte, error) {
	if v, ok := b.writes[string(key)]; ok {
		return v, nil
	}
	return b.base.Get(key)
}

func (b *buffer) Iterator(start, end []byte, ascending bool) (corestore.Iterator, error) {
	return b.base.Iterator(start, end, ascending)
}

func (b *buffer) set(key []byte, v any) {
	if raw, ok := v.([]byte); ok {
		b.writes[string(key)] = raw
		return
	}
	b.writes[string(key)] = record.MustMarshal(v)
}

func (b *buffer) del(key []byte) { b.writes[string(key)] = nil }

func (b *buffer) reset() { clear(b.writes) }

// flush applies the staged writes to the tree in key order.
func (b *buffer) flush() error {
	keys := make([]string, 0, len(b.writes))
	for k := range b.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := b.writes[k]
		if v == nil {
			if _, _, err := b.base.Remove([]byte(k)); err != nil {
				return fmt.Errorf("removing %q: %w", k, err)
			}
			continue
		}
		if _, err := b.base.Set([]byte(k), v); err != nil {
			return fmt.Errorf("writing %q: %w", k, err)
		}
	}
	b.reset()
	return nil
}

// Set and Remove let a buffer stage writes over another buffer (a
// transition's writes over its tx's), applied by flush.
func (b *buffer) Set(key, value []byte) (bool, error) {
	b.writes[string(key)] = value
	return false, nil
}

func (b *buffer) Remove(key []byte) ([]byte, bool, error) {
	b.writes[string(key)] = nil
	return nil, false, nil
}
