package datalog

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

const (
	// MaxEntrySize is the largest entry Append accepts, in bytes.
	MaxEntrySize = 1 << 20
	// MaxAppendBytes is the largest total size of the entries of one
	// Append, in bytes: one Append is one Pebble batch held in memory.
	MaxAppendBytes = 256 << 20
)

// Append appends entries to the log in one Pebble batch and returns the index
// of the first. When it returns without error the entries are durable
// (unless Config.NoSync) and provable. Entries must be nonempty and at most
// MaxEntrySize bytes; there must be at least one. Concurrent calls are
// serialised, each getting a contiguous range of indexes.
func (l *Log) Append(entries [][]byte) (first uint64, err error) {
	total, err := checkEntries(entries)
	if err != nil {
		return 0, err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()

	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, ErrClosed
	}
	first = l.rng.End()
	rng, root, err := l.commit(first, entries, total)
	l.mu.RUnlock()
	if err != nil {
		return 0, err
	}

	l.rng = rng
	l.mu.Lock()
	l.size, l.root = rng.End(), root
	l.mu.Unlock()
	return first, nil
}

// checkEntries validates the entries of an Append and returns their total
// size.
func checkEntries(entries [][]byte) (int, error) {
	if len(entries) == 0 {
		return 0, fmt.Errorf("%w: append of no entries", ErrInvalidEntry)
	}
	total := 0
	for i, e := range entries {
		switch {
		case len(e) == 0:
			return 0, fmt.Errorf("%w: entry %d of %d is empty", ErrInvalidEntry, i, len(entries))
		case len(e) > MaxEntrySize:
			return 0, fmt.Errorf("%w: entry %d of %d is %d bytes, max %d", ErrTooLarge, i, len(entries), len(e), MaxEntrySize)
		}
		total += len(e)
		if total > MaxAppendBytes {
			return 0, fmt.Errorf("%w: append of %d entries exceeds %d bytes at entry %d", ErrTooLarge, len(entries), MaxAppendBytes, i)
		}
	}
	return total, nil
}

// commit writes entries at index first, the perfect subtree hashes they
// complete and the new state in one batch, and commits it. It returns the new
// compact range and root; l.rng is not modified. The caller holds appendMu
// and mu for reading.
func (l *Log) commit(first uint64, entries [][]byte, total int) (*compact.Range, [HashSize]byte, error) {
	var none [HashSize]byte
	// Copy the compact range: Range.Append reuses its hashes' backing array.
	hashes := make([][]byte, 0, len(l.rng.Hashes())+1)
	hashes = append(hashes, l.rng.Hashes()...)
	rng, err := l.rf.NewRange(0, first, hashes)
	if err != nil {
		return nil, none, fmt.Errorf("datalog: append at %d: %w", first, err)
	}

	// Per entry: entry key and value, leaf node and about one interior node.
	b := l.db.NewBatchWithSize(total + len(entries)*2*(16+10+HashSize) + 64*HashSize)
	defer b.Close()
	var setErr error
	visit := func(id compact.NodeID, hash []byte) {
		if err := b.Set(nodeKey(id), hash, nil); err != nil && setErr == nil {
			setErr = err
		}
	}
	for i, e := range entries {
		idx := first + uint64(i)
		if err := b.Set(entryKey(idx), e, nil); err != nil {
			return nil, none, fmt.Errorf("datalog: append entry %d: %w", idx, err)
		}
		if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), visit); err != nil {
			return nil, none, fmt.Errorf("datalog: append entry %d to compact range: %w", idx, err)
		}
		if setErr != nil {
			return nil, none, fmt.Errorf("datalog: append entry %d: store subtree hash: %w", idx, setErr)
		}
	}
	if err := b.Set(stateKey(), encodeState(rng.End(), rng.Hashes()), nil); err != nil {
		return nil, none, fmt.Errorf("datalog: append entries %d..%d: store state: %w", first, rng.End()-1, err)
	}
	root, err := rootOf(rng)
	if err != nil {
		return nil, none, err
	}
	if err := b.Commit(l.wo); err != nil {
		return nil, none, fmt.Errorf("datalog: commit entries %d..%d: %w", first, rng.End()-1, err)
	}
	return rng, root, nil
}

// rootOf returns the root hash of a compact range starting at 0.
func rootOf(rng *compact.Range) ([HashSize]byte, error) {
	if rng.End() == 0 {
		return emptyRoot(), nil
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return [HashSize]byte{}, fmt.Errorf("datalog: root of range [0, %d): %w", rng.End(), err)
	}
	return toHash(root), nil
}
