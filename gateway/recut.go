package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// Erasure after archiving (docs/operations.md): an entry erased after its
// segment was cut still has its bytes in that segment, at every node that
// pins it. The gateway then cuts the segment again, with the erased
// entries as leaf hashes only (the leaf hashes, the log's size and root
// are those of the first cut, so every proof stays the same), publishes
// it, records it on the ledger as a re-cut of the range (log.archive with
// Recut), and drops its own pin of the old segment; pinners drop theirs
// when they see the old CID among the record's Replaced.
//
// Which segments: erase marks, in the index and in the same critical
// section as the erasure (under storeMu), every erased entry below the end
// of the last range cut (archiver.cutEnd, raised under storeMu before a cut
// reads its entries: an entry erased later is read as erased by the cut).
// The archive loop takes the marks in order, re-cuts the range of the
// first, and clears the marks it dealt with once the re-cut is recorded. A
// crash at any point leaves the marks, so the re-cut is done again.

var prefixRecut = []byte("m/recut/")

func recutKey(i uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{}, prefixRecut...), i)
}

// recutCount is how many re-cut marks the index holds: counted once, on
// first use, then kept with the marks (markRecut and clearRecut count what
// they add and remove), so GET /v1/archive does not iterate them.
type recutCount struct {
	once sync.Once
	err  error
	n    atomic.Int64
}

// pendingRecut is the number of re-cut marks.
func (x *index) pendingRecut() (int64, error) {
	x.recuts.once.Do(func() {
		n := int64(0)
		it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: prefixRecut, UpperBound: []byte("m/recut0")})
		if err != nil {
			x.recuts.err = err
			return
		}
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		x.recuts.err = errors.Join(it.Error(), it.Close())
		x.recuts.n.Store(n)
	})
	return x.recuts.n.Load(), x.recuts.err
}

// markRecut records, durably, that entries idx are being erased and may
// sit in a segment already cut. Called with storeMu held.
func (x *index) markRecut(idx []uint64) error {
	return x.setRecut(idx, true)
}

// clearRecut deletes the marks of idx. Called with storeMu held.
func (x *index) clearRecut(idx []uint64) error {
	return x.setRecut(idx, false)
}

// setRecut sets or deletes the marks of idx, and counts the change.
func (x *index) setRecut(idx []uint64, set bool) error {
	if _, err := x.pendingRecut(); err != nil {
		return err
	}
	b := x.db.NewBatch()
	defer b.Close()
	delta := int64(0)
	seen := map[uint64]bool{}
	for _, i := range idx {
		if seen[i] {
			continue
		}
		seen[i] = true
		_, closer, err := x.db.Get(recutKey(i))
		switch {
		case err == nil:
			closer.Close()
			if !set {
				delta--
			}
		case errors.Is(err, pebble.ErrNotFound):
			if set {
				delta++
			}
		default:
			return err
		}
		if set {
			err = b.Set(recutKey(i), nil, nil)
		} else {
			err = b.Delete(recutKey(i), nil)
		}
		if err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	x.recuts.n.Add(delta)
	return nil
}

// recutMarks returns the marked entries from the first, at most limit.
func (x *index) recutMarks(limit int) ([]uint64, error) {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: prefixRecut, UpperBound: []byte("m/recut0")}) // "0" follows "/"
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []uint64
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefixRecut)+8 {
			return nil, fmt.Errorf("%w: re-cut mark key %x", datalog.ErrCorrupt, k)
		}
		out = append(out, binary.BigEndian.Uint64(k[len(prefixRecut):]))
	}
	return out, it.Error()
}

// recutBelow returns the entries of tombs that a cut segment may hold:
// those below the end of the last range cut. Called with storeMu held.
func (g *Gateway) recutBelow(tombs []datalog.Tomb) []uint64 {
	a := g.arch.Load()
	if a == nil || !a.cfg.Archive {
		return nil
	}
	end := a.cutEnd.Load()
	var out []uint64
	for _, t := range tombs {
		if t.Index < end {
			out = append(out, t.Index)
		}
	}
	return out
}

