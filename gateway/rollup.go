package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
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

var keyRolled = []byte("m/rolled")

func rollupPrefix(device, typ string) []byte {
	k := make([]byte, 0, 2+len(device)+1+len(typ)+1)
	k = append(k, "u/"...)
	k = append(k, device...)
	k = append(k, 0)
	k = append(k, typ...)
	return append(k, 0)
}

func rollupKey(device, typ string, z rollup.Size, start int64) []byte {
	k := append(rollupPrefix(device, typ), z.Code)
	return binary.BigEndian.AppendUint64(k, uint64(start))
}

// roll adds the numeric readings of ents, in order, to the stored
// roll-ups, writing them to b.
func (x *index) roll(b *pebble.Batch, ents []*reading.Entry) error {
	aggs := map[string]*rollup.Agg{}
	var order []string
	for _, e := range ents {
		if e == nil {
			continue
		}
		for _, r := range e.Envelope.Readings {
			if r.Value == nil {
				continue // sealed and byte-string values do not roll up
			}
			ms := r.Time.UnixMilli()
			for _, z := range rollup.Sizes {
				k := string(rollupKey(e.Envelope.Device, r.ContentType, z, z.Start(ms)))
				a, ok := aggs[k]
				if !ok {
					stored, found, err := x.rollupAt([]byte(k))
					if err != nil {
						return err
					}
					a = &rollup.Agg{}
					if found {
						*a = stored
					}
					aggs[k] = a
					order = append(order, k)
				}
				a.Add(*r.Value, ms, r.Seq)
			}
		}
	}
	for _, k := range order {
		if err := b.Set([]byte(k), aggs[k].Encode(), nil); err != nil {
			return err
		}
	}
	return nil
}

// rollupAt reads one stored roll-up.
func (x *index) rollupAt(key []byte) (rollup.Agg, bool, error) {
	v, closer, err := x.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return rollup.Agg{}, false, nil
	}
	if err != nil {
		return rollup.Agg{}, false, err
	}
	defer closer.Close()
	a, err := rollup.Decode(v)
	if err != nil {
		return a, false, fmt.Errorf("gateway: roll-up %q: %w", key, err)
	}
	return a, true, nil
}

// rebuildRollups drops every roll-up and computes them again from the log
// entries below size (entryAt answers nil for an erased one): when the
// roll-ups do not cover what the index covers (they were turned off, or
// the store predates them).
func (x *index) rebuildRollups(size uint64, entryAt func(uint64) (*reading.Entry, error)) error {
	if err := x.db.DeleteRange([]byte("u/"), []byte("u0"), pebble.NoSync); err != nil {
		return err
	}
	for from := uint64(0); from < size; {
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
	return x.db.Set(keyRolled, binary.BigEndian.AppendUint64(nil, size), pebble.NoSync)
}

// rollupTypes lists the content types a device has roll-ups of, in order.
func (x *index) rollupTypes(device string) ([]string, error) {
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
// false.
func (x *index) scanRollups(device, typ string, z rollup.Size, from, to int64, fn func(start int64, a *rollup.Agg) bool) error {
	if from >= to {
		return nil
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: rollupKey(device, typ, z, max(from, 0)), UpperBound: rollupKey(device, typ, z, max(to, 0))})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		a, err := rollup.Decode(it.Value())
		if err != nil {
			return fmt.Errorf("gateway: roll-up %q: %w", k, err)
		}
		if !fn(int64(binary.BigEndian.Uint64(k[len(k)-8:])), &a) {
			break
		}
	}
	return it.Error()
}

// unroll writes to b the roll-ups of the buckets the gone entries had
// readings in, computed again without them (skip holds their indexes):
// from the entries of the index that remain, in log order, as ingest
// added them. entryAt answers nil for an erased entry.
func (x *index) unroll(b *pebble.Batch, gone []indexed, skip map[uint64]bool, entryAt func(uint64) (*reading.Entry, error)) error {
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
		key := rollupKey(k.device, k.typ, k.z, k.start)
		if a.Count == 0 {
			err = b.Delete(key, nil)
		} else {
			err = b.Set(key, a.Encode(), nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
