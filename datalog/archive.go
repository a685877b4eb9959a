package datalog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Archiving: a run of old entries is packed into a segment (segment.go),
// published elsewhere (the gateway publishes it through the file service),
// and its entries' bytes leave the store. As with erasure, the leaf hashes
// and every subtree hash stay, so roots and proofs are unchanged; a range
// marker stands where the entries were:
//
//	'a' | end (8 bytes) -> first (8 bytes)   the archived range [first, end)
//
// An entry of the range that is still stored (the caller chose to keep it)
// or erased (its tombstone stays) answers as before; the others answer
// an *ArchivedError naming the range, so the caller fetches the segment.

// ErrArchived reports an entry whose bytes were archived; errors.As gives
// the *ArchivedError with the archived range.
var ErrArchived = errors.New("datalog: entry archived")

// ArchivedError is the error of reading an archived entry.
type ArchivedError struct {
	Index uint64
	Range ArchivedRange
}

func (e *ArchivedError) Error() string {
	return fmt.Sprintf("datalog: entry %d was archived in the segment of entries %d..%d (its leaf hash stays in the tree)", e.Index, e.Range.First, e.Range.End()-1)
}

// Is makes errors.Is(err, ErrArchived) true.
func (e *ArchivedError) Is(target error) bool { return target == ErrArchived }

// ArchivedRange is a range of entries whose bytes were archived.
type ArchivedRange struct {
	First, Count uint64
}

// End is the index after the range's last entry.
func (r ArchivedRange) End() uint64 { return r.First + r.Count }

// archiveKey is the key of the archived range ending (exclusive) at end.
func archiveKey(end uint64) []byte {
	k := entryKey(end)
	k[0] = prefixArchive
	return k
}

// Archive removes the bytes of the entries of r that drop says to (erased
// entries keep their tombstones; entries drop refuses stay stored) and
// records r as archived, in one batch; the dropped bytes are then
// compacted away as erasure does. Ranges are archived in order and do not
// overlap: r.First must be the end of the last archived range (0 for the
// first). It returns how many entries' bytes it removed.
func (l *Log) Archive(r ArchivedRange, drop func(i uint64) bool) (int, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, ErrClosed
	}
	if r.Count == 0 || r.End() > l.size || r.End() < r.First {
		return 0, fmt.Errorf("%w: archive entries %d..+%d of a log of size %d", ErrOutOfRange, r.First, r.Count, l.size)
	}
	last, err := l.lastArchived()
	if err != nil {
		return 0, err
	}
	if r.First != last.End() {
		if r.First < last.End() && r.End() <= last.End() {
			return 0, nil // archived before (a retry after a crash)
		}
		return 0, fmt.Errorf("%w: archive entries from %d: the archived entries end at %d", ErrOutOfRange, r.First, last.End())
	}
	b := l.db.NewBatch()
	defer b.Close()
	n := 0
	for i := r.First; i < r.End(); i++ {
		if !drop(i) {
			continue
		}
		ok, err := l.has(entryKey(i))
		if err != nil {
			return 0, err
		}
		if !ok {
			continue // erased
		}
		if err := b.Delete(entryKey(i), nil); err != nil {
			return 0, err
		}
		n++
	}
	if err := b.Set(archiveKey(r.End()), binary.BigEndian.AppendUint64(nil, r.First), nil); err != nil {
		return 0, err
	}
	if err := b.Commit(l.wo); err != nil {
		return 0, fmt.Errorf("datalog: commit the archive of entries %d..%d: %w", r.First, r.End()-1, err)
	}
	if n > 0 {
		if err := l.purge(r.First, r.End()-1); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Archived returns the archived range holding entry i, or false.
func (l *Log) Archived(i uint64) (ArchivedRange, bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ArchivedRange{}, false, ErrClosed
	}
	return l.archivedRange(i)
}

// ArchivedRanges calls fn with every archived range, in order, until fn
// returns false.
func (l *Log) ArchivedRanges(fn func(ArchivedRange) bool) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return scanArchived(l.db, fn)
}

// LastArchived is the last archived range (Count 0 if none): the next one
// starts at its End.
func (l *Log) LastArchived() (ArchivedRange, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ArchivedRange{}, ErrClosed
	}
	return l.lastArchived()
}

// archivedRange finds the range holding i. The caller holds mu for reading.
func (l *Log) archivedRange(i uint64) (ArchivedRange, bool, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: archiveKey(i + 1), UpperBound: []byte{prefixArchive + 1}})
	if err != nil {
		return ArchivedRange{}, false, err
	}
	defer it.Close()
	if !it.First() {
		return ArchivedRange{}, false, it.Error()
	}
	r, err := decodeArchived(it.Key(), it.Value())
	if err != nil || r.First > i {
		return ArchivedRange{}, false, err
	}
	return r, true, nil
}

func (l *Log) lastArchived() (ArchivedRange, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixArchive}, UpperBound: []byte{prefixArchive + 1}})
	if err != nil {
		return ArchivedRange{}, err
	}
	defer it.Close()
	if !it.Last() {
		return ArchivedRange{}, it.Error()
	}
	return decodeArchived(it.Key(), it.Value())
}

// pebbleReader is what scanArchived needs of a database (a Log's or
// Check's read-only one).
type pebbleReader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func scanArchived(db pebbleReader, fn func(ArchivedRange) bool) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixArchive}, UpperBound: []byte{prefixArchive + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		r, err := decodeArchived(it.Key(), it.Value())
		if err != nil {
			return err
		}
		if !fn(r) {
			break
		}
	}
	return it.Error()
}

func decodeArchived(k, v []byte) (ArchivedRange, error) {
	if len(k) != 9 || len(v) != 8 {
		return ArchivedRange{}, fmt.Errorf("%w: archived range record %x -> %x", ErrCorrupt, k, v)
	}
	end, first := indexOf(k), binary.BigEndian.Uint64(v)
	if first >= end {
		return ArchivedRange{}, fmt.Errorf("%w: archived range %d..%d is empty", ErrCorrupt, first, end)
	}
	return ArchivedRange{First: first, Count: end - first}, nil
}