// recutRound re-cuts the recorded segment holding the first marked entry
// if it holds the bytes of entries erased here, and clears the marks of
// its range. It reports whether it did anything (the loop then comes
// back at once).
func (g *Gateway) recutRound(ctx context.Context, a *archiver, st *ledger.State) (bool, error) {
	marks, err := g.index.recutMarks(1)
	if err != nil || len(marks) == 0 {
		return false, err
	}
	rec, err := st.LogArchiveCovering(g.id, marks[0])
	if errors.Is(err, ledger.ErrNotFound) {
		return false, nil // cut but not recorded (yet): the mark waits
	}
	if err != nil {
		return false, err
	}
	r := datalog.ArchivedRange{First: rec.First, Count: rec.Count}
	seg, err := g.segment(ctx, a, rec, marks[0])
	if err != nil {
		return false, err
	}
	// Under storeMu: a mark is written with its erasure, so every marked
	// entry read here is erased already.
	g.storeMu.Lock()
	marked, err := g.index.recutMarks(int(datalog.MaxSegmentEntries) + 1)
	if err != nil {
		g.storeMu.Unlock()
		return false, err
	}
	var inRange, erased []uint64
	for _, i := range marked {
		if i >= r.End() {
			break
		}
		if i < r.First {
			continue
		}
		inRange = append(inRange, i)
		if _, held := seg.Entry(i); !held {
			continue
		}
		var ee *datalog.ErasedError
		if _, gerr := g.data.Entry(i); errors.As(gerr, &ee) {
			erased = append(erased, i)
		}
	}
	g.storeMu.Unlock()
	if len(erased) > 0 {
		if err := g.recut(ctx, a, rec, seg, erased); err != nil {
			return false, err
		}
	}
	g.storeMu.Lock() // with the marks' writers, so their count stays theirs
	defer g.storeMu.Unlock()
	return true, g.index.clearRecut(inRange)
}

// recut publishes and records seg without the bytes of entries erased,
// replacing rec's segment, and drops this node's pin of the old one.
func (g *Gateway) recut(ctx context.Context, a *archiver, rec *record.LogArchive, seg *datalog.Segment, erased []uint64) error {
	r := seg.Range()
	next := *seg
	next.Items = append([]datalog.SegmentItem(nil), seg.Items...)
	for _, i := range erased {
		next.Items[i-r.First].Entry = nil // its Leaf is set: DecodeSegment and CutSegment set every item's
	}
	plain, err := next.Encode()
	if err != nil {
		return err
	}
	cid, _, err := g.publishSegment(ctx, a, r, plain, true)
	if err != nil {
		return err
	}
	a.forget(r)
	a.remember(&next)
	if err := a.store.Unpin(ctx, rec.CID); err != nil {
		g.log.Warn("unpinning a replaced segment", "cid", rec.CID, "err", err)
	}
	a.recut.Add(1)
	g.log.Info("log segment re-cut after an erasure", "first", r.First, "count", r.Count, "erased", len(erased), "cid", cid, "replaced", rec.CID)
	return nil
}

// dropRecutPins drops this node's pins of the segments it re-cut once
// MinPins other nodes pin them, as for a first cut (dropArchived). It
// looks at the ledger's records, so a restart forgets nothing.
func (g *Gateway) dropRecutPins(ctx context.Context, a *archiver, st *ledger.State) error {
	if a.cfg.MinPins <= 0 {
		return nil
	}
	var todo []string
	var errs []error
	err := st.LogArchives(g.id, func(r *record.LogArchive) bool {
		if len(r.Replaced) == 0 || a.unpinned[r.CID] {
			return true
		}
		n, err := pinnersBesides(st, r.CID, g.id)
		if err != nil {
			errs = append(errs, err)
			return false
		}
		if n >= a.cfg.MinPins {
			todo = append(todo, r.CID)
		}
		return true
	})
	if err != nil || len(errs) > 0 {
		return errors.Join(append(errs, err)...)
	}
	for _, c := range todo {
		if err := a.store.Unpin(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("unpinning re-cut segment %s: %w", c, err))
			continue
		}
		a.unpinned[c] = true
	}
	return errors.Join(errs...)
}

// forget drops r's segment from the cache.
func (a *archiver) forget(r datalog.ArchivedRange) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.cache {
		if s.Range() == r {
			a.cache = append(a.cache[:k], a.cache[k+1:]...)
			return
		}
	}
}
