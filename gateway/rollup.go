package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/rollup"
)

// Roll-ups (docs/data.md): for every device and content type, the
// aggregate (rollup.Agg: count, sum, min, max, last) of its numeric
// readings in each bucket of 1 minute, 1 hour and 1 day by the readings'
// own time, kept in the index's store at ingest, in the same batch as the
// index keys of the same entries. Sealed and byte-string values do not
// roll up. Like the index they are rebuilt from the log: after a crash the
// batches lost are replayed from the log in log order, so the sums, which
// depend on the order of the additions, come out bit for bit the same.
// An erased entry leaves them: the buckets it was in are computed again
// from the entries that remain, in log order (erase.go, index.remove).
//
// They are stored in blocks (rollup.Block): one value holds the minute
// buckets of a quarter of an hour, the hour buckets of a day, or one day
// bucket, under a key that sorts by device, type, size and block start, so
// a range is one sequential scan of few values (a year of minutes: 35,040)
// with fixed-width aggregates that decode without allocating.
// "m/rollup-layout" names this layout: a store without it (or with
// another) has its roll-ups dropped and rebuilt from the log when the
// gateway opens.

var (
	keyRolled       = []byte("m/rolled")
	keyRollupLayout = []byte("m/rollup-layout")
)

// rollupLayout is the layout of the stored roll-ups: 1 was one value per
// bucket, 2 is one per block.
const rollupLayout = 2

// rollupKey is the key of the block of size z that starts at start.
func rollupKey(device, typ string, z rollup.Size, start int64) []byte {
	return appendRollupKey(make([]byte, 0, 2+len(device)+1+len(typ)+1+9), device, typ, z, start)
}

// appendRollupKey appends rollupKey(device, typ, z, start) to dst.
func appendRollupKey(dst []byte, device, typ string, z rollup.Size, start int64) []byte {
	dst = append(append(append(append(append(dst, "u/"...), device...), 0), typ...), 0, z.Code)
	return binary.BigEndian.AppendUint64(dst, uint64(start))
}

// blockEdit is a block read from the store to be changed in a batch.
type blockEdit struct {
	key   []byte
	z     rollup.Size
	b     rollup.Block
	val   []byte // scratch for its stored form
	dirty bool   // changed since it was read or last written
}

// blockEdits gathers the blocks a batch changes, each read once, and
// writes the changed ones in the order first changed. Ingest keeps one
// across batches (index.held): the blocks it wrote stay in it, clean, so
// the next batch changes a device's current minute, hour and day blocks
// without reading them back from the store.
type blockEdits struct {
	x     *index
	byKey map[string]*blockEdit
	order []*blockEdit // the dirty blocks
	key   []byte       // scratch
}

func (x *index) edits() *blockEdits { return &blockEdits{x: x, byKey: map[string]*blockEdit{}} }

// editPool recycles blockEdits' blocks (3.6 KB each): every stored batch
// changes a few blocks per device.
var editPool = sync.Pool{New: func() any { return new(blockEdit) }}

// release gives e's blocks back to editPool.
func (e *blockEdits) release() {
	for _, ed := range e.byKey {
		ed.key, ed.val, ed.b.Has, ed.dirty = nil, ed.val[:0], 0, false
		editPool.Put(ed)
	}
	e.order, e.byKey = nil, nil
}

// written marks the dirty blocks as written (clean).
func (e *blockEdits) written() {
	for _, ed := range e.order {
		ed.dirty = false
	}
	e.order = e.order[:0]
}

// at is the block of size z holding the bucket of device and typ that
// starts at start, and the bucket's slot in it, marked dirty.
func (e *blockEdits) at(device, typ string, z rollup.Size, start int64) (*rollup.Block, int, error) {
	bs, slot := z.BlockStart(start)
	e.key = appendRollupKey(e.key[:0], device, typ, z, bs)
	if ed, ok := e.byKey[string(e.key)]; ok { // no allocation to look up
		if !ed.dirty {
			ed.dirty = true
			e.order = append(e.order, ed)
		}
		return &ed.b, slot, nil
	}
	k := bytes.Clone(e.key)
	ed := editPool.Get().(*blockEdit) // Has 0: its slots are unused
	ed.key, ed.z, ed.dirty = k, z, true
	if err := e.x.blockAt(k, z, &ed.b); err != nil {
		ed.key = nil
		editPool.Put(ed)
		return nil, 0, err
	}
	e.byKey[string(k)] = ed
	e.order = append(e.order, ed)
	return &ed.b, slot, nil
}

