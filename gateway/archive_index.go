package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
)

// The readings index of archived entries (docs/operations.md, "What an
// archived reading costs"). A stored entry has one r/ key per reading and
// one v/ key (its receive time), each naming the device in full: about
// 100 bytes a reading when written. Once an entry's bytes are dropped
// (dropArchived), its keys are folded into blocks, one per axis, device,
// day and segment:
//
//	A<axis>/<device>\x00<day, 8 BE><segment's first index, 8 BE> -> pairs
//
// axis 'r' (the readings' times) or 'v' (the receive times), day the
// time's Unix milliseconds / 86,400,000, and the pairs the (time, log
// index) of each of the device's readings of that day in that segment,
// in order: the time as a uvarint from the previous one (the first from
// the day's start), the index as a zigzag varint from the previous one
// (the first from the segment's first index). About 3 bytes a reading.
// Every scan of a device's times (queries, lists, erasure, retention,
// roll-ups) merges them with the r/ and v/ keys (scanAxis), so an
// archived reading is found exactly as a stored one, without fetching
// any segment. The replay state (s/: a device's last seq and envelope
// hash) is per device and stays: a restarted gateway refuses a replayed
// reading whatever became of its entry.
//
// "m/folded" is the end of the archived entries whose keys are folded,
// written in the same batch: a crash between the drop and the fold
// leaves r/ and v/ keys, still found, and the archive loop folds them
// from the segment (foldArchived).

const dayMS = 86_400_000

var keyFolded = []byte("m/folded")

// Axes of the index: the readings' own times and the receive time.
const (
	axisTime     = 'r'
	axisReceived = 'v'
)

func blockPrefix(axis byte, device string) []byte {
	k := make([]byte, 0, 3+len(device)+1+16)
	k = append(k, 'A', axis, '/')
	k = append(k, device...)
	return append(k, 0)
}

func blockKey(axis byte, device string, day, first uint64) []byte {
	k := blockPrefix(axis, device)
	k = binary.BigEndian.AppendUint64(k, day)
	return binary.BigEndian.AppendUint64(k, first)
}

// pair is one reading's place on an axis: its time (Unix ms, as the keys
// order it) and its entry's log index.
type pair struct{ ms, i uint64 }

func cmpPair(a, b pair) int {
	if a.ms != b.ms {
		return cmpU64(a.ms, b.ms)
	}
	return cmpU64(a.i, b.i)
}

// encodeBlock packs ps (sorted, of day and from the segment at first).
func encodeBlock(day, first uint64, ps []pair) []byte {
	b := make([]byte, 0, 3*len(ps))
	ms, i := day*dayMS, first
	for _, p := range ps {
		b = binary.AppendUvarint(b, p.ms-ms)
		b = binary.AppendVarint(b, int64(p.i-i))
		ms, i = p.ms, p.i
	}
	return b
}

// decodeBlock unpacks block v of day and segment first: pairs in order,
// each of that day.
func decodeBlock(day, first uint64, v []byte) ([]pair, error) {
	var out []pair
	ms, i := day*dayMS, first
	for len(v) > 0 {
		dm, n := binary.Uvarint(v)
		if n <= 0 || dm >= dayMS {
			return nil, fmt.Errorf("%w: an archived index block of day %d: bad time", datalog.ErrCorrupt, day)
		}
		v = v[n:]
		di, n := binary.Varint(v)
		if n <= 0 {
			return nil, fmt.Errorf("%w: an archived index block of day %d: bad index", datalog.ErrCorrupt, day)
		}
		v = v[n:]
		p := pair{ms + dm, i + uint64(di)}
		if p.ms/dayMS != day || (len(out) > 0 && cmpPair(out[len(out)-1], p) >= 0) {
			return nil, fmt.Errorf("%w: an archived index block of day %d is out of order", datalog.ErrCorrupt, day)
		}
		out = append(out, p)
		ms, i = p.ms, p.i
	}
	return out, nil
}

// parseBlockKey reads the day and segment of a block key of prefix p.
func parseBlockKey(p, k []byte) (day, first uint64, ok bool) {
	if len(k) != len(p)+16 || !bytes.HasPrefix(k, p) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[len(p):]), binary.BigEndian.Uint64(k[len(p)+8:]), true
}

