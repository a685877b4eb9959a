package gateway

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/internal/pebblelog"
	"github.com/thingnet/thingnet/reading"
)

// index is the gateway's secondary store: its readings by device and time,
// and each device's last sequence number and envelope hash (the replay
// state), so that neither a query nor a restart reads the whole log. It
// trails the log: "m/indexed" is the log size it covers, written in the same
// batch as the entries, and opening catches up from there. It is written
// without fsync: after a crash, what it lost is rebuilt from the log.
//
// Keys:
//
//	r/<device>\x00<time ms, 8 BE><log index, 8 BE>      -> empty
//	v/<device>\x00<received ms, 8 BE><log index, 8 BE>  -> empty (entries of layout 3)
//	s/<device>                                          -> seq (8 BE) || envelope hash (32)
//	u/<device>\x00<type>\x00<size><block start ms, 8 BE> -> roll-ups (rollup.Block; rollup.go)
//	m/indexed                                           -> log size covered (8 BE)
//	m/rolled                                            -> log size the roll-ups cover (8 BE; rollup.go)
//	m/rollup-layout                                     -> the roll-ups' layout (8 BE; rollup.go)
//	m/erased                                            -> seq of the last ledger erasure applied (8 BE; erase.go)
//	A<r|v>/<device>\x00<day, 8 BE><segment, 8 BE>        -> archived entries' r/ and v/ keys, folded (archive_index.go)
//	m/folded                                            -> end of the archived entries folded (8 BE; archive_index.go)
//
// An erased entry's r/ and v/ keys are deleted with it, and the roll-ups
// it was in are computed again without it, in the same batch (erase.go).
type index struct {
	db *pebble.DB
	// rollups says that the roll-ups are kept (Config.NoRollups unset).
	rollups bool
	// The roll-up blocks ingest holds (rollup.go): those it changed and
	// has not written yet, covering the log up to pendingTo, first changed
	// at pendingSince (zero: none pending), and those it wrote last.
	rollMu       sync.Mutex
	held         *blockEdits
	pendingTo    uint64
	pendingSince time.Time
	// recuts counts the re-cut marks (recut.go).
	recuts recutCount
}

var keyIndexed = []byte("m/indexed")

// indexCache is the size of the index's block cache: a year of one
// device's minute roll-ups is about 30 MB of blocks, read whole by a
// query of the year (Pebble's default, 8 MB, holds none of it the next
// time: every such query read and decompressed it again).
const indexCache = 64 << 20

// indexMemTable is the size of the index's memtables. Its keys arrive in
// no order (a device's time, its receive time and its replay state, for
// every device at once), so each flushed table overlaps the whole base
// level and each compaction of L0 rewrites it: with Pebble's 4 MiB, 6.9
// bytes were written per byte indexed at ~12,000 readings/s; with 16 MiB,
// 1.8 (issue 19, part 2).
const indexMemTable = 16 << 20

func openIndex(dir string, log *slog.Logger, rollups bool) (*index, error) {
	cache := pebble.NewCache(indexCache)
	defer cache.Unref() // the store holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Cache: cache, MemTableSize: indexMemTable,
		Logger: pebblelog.New(log.With("component", "index"), "gateway: index")})
	if err != nil {
		return nil, fmt.Errorf("gateway: opening the readings index in %s: %w", dir, err)
	}
	return &index{db: db, rollups: rollups}, nil
}

func (x *index) close() error { return errors.Join(x.flushRollups(), x.db.Close()) }

// covered is the log size the index covers.
func (x *index) covered() (uint64, error) { return x.u64(keyIndexed, "index meta") }