// write sets (or, emptied, deletes) the dirty blocks in b.
func (e *blockEdits) write(b *pebble.Batch) error {
	for _, ed := range e.order {
		var err error
		if ed.b.Has == 0 {
			err = b.Delete(ed.key, nil)
		} else {
			ed.val = ed.b.Append(ed.val[:0]) // the batch copies it
			err = b.Set(ed.key, ed.val, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Roll-ups are written back: ingest adds a batch's readings to the
// blocks it holds in memory (index.held) and writes the changed ones,
// with m/rolled, in the batch of the index that is due once
// rollupWriteEvery has passed since the first pending change, or
// maxPendingBlocks blocks are pending; a query or an erasure writes them
// first (flushRollups), and so does a clean close. A block rewritten whole
// for every stored batch tripled the index's writes in the gateway's one
// commit goroutine (docs/benchmarks.md). After a crash, m/rolled trails
// m/indexed and the start rolls the entries between them again
// (catchUpRollups): the roll-ups are exact. The blocks written stay held,
// clean, up to maxHeldBlocks; past that they are dropped (the store has
// them) and read again when next changed.
const (
	rollupWriteEvery = time.Second
	maxPendingBlocks = 2048 // 3.6 KB each in memory
	maxHeldBlocks    = 4096 // a device's current blocks of one type are 3
)

// writeRollupsLocked writes the pending blocks and m/rolled in b and
// commits it. Called with rollMu held and roll-ups pending.
func (x *index) writeRollupsLocked(b *pebble.Batch) error {
	if err := x.held.write(b); err != nil {
		return err
	}
	if err := b.Set(keyRolled, binary.BigEndian.AppendUint64(nil, x.pendingTo), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err // still pending: written again by the next batch due
	}
	x.held.written()
	x.pendingSince = time.Time{}
	if len(x.held.byKey) > maxHeldBlocks {
		x.held.release()
		x.held = nil
	}
	return nil
}

// flushRollups writes the pending roll-up blocks, if any.
func (x *index) flushRollups() error {
	x.rollMu.Lock()
	defer x.rollMu.Unlock()
	return x.flushRollupsLocked()
}

func (x *index) flushRollupsLocked() error {
	if x.pendingSince.IsZero() {
		return nil
	}
	b := x.db.NewBatch()
	defer b.Close()
	return x.writeRollupsLocked(b)
}

// dropHeld writes the pending roll-up blocks and forgets the blocks held:
// before something else writes roll-ups (an erasure, a rebuild, a
// catch-up), which would leave them stale.
func (x *index) dropHeld() error {
	x.rollMu.Lock()
	defer x.rollMu.Unlock()
	if err := x.flushRollupsLocked(); err != nil {
		return err
	}
	if x.held != nil {
		x.held.release()
		x.held = nil
	}
	return nil
}

// roll adds the numeric readings of ents, in order, to the stored
// roll-ups, writing them to b.
func (x *index) roll(b *pebble.Batch, ents []*reading.Entry) error {
	e := x.edits()
	defer e.release() // b holds copies of the blocks
	if err := x.rollInto(e, ents); err != nil {
		return err
	}
	return e.write(b)
}

// rollInto adds the numeric readings of ents, in order, to the blocks of e.
func (x *index) rollInto(e *blockEdits, ents []*reading.Entry) error {
	for _, en := range ents {
		if en == nil {
			continue
		}
		for _, r := range en.Envelope.Readings {
			if r.Value == nil {
				continue // sealed and byte-string values do not roll up
			}
			ms := r.Time.UnixMilli()
			for _, z := range rollup.Sizes {
				bl, slot, err := e.at(en.Envelope.Device, r.ContentType, z, z.Start(ms))
				if err != nil {
					return err
				}
				bl.Add(slot, *r.Value, ms, r.Seq)
			}
		}
	}
	return nil
}

// blockAt reads one stored block into bl (absent: empty).
func (x *index) blockAt(key []byte, z rollup.Size, bl *rollup.Block) error {
	bl.Has = 0
	v, closer, err := x.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := bl.Decode(v, z); err != nil {
		return fmt.Errorf("gateway: roll-up %q: %w", key, err)
	}
	return nil
}

// rebuildRollups drops every roll-up and computes them again from the log
// entries below size (entryAt answers nil for an erased one): when the
// roll-ups do not cover what the index covers (they were turned off, or
// the store predates them) or are stored in another layout.
func (x *index) rebuildRollups(size uint64, entryAt func(uint64) (*reading.Entry, error)) error {
	if err := x.dropHeld(); err != nil {
		return err
	}
	if err := x.db.DeleteRange([]byte("u/"), []byte("u0"), pebble.NoSync); err != nil {
		return err
	}
	return x.rollRange(0, size, entryAt)
}

// catchUpRollups adds the entries from rolled to size to the roll-ups:
// after a crash, those whose roll-ups were still pending (m/rolled is
// written with the blocks, so the stored roll-ups are exactly those of
// the entries below it).
func (x *index) catchUpRollups(rolled, size uint64, entryAt func(uint64) (*reading.Entry, error)) error {
	if err := x.dropHeld(); err != nil {
		return err
	}
	return x.rollRange(rolled, size, entryAt)
}

// rollRange rolls up the log entries from start to size, 1,024 a batch,
// and records the layout.
func (x *index) rollRange(start, size uint64, entryAt func(uint64) (*reading.Entry, error)) error {
	for from := start; from < size; {
		n := min(size-from, 1024)
		ents := make([]*reading.Entry, 0, n)
		for i := from; i < from+n; i++ {
			e, err := entryAt(i)
			if err != nil {
				return err
			}
			ents = append(ents, e)
		}
		b := x.db.NewBatch()
		if err := x.roll(b, ents); err != nil {
			b.Close()
			return err
		}
		if err := b.Set(keyRolled, binary.BigEndian.AppendUint64(nil, from+n), nil); err != nil {
			b.Close()
			return err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			b.Close()
			return err
		}
		b.Close()
		from += n
	}
	b := x.db.NewBatch()
	defer b.Close()
	if err := errors.Join(b.Set(keyRolled, binary.BigEndian.AppendUint64(nil, size), nil),
		b.Set(keyRollupLayout, binary.BigEndian.AppendUint64(nil, rollupLayout), nil)); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// rollupTypes lists the content types a device has roll-ups of, in order.
func (x *index) rollupTypes(device string) ([]string, error) {
	if err := x.flushRollups(); err != nil { // what is pending, first
		return nil, err
	}
	prefix := []byte("u/" + device + "\x00")
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(bytes.Clone(prefix[:len(prefix)-1]), 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; {
		rest := it.Key()[len(prefix):]
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			return nil, fmt.Errorf("gateway: roll-up key %q has no type", it.Key())
		}
		typ := string(rest[:end])
		out = append(out, typ)
		ok = it.SeekGE(append(append(bytes.Clone(prefix), typ...), 1))
	}
	return out, it.Error()
}

// scanRollups calls fn with a device's stored roll-ups of type typ and
// size z whose buckets start in [from, to), in order, until fn returns
// false. a is valid only during the call.
func (x *index) scanRollups(device, typ string, z rollup.Size, from, to int64, fn func(start int64, a *rollup.Agg) bool) error {
	if from >= to {
		return nil
	}
	if err := x.flushRollups(); err != nil { // what is pending, first
		return err
	}
	lo, _ := z.BlockStart(max(from, 0))
	hi, _ := z.BlockStart(max(to-1, 0))
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: rollupKey(device, typ, z, lo), UpperBound: rollupKey(device, typ, z, hi+1)})
	if err != nil {
		return err
	}
	defer it.Close()
	bl := new(rollup.Block)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if err := bl.Decode(it.Value(), z); err != nil {
			return fmt.Errorf("gateway: roll-up %q: %w", k, err)
		}
		bs := int64(binary.BigEndian.Uint64(k[len(k)-8:]))
		for h := bl.Has; h != 0; h &= h - 1 {
			i := bits.TrailingZeros64(h)
			start := bs + int64(i)*z.MS
			if start < from {
				continue
			}
			if start >= to || !fn(start, &bl.Aggs[i]) {
				return nil
			}
		}
	}
	return it.Error()
}

// unroll writes to b the roll-ups of the buckets the gone entries had
// readings in, computed again without them (skip holds their indexes):
// from the entries of the index that remain, in log order, as ingest
// added them. entryAt answers nil for an erased entry.
func (x *index) unroll(b *pebble.Batch, gone []indexed, skip map[uint64]bool, entryAt func(uint64) (*reading.Entry, error)) error {
	// The pending blocks first: what follows reads the stored ones, and
	// the caller commits b, after which the held ones would be stale
	// (stores and erasures take turns, under the gateway's storeMu).
	if err := x.dropHeld(); err != nil {
		return err
	}
	type bucket struct {
		device, typ string
		z           rollup.Size
		start       int64
	}
	seen := map[bucket]bool{}
	var todo []bucket
	types := map[string][]string{}
	for _, g := range gone {
		ts, ok := types[g.device]
		if !ok {
			var err error
			if ts, err = x.rollupTypes(g.device); err != nil {
				return err
			}
			types[g.device] = ts
		}
		for _, typ := range ts {
			for _, z := range rollup.Sizes {
				// Only the buckets that exist can hold the entry's readings.
				err := x.scanRollups(g.device, typ, z, z.Start(g.first), g.last+1, func(start int64, _ *rollup.Agg) bool {
					if k := (bucket{g.device, typ, z, start}); !seen[k] {
						seen[k] = true
						todo = append(todo, k)
					}
					return true
				})
				if err != nil {
					return err
				}
			}
		}
	}
	e := x.edits()
	for _, k := range todo {
		idx, err := x.queryExcept(k.device, time.UnixMilli(k.start), time.UnixMilli(k.start+k.z.MS), math.MaxInt, skip)
		if err != nil {
			return err
		}
		slices.Sort(idx) // log order, as ingest added them
		var a rollup.Agg
		for _, i := range idx {
			e, err := entryAt(i)
			if err != nil {
				return err
			}
			if e == nil {
				continue
			}
			for _, r := range e.Envelope.Readings {
				ms := r.Time.UnixMilli()
				if r.Value != nil && r.ContentType == k.typ && k.z.Start(ms) == k.start {
					a.Add(*r.Value, ms, r.Seq)
				}
			}
		}
		bl, slot, err := e.at(k.device, k.typ, k.z, k.start)
		if err != nil {
			return err
		}
		bl.Set(slot, a)
	}
	defer e.release() // b holds copies of the blocks
	return e.write(b)
}