// scanAxis calls fn with device d's keys on axis (axisTime or
// axisReceived), stored and archived, from (fromMS, fromIdx) up to toMS
// (times as the keys order them: Unix ms as uint64), in order, until fn
// returns false or an error.
func (x *index) scanAxis(axis byte, d string, fromMS, fromIdx, toMS uint64, fn func(ms, i uint64) (bool, error)) error {
	if fromMS >= toMS {
		return nil
	}
	var lo, hi []byte
	if axis == axisReceived {
		lo, hi = receivedKey(d, int64(fromMS), fromIdx), receivedKey(d, int64(toMS), 0)
	} else {
		lo, hi = readingKey(d, time.UnixMilli(int64(fromMS)), fromIdx), readingKey(d, time.UnixMilli(int64(toMS)), 0)
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	n := len(lo) - 16
	next := func() (pair, bool) {
		for ; it.Valid(); it.Next() {
			if k := it.Key(); len(k) == n+16 {
				p := pair{binary.BigEndian.Uint64(k[n:]), binary.BigEndian.Uint64(k[n+8:])}
				it.Next()
				return p, true
			}
		}
		return pair{}, false
	}
	it.First()
	bp := blockPrefix(axis, d)
	bit, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: binary.BigEndian.AppendUint64(bytes.Clone(bp), fromMS/dayMS),
		UpperBound: binary.BigEndian.AppendUint64(bytes.Clone(bp), (toMS-1)/dayMS+1),
	})
	if err != nil {
		return err
	}
	defer bit.Close()
	bit.First()
	var buf []pair // the archived pairs of one day, in order
	more := func() error {
		for len(buf) == 0 && bit.Valid() {
			day, _, ok := parseBlockKey(bp, bit.Key())
			if !ok {
				bit.Next()
				continue
			}
			for ; bit.Valid(); bit.Next() {
				d2, first, ok := parseBlockKey(bp, bit.Key())
				if !ok {
					continue
				}
				if d2 != day {
					break
				}
				ps, err := decodeBlock(day, first, bit.Value())
				if err != nil {
					return err
				}
				for _, p := range ps {
					if p.ms < toMS && cmpPair(p, pair{fromMS, fromIdx}) >= 0 {
						buf = append(buf, p)
					}
				}
			}
			slices.SortFunc(buf, cmpPair)
		}
		return bit.Error()
	}
	s, sok := next()
	for {
		if err := more(); err != nil {
			return err
		}
		var p pair
		switch {
		case sok && (len(buf) == 0 || cmpPair(s, buf[0]) < 0):
			p = s
			s, sok = next()
		case len(buf) > 0:
			p, buf = buf[0], buf[1:]
		default:
			return it.Error()
		}
		if ok, err := fn(p.ms, p.i); err != nil || !ok {
			return err
		}
	}
}