// u64 reads a counter of the index's own (absent: 0).
func (x *index) u64(key []byte, what string) (uint64, error) {
	v, closer, err := x.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("gateway: %s is %d bytes", what, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func readingKey(device string, t time.Time, i uint64) []byte {
	k := make([]byte, 0, 2+len(device)+1+16)
	k = append(k, "r/"...)
	k = append(k, device...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixMilli()))
	return binary.BigEndian.AppendUint64(k, i)
}

func receivedKey(device string, ms int64, i uint64) []byte {
	k := make([]byte, 0, 2+len(device)+1+16)
	k = append(k, "v/"...)
	k = append(k, device...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(ms))
	return binary.BigEndian.AppendUint64(k, i)
}

// add indexes the entries stored at first, first+1, ... (nil for one
// erased before it was indexed), updates the roll-ups, and records that
// the index covers the log up to first+len(ents).
func (x *index) add(first uint64, ents []*reading.Entry) error {
	b := x.db.NewBatch()
	defer b.Close()
	// The replay state is each device's last envelope of the batch: one
	// s/ key per device, not per envelope (a busy device has many in a
	// batch; issue 19, part 2).
	last := make(map[string]*reading.Envelope, min(len(ents), 1024))
	for k, e := range ents {
		if e == nil {
			continue // erased before it was indexed
		}
		env := e.Envelope
		for _, r := range env.Readings {
			if err := b.Set(readingKey(env.Device, r.Time, first+uint64(k)), nil, nil); err != nil {
				return err
			}
		}
		if e.ReceivedAt != 0 {
			if err := b.Set(receivedKey(env.Device, e.ReceivedAt, first+uint64(k)), nil, nil); err != nil {
				return err
			}
		}
		last[env.Device] = env
	}
	for device, env := range last { // the batch's order is its keys', not this loop's
		h := sha256.Sum256(env.Raw)
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(h)), env.Readings[len(env.Readings)-1].Seq)
		if err := b.Set([]byte("s/"+device), append(v, h[:]...), nil); err != nil {
			return err
		}
	}
	if err := b.Set(keyIndexed, binary.BigEndian.AppendUint64(nil, first+uint64(len(ents))), nil); err != nil {
		return err
	}
	if !x.rollups {
		return b.Commit(pebble.NoSync)
	}
	// The roll-ups are written back (rollup.go): added to the pending
	// blocks here, written with this batch once due.
	x.rollMu.Lock()
	defer x.rollMu.Unlock()
	if x.held == nil {
		x.held = x.edits()
	}
	if x.pendingSince.IsZero() {
		x.pendingSince = time.Now()
	}
	if err := x.rollInto(x.held, ents); err != nil {
		return err
	}
	x.pendingTo = first + uint64(len(ents))
	if time.Since(x.pendingSince) < rollupWriteEvery && len(x.held.order) < maxPendingBlocks {
		return b.Commit(pebble.NoSync)
	}
	return x.writeRollupsLocked(b)
}

// replayState calls fn with every device's last stored seq and envelope hash.
func (x *index) replayState(fn func(device string, seq uint64, hash [32]byte)) error {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte("s/"), UpperBound: []byte("s0")})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) != 40 {
			return fmt.Errorf("gateway: index replay state of %q is %d bytes", it.Key()[2:], len(v))
		}
		fn(string(it.Key()[2:]), binary.BigEndian.Uint64(v), [32]byte(v[8:]))
	}
	return it.Error()
}

// lastSeq returns a device's last stored seq (found false if it never sent one).
func (x *index) lastSeq(device string) (seq uint64, found bool, err error) {
	v, closer, err := x.db.Get([]byte("s/" + device))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(v) != 40 {
		return 0, false, fmt.Errorf("gateway: index replay state of %q is %d bytes", device, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// query returns the log indexes of a device's readings timed in [from, to),
// in time order, each once, at most limit.
func (x *index) query(device string, from, to time.Time, limit int) ([]uint64, error) {
	return x.queryExcept(device, from, to, limit, nil)
}

// queryExcept is query without the indexes in skip.
func (x *index) queryExcept(device string, from, to time.Time, limit int, skip map[uint64]bool) ([]uint64, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []uint64
	seen := map[uint64]bool{}
	err := x.scanAxis(axisTime, device, uint64(from.UnixMilli()), 0, uint64(to.UnixMilli()), func(_, i uint64) (bool, error) {
		if !seen[i] && !skip[i] {
			seen[i] = true
			out = append(out, i)
		}
		return len(out) < limit, nil
	})
	return out, err
}
