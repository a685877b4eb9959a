package datalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/compact"
)

// Erasure: a log entry's bytes can be destroyed while the log stays
// verifiable. The leaf hash stored when the entry was appended (node
// level 0) stays, so every root, inclusion and consistency proof is the
// same as before; the entry's key is deleted and a tombstone — bytes the
// caller chooses, saying why (the gateway's names the ledger erasure) —
// takes its place:
//
//	't' | index (8 bytes) -> tombstone
//
// Pebble keeps a deleted value in older files until a compaction drops it:
// Erase flushes the memtable and compacts the erased range, so that when it
// returns no file of the store holds the value; write-ahead logs are not
// recycled (a recycled log keeps the bytes of the one it replaces past
// what is written into it), they are deleted when obsolete.

// ErrErased reports an entry whose bytes were erased; errors.As gives the
// *ErasedError with its tombstone.
var ErrErased = errors.New("datalog: entry erased")

// ErasedError is the error of reading an erased entry.
type ErasedError struct {
	Index     uint64
	Tombstone []byte
}

func (e *ErasedError) Error() string {
	return fmt.Sprintf("datalog: entry %d was erased (its leaf hash stays in the tree)", e.Index)
}

// Is makes errors.Is(err, ErrErased) true.
func (e *ErasedError) Is(target error) bool { return target == ErrErased }

// MaxTombstoneSize is the largest tombstone Erase accepts.
const MaxTombstoneSize = 4096

// Tomb is one entry to erase and the tombstone that replaces it.
type Tomb struct {
	Index     uint64
	Tombstone []byte
}

// tombKey returns the key of entry i's tombstone.
func tombKey(i uint64) []byte {
	k := entryKey(i)
	k[0] = prefixTomb
	return k
}

// Erase destroys the bytes of the entries named, keeping their leaf hashes,
// and stores each one's tombstone, in one batch; then it flushes and
// compacts the erased range so that the bytes are in no file of the store.
// An entry already erased keeps its first tombstone (Erase is idempotent).
// It returns how many entries it erased.
func (l *Log) Erase(tombs []Tomb) (int, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, ErrClosed
	}
	b := l.db.NewBatch()
	defer b.Close()
	n := 0
	lo, hi := uint64(1<<64-1), uint64(0)
	for _, t := range tombs {
		if t.Index >= l.size {
			return 0, fmt.Errorf("%w: erase entry %d of a log of size %d", ErrNotFound, t.Index, l.size)
		}
		if len(t.Tombstone) == 0 || len(t.Tombstone) > MaxTombstoneSize {
			return 0, fmt.Errorf("%w: the tombstone of entry %d is %d bytes, want 1 to %d", ErrInvalidEntry, t.Index, len(t.Tombstone), MaxTombstoneSize)
		}
		ok, err := l.has(entryKey(t.Index))
		if err != nil {
			return 0, err
		}
		if !ok {
			// Erased before, or archived: an archived entry gets its
			// tombstone, which then answers for it (Entry).
			if erased, err := l.has(tombKey(t.Index)); err != nil || erased {
				if err != nil {
					return 0, err
				}
				continue
			}
			if _, archived, err := l.archivedRange(t.Index); err != nil || !archived {
				return 0, fmt.Errorf("%w: entry %d to erase is missing (%v)", ErrCorrupt, t.Index, err)
			}
		} else if err := b.Delete(entryKey(t.Index), nil); err != nil {
			return 0, err
		}
		if err := b.Set(tombKey(t.Index), t.Tombstone, nil); err != nil {
			return 0, err
		}
		n++
		lo, hi = min(lo, t.Index), max(hi, t.Index)
	}
	if n == 0 {
		return 0, nil
	}
	if err := b.Commit(l.wo); err != nil {
		return 0, fmt.Errorf("datalog: commit the erasure of %d entries: %w", n, err)
	}
	if err := l.purge(lo, hi); err != nil {
		return n, err
	}
	return n, nil
}

// walDrain is how many times purge rotates the write-ahead log: Pebble
// keeps up to MemTableStopWritesThreshold+1 (3 by default) obsolete logs
// for reuse instead of deleting them; each rotation reuses (with
// noRecycleFS: deletes) the oldest, so this many push out the log that held
// the erased bytes.
const walDrain = 4

// purge makes the deleted entries [lo, hi] unrecoverable from the store's
// files: the memtable is flushed and the write-ahead log rotated until the
// logs that held the values are deleted, and the range is compacted to the
// bottom level, which drops the values the deletions shadow. Pebble deletes
// the obsolete files in the background, promptly.
func (l *Log) purge(lo, hi uint64) error {
	for k := range walDrain {
		if k > 0 {
			// A flush rotates the log only if the memtable holds something.
			if err := l.db.Set(walMarkKey(), nil, pebble.NoSync); err != nil {
				return fmt.Errorf("datalog: rotate the write-ahead log after erasing entries %d..%d: %w", lo, hi, err)
			}
		}
		if err := l.db.Flush(); err != nil {
			return fmt.Errorf("datalog: flush after erasing entries %d..%d: %w", lo, hi, err)
		}
	}
	if err := l.db.Compact(context.Background(), entryKey(lo), entryKey(hi+1), false); err != nil {
		return fmt.Errorf("datalog: compact erased entries %d..%d: %w", lo, hi, err)
	}
	return nil
}

// Tombstone returns the tombstone of an erased entry, or an error wrapping
// ErrNotFound if entry i is not erased.
func (l *Log) Tombstone(i uint64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	return l.get(tombKey(i))
}

// LeafHash returns the leaf hash of entry i as stored when it was appended,
// whether or not the entry was erased since.
func (l *Log) LeafHash(i uint64) ([HashSize]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return [HashSize]byte{}, ErrClosed
	}
	if i >= l.size {
		return [HashSize]byte{}, fmt.Errorf("%w: entry %d of a log of size %d", ErrNotFound, i, l.size)
	}
	h, err := l.nodes([]compact.NodeID{compact.NewNodeID(0, i)})
	if err != nil {
		return [HashSize]byte{}, err
	}
	return toHash(h[0]), nil
}

// Erased calls fn with the index and tombstone of every erased entry in
// [from, to), in order, until fn returns false.
func (l *Log) Erased(from, to uint64, fn func(i uint64, tombstone []byte) bool) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if from >= to {
		return nil
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: tombKey(from), UpperBound: tombKey(to)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if !fn(indexOf(it.Key()), slices.Clone(it.Value())) {
			break
		}
	}
	return it.Error()
}

// noRecycleFS is the store's file system: the default one, except that a
// write-ahead log is never reused for the next one. Pebble recycles an
// obsolete log by renaming it and writing over it from its start, which
// leaves the old log's bytes past the new writes on disk; deleting it and
// creating a new file leaves nothing of an erased entry in the directory.
type noRecycleFS struct{ vfs.FS }

func (fs noRecycleFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.FS.Remove(oldname); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return fs.FS.Create(newname, category)
}