// foldArchived folds the index keys of the entries of seg whose bytes the
// log dropped (archived, not erased) into blocks, and records that the
// index is folded up to the segment's end. Called with storeMu held.
func (g *Gateway) foldArchived(seg *datalog.Segment) error {
	r := seg.Range()
	type group struct {
		axis   byte
		device string
		day    uint64
	}
	blocks := map[group][]pair{}
	b := g.index.db.NewBatch()
	defer b.Close()
	nums, err := g.index.numbers(b)
	if err != nil {
		return err
	}
	var devs []byte // the segment's device table
	for i := r.First; i < r.End(); i++ {
		raw, ok := seg.Entry(i)
		if !ok {
			devs = append(devs, 0)
			continue // kept here (retention) or erased: its keys are as they were
		}
		if _, err := g.data.Entry(i); !errors.Is(err, datalog.ErrArchived) {
			devs = append(devs, 0)
			continue // still stored, or erased since the cut
		}
		e, err := reading.DecodeEntry(raw)
		if err != nil {
			return fmt.Errorf("log entry %d in its segment: %w", i, err)
		}
		env := e.Envelope
		num, err := nums.of(env.Device)
		if err != nil {
			return err
		}
		devs = binary.AppendUvarint(devs, num+1)
		for _, rd := range env.Readings {
			ms := uint64(rd.Time.UnixMilli())
			k := group{axisTime, env.Device, ms / dayMS}
			blocks[k] = append(blocks[k], pair{ms, i})
			if err := b.Delete(readingKey(env.Device, rd.Time, i), nil); err != nil {
				return err
			}
		}
		if e.ReceivedAt != 0 {
			ms := uint64(e.ReceivedAt)
			k := group{axisReceived, env.Device, ms / dayMS}
			blocks[k] = append(blocks[k], pair{ms, i})
			if err := b.Delete(receivedKey(env.Device, e.ReceivedAt, i), nil); err != nil {
				return err
			}
		}
	}
	for k, ps := range blocks {
		slices.SortFunc(ps, cmpPair)
		ps = slices.Compact(ps)
		if err := b.Set(blockKey(k.axis, k.device, k.day, r.First), encodeBlock(k.day, r.First, ps), nil); err != nil {
			return err
		}
	}
	if err := b.Set(binary.BigEndian.AppendUint64(bytes.Clone(prefixSegDevs), r.First), devs, nil); err != nil {
		return err
	}
	if err := b.Set(keyFolded, binary.BigEndian.AppendUint64(nil, r.End()), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// folded is the end of the archived entries whose index keys are folded.
func (x *index) folded() (uint64, error) { return x.u64(keyFolded, "index fold mark") }

// unfold removes erased archived entries from the blocks of their
// device's days, in batch b.
func (x *index) unfold(b *pebble.Batch, gone []indexed) error {
	drop := map[string]map[uint64]bool{} // block key -> indexes
	find := func(axis byte, device string, from, to uint64, i uint64) error {
		bp := blockPrefix(axis, device)
		it, err := x.db.NewIter(&pebble.IterOptions{
			LowerBound: binary.BigEndian.AppendUint64(bytes.Clone(bp), from/dayMS),
			UpperBound: binary.BigEndian.AppendUint64(bytes.Clone(bp), to/dayMS+1),
		})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			k := string(it.Key())
			if drop[k] == nil {
				drop[k] = map[uint64]bool{}
			}
			drop[k][i] = true
		}
		return errors.Join(it.Error(), it.Close())
	}
	for _, e := range gone {
		if err := find(axisTime, e.device, uint64(e.first), uint64(e.last), e.index); err != nil {
			return err
		}
		if e.received != 0 {
			if err := find(axisReceived, e.device, uint64(e.received), uint64(e.received), e.index); err != nil {
				return err
			}
		}
	}
	for k, idx := range drop {
		v, closer, err := x.db.Get([]byte(k))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		day, first := binary.BigEndian.Uint64([]byte(k[len(k)-16:])), binary.BigEndian.Uint64([]byte(k[len(k)-8:]))
		ps, err := decodeBlock(day, first, v)
		closer.Close()
		if err != nil {
			return err
		}
		kept := slices.DeleteFunc(ps, func(p pair) bool { return idx[p.i] })
		if len(kept) == 0 {
			err = b.Delete([]byte(k), nil)
		} else {
			err = b.Set([]byte(k), encodeBlock(day, first, kept), nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// foldBehind folds the keys of the archived entries below end that are
// not folded yet (a crash between a drop and its fold, or a store
// archived before folding), one segment a round, fetching it. It reports
// whether it did anything.
func (g *Gateway) foldBehind(ctx context.Context, a *archiver, st *ledger.State, end uint64) (bool, error) {
	from, err := g.index.folded()
	if err != nil || from >= end {
		return false, err
	}
	rec, err := st.LogArchiveCovering(g.id, from)
	if err != nil {
		return false, fmt.Errorf("folding the index keys of archived entry %d: %w", from, err)
	}
	seg, err := g.segment(ctx, a, rec, from)
	if err != nil {
		return false, err
	}
	g.storeMu.Lock()
	defer g.storeMu.Unlock()
	return true, g.foldArchived(seg)
}

// Which device an archived entry is of, without its segment: the read
// rule is applied before a segment is fetched (archivedDevice). Devices
// get a number once, and each folded segment a table of its entries'
// devices:
//
//	An/<device>                 -> its number (uvarint)
//	AN/<number, 8 BE>           -> the device
//	Ae/<segment's first, 8 BE>  -> per entry, in order: its device's number + 1 (uvarint; 0: not folded)
//	m/devices                   -> numbers given (8 BE)
//
// About one byte an entry, and the device's name once.

var (
	prefixDevNum   = []byte("An/")
	prefixNumDev   = []byte("AN/")
	prefixSegDevs  = []byte("Ae/")
	keyDevNumCount = []byte("m/devices")
)

// devNumbers gives devices numbers within one batch.
type devNumbers struct {
	x    *index
	b    *pebble.Batch
	next uint64
	got  map[string]uint64
}

func (x *index) numbers(b *pebble.Batch) (*devNumbers, error) {
	n, err := x.u64(keyDevNumCount, "index device numbers")
	return &devNumbers{x: x, b: b, next: n, got: map[string]uint64{}}, err
}

// of is device's number, given in the batch if it has none.
func (n *devNumbers) of(device string) (uint64, error) {
	if v, ok := n.got[device]; ok {
		return v, nil
	}
	k := append(bytes.Clone(prefixDevNum), device...)
	v, closer, err := n.x.db.Get(k)
	if err == nil {
		num, l := binary.Uvarint(v)
		closer.Close()
		if l <= 0 {
			return 0, fmt.Errorf("%w: the index number of %s", datalog.ErrCorrupt, device)
		}
		n.got[device] = num
		return num, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return 0, err
	}
	num := n.next
	n.next++
	n.got[device] = num
	if err := n.b.Set(k, binary.AppendUvarint(nil, num), nil); err != nil {
		return 0, err
	}
	if err := n.b.Set(binary.BigEndian.AppendUint64(bytes.Clone(prefixNumDev), num), []byte(device), nil); err != nil {
		return 0, err
	}
	return num, n.b.Set(keyDevNumCount, binary.BigEndian.AppendUint64(nil, n.next), nil)
}

// archivedDevice is the device of folded archived entry i; ok false if i
// is in no folded segment or was not folded (kept here, or erased).
func (x *index) archivedDevice(i uint64) (device string, ok bool, err error) {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: prefixSegDevs, UpperBound: binary.BigEndian.AppendUint64(bytes.Clone(prefixSegDevs), i+1)})
	if err != nil {
		return "", false, err
	}
	defer it.Close()
	if !it.Last() {
		return "", false, it.Error()
	}
	k := it.Key()
	if len(k) != len(prefixSegDevs)+8 {
		return "", false, fmt.Errorf("%w: segment device table key %x", datalog.ErrCorrupt, k)
	}
	v := it.Value()
	var num uint64
	for at := binary.BigEndian.Uint64(k[len(prefixSegDevs):]); ; at++ {
		if len(v) == 0 {
			return "", false, nil // beyond the segment
		}
		n, l := binary.Uvarint(v)
		if l <= 0 {
			return "", false, fmt.Errorf("%w: segment device table %x", datalog.ErrCorrupt, k)
		}
		v = v[l:]
		if at == i {
			num = n
			break
		}
	}
	if num == 0 {
		return "", false, nil
	}
	d, closer, err := x.db.Get(binary.BigEndian.AppendUint64(bytes.Clone(prefixNumDev), num-1))
	if err != nil {
		return "", false, fmt.Errorf("the device of archived entry %d: %w", i, err)
	}
	defer closer.Close()
	return string(d), true, nil
}

// archivedDevice is the device of entry i if it is archived here and its
// index keys are folded (ok false otherwise: stored, erased, or a crash
// between its drop and its fold, when reads fetch its segment first).
func (g *Gateway) archivedDevice(i uint64) (device string, ok bool, err error) {
	if _, err := g.data.Entry(i); !errors.Is(err, datalog.ErrArchived) {
		return "", false, nil
	}
	return g.index.archivedDevice(i)
}
