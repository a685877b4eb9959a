// State sync: the ledger serves snapshots of its state and restores one
// (CometBFT's ListSnapshots, LoadSnapshotChunk, OfferSnapshot,
// ApplySnapshotChunk). The format is in snapshot_codec.go.
//
// Everything the ledger keeps is in the IAVL tree: the chain id, the
// agreements' schedule, every record. What it keeps beside it are caches
// of pure functions (decoded txs, verified signatures, compiled agreements,
// DID keys) and the mempool's pending nonces, which start empty on a
// restored node as on a restarted one; so the tree is the whole snapshot.

package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cosmos/iavl"
	iavldb "github.com/cosmos/iavl/db"
)

// DefaultSnapshotChunkBytes is the default size of a snapshot chunk.
const DefaultSnapshotChunkBytes = 4 << 20

// snapshots is the state sync side of the App.
type snapshots struct {
	store     *snapshotStore // nil: this node takes no snapshots
	interval  int64
	chunkSize int

	exporting atomic.Int64 // height being exported; its version must not be pruned
	wg        sync.WaitGroup
	stop      chan struct{}
	stopOnce  sync.Once
	taken     atomic.Int64 // snapshots completed (for tests and metrics)

	restoring *restore // touched only by ABCI snapshot calls
}

// restore is a snapshot being applied.
type restore struct {
	height  int64
	appHash []byte
	meta    snapshotMeta
	next    uint32
	imp     *iavl.Importer
	dec     nodeDecoder
	dirty   bool // nodes may have reached the database
	started time.Time
}

func newSnapshots(c Config) (*snapshots, error) {
	s := &snapshots{interval: c.SnapshotInterval, chunkSize: c.SnapshotChunkBytes, stop: make(chan struct{})}
	if s.chunkSize <= 0 {
		s.chunkSize = DefaultSnapshotChunkBytes
	}
	keep := c.SnapshotKeep
	if keep <= 0 {
		keep = 2
	}
	if c.SnapshotInterval <= 0 {
		return s, nil
	}
	dir := ""
	if c.Dir != "" {
		dir = filepath.Join(c.Dir, "snapshots")
	}
	st, err := openSnapshotStore(dir, keep)
	if err != nil {
		return nil, err
	}
	s.store = st
	return s, nil
}

// pruneLimit caps the state versions Commit may prune to: never the
// version a snapshot is being exported from.
func (s *snapshots) pruneLimit(to int64) int64 {
	if e := s.exporting.Load(); e > 0 && to >= e {
		return e - 1
	}
	return to
}

// oldestServed is the lowest height a served (or in-progress) snapshot
// needs; 0 if none.
func (s *snapshots) oldestServed() int64 {
	if s.store == nil {
		return 0
	}
	low := s.store.oldest()
	if e := s.exporting.Load(); e > 0 && (low == 0 || e < low) {
		low = e
	}
	return low
}

// Snapshots returns how many snapshots this node has completed since it started.
func (a *App) Snapshots() int64 { return a.snap.taken.Load() }

// afterCommit starts a snapshot of version v in the background when v is
// on the interval and no other export is running. The export reads the
// immutable version v, which Commit does not prune until it is done; it
// writes nothing the state machine reads, so block execution goes on
// unchanged meanwhile.
func (a *App) snapshotAfterCommit(v int64) {
	s := a.snap
	if s.store == nil || v%s.interval != 0 {
		return
	}
	if !s.exporting.CompareAndSwap(0, v) {
		a.log.Warn("state snapshot skipped: the previous one is still being written", "height", v, "exporting", s.exporting.Load())
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.exporting.Store(0)
		start := time.Now()
		m, n, err := a.exportSnapshot(v)
		if err != nil {
			select {
			case <-s.stop:
			default:
				a.log.Error("state snapshot failed", "height", v, "err", err)
			}
			return
		}
		s.taken.Add(1)
		a.log.Info("state snapshot taken", "height", v, "chunks", len(m.Chunks), "bytes", n, "took", time.Since(start))
	}()
}

// exportSnapshot writes the snapshot of version v to the store.
func (a *App) exportSnapshot(v int64) (snapshotMeta, int64, error) {
	s := a.snap
	t := iavl.NewMutableTree(a.db, 10_000, true, iavl.NewNopLogger())
	imm, err := t.GetImmutable(v)
	if err != nil {
		return snapshotMeta{}, 0, fmt.Errorf("loading version %d: %w", v, err)
	}
	exp, err := imm.Export()
	if err != nil {
		return snapshotMeta{}, 0, err
	}
	defer exp.Close()
	put, done, abort, err := s.store.writer(uint64(v))
	if err != nil {
		return snapshotMeta{}, 0, err
	}
	c := &chunker{size: s.chunkSize, put: put}
	var buf []byte
	for {
		select {
		case <-s.stop:
			abort()
			return snapshotMeta{}, 0, errors.New("node stopping")
		default:
		}
		n, err := exp.Next()
		if errors.Is(err, iavl.ErrorExportDone) {
			break
		}
		if err != nil {
			abort()
			return snapshotMeta{}, 0, err
		}
		buf = appendExportNode(buf[:0], n)
		if err := c.write(buf); err != nil {
			abort()
			return snapshotMeta{}, 0, err
		}
	}
	if err := c.close(); err != nil {
		abort()
		return snapshotMeta{}, 0, err
	}
	m := snapshotMeta{Chunks: c.hashes}
	if err := done(m); err != nil {
		abort()
		return snapshotMeta{}, 0, err
	}
	return m, c.bytes, nil
}

// TakeSnapshot exports the snapshot of the last committed version now and
// waits for it (tests, benchmarks); the node must take snapshots
// (SnapshotInterval > 0) and no other export may be running.
func (a *App) TakeSnapshot() (*abci.Snapshot, error) {
	s := a.snap
	if s.store == nil {
		return nil, errors.New("this ledger takes no snapshots (snapshot_interval is 0)")
	}
	v := a.Height()
	if !s.exporting.CompareAndSwap(0, v) {
		return nil, errors.New("a snapshot is being written; try again")
	}
	defer s.exporting.Store(0)
	if _, _, err := a.exportSnapshot(v); err != nil {
		return nil, err
	}
	s.taken.Add(1)
	return s.store.list()[0], nil
}

// stopSnapshots stops a running export and waits for it.
func (s *snapshots) stopAndWait() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// ListSnapshots lists the snapshots this node serves, newest first.
func (a *App) ListSnapshots(context.Context, *abci.RequestListSnapshots) (*abci.ResponseListSnapshots, error) {
	if a.snap.store == nil {
		return &abci.ResponseListSnapshots{}, nil
	}
	return &abci.ResponseListSnapshots{Snapshots: a.snap.store.list()}, nil
}

// LoadSnapshotChunk serves a chunk (empty if this node no longer has it).
func (a *App) LoadSnapshotChunk(_ context.Context, req *abci.RequestLoadSnapshotChunk) (*abci.ResponseLoadSnapshotChunk, error) {
	if a.snap.store == nil {
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	b, err := a.snap.store.chunk(req.Height, req.Format, req.Chunk)
	if err != nil {
		a.log.Warn("reading snapshot chunk", "height", req.Height, "chunk", req.Chunk, "err", err)
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	return &abci.ResponseLoadSnapshotChunk{Chunk: b}, nil
}

// OfferSnapshot accepts a snapshot to restore if this node has no state
// and the snapshot is in our format with well-formed metadata; the app
// hash CometBFT passes (from the light-client-verified header) is what the
// restored state must hash to.
func (a *App) OfferSnapshot(_ context.Context, req *abci.RequestOfferSnapshot) (*abci.ResponseOfferSnapshot, error) {
	reject := func(res abci.ResponseOfferSnapshot_Result, why string, args ...any) (*abci.ResponseOfferSnapshot, error) {
		a.log.Warn("state sync: snapshot refused", append([]any{"why", why}, args...)...)
		return &abci.ResponseOfferSnapshot{Result: res}, nil
	}
	sn := req.Snapshot
	if sn == nil {
		return reject(abci.ResponseOfferSnapshot_REJECT, "no snapshot")
	}
	if sn.Format != SnapshotFormat {
		return reject(abci.ResponseOfferSnapshot_REJECT_FORMAT, "unknown format", "format", sn.Format)
	}
	m, err := decodeSnapshotMeta(sn.Metadata)
	if err != nil {
		return reject(abci.ResponseOfferSnapshot_REJECT, err.Error(), "height", sn.Height)
	}
	if int(sn.Chunks) != len(m.Chunks) || !bytes.Equal(sn.Hash, m.hash()) {
		return reject(abci.ResponseOfferSnapshot_REJECT, "chunk count or hash does not match the metadata", "height", sn.Height)
	}
	if len(req.AppHash) != sha256.Size || sn.Height == 0 || sn.Height > 1<<40 {
		return reject(abci.ResponseOfferSnapshot_REJECT, "bad app hash or height", "height", sn.Height)
	}
	if err := a.abortRestore(); err != nil {
		return nil, err
	}
	if v := a.tree.Version(); v != 0 {
		return reject(abci.ResponseOfferSnapshot_ABORT, "the ledger already holds state; state sync needs an empty one", "version", v)
	}
	imp, err := a.tree.Import(int64(sn.Height))
	if err != nil {
		return nil, fmt.Errorf("state sync: starting the import: %w", err)
	}
	a.snap.restoring = &restore{height: int64(sn.Height), appHash: bytes.Clone(req.AppHash), meta: m, imp: imp,
		dec: nodeDecoder{maxVersion: int64(sn.Height)}, started: time.Now()}
	a.log.Info("state sync: restoring snapshot", "height", sn.Height, "chunks", sn.Chunks)
	return &abci.ResponseOfferSnapshot{Result: abci.ResponseOfferSnapshot_ACCEPT}, nil
}

// ApplySnapshotChunk checks a chunk against the SHA-256 the metadata names
// (a mismatch is refused, its sender rejected and the chunk fetched again
// from another peer), imports its nodes and, after the last one, checks
// the restored state's hash against the verified app hash.
func (a *App) ApplySnapshotChunk(_ context.Context, req *abci.RequestApplySnapshotChunk) (*abci.ResponseApplySnapshotChunk, error) {
	r := a.snap.restoring
	if r == nil {
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ABORT}, nil
	}
	switch {
	case req.Index < r.next: // applied already
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ACCEPT}, nil
	case req.Index > r.next:
		a.log.Warn("state sync: chunk out of order; restarting the snapshot", "chunk", req.Index, "want", r.next)
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_RETRY_SNAPSHOT}, nil
	}
	if sha256.Sum256(req.Chunk) != r.meta.Chunks[req.Index] {
		a.log.Warn("state sync: chunk does not match its hash; fetching it from another peer", "chunk", req.Index, "sender", req.Sender)
		res := &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_RETRY, RefetchChunks: []uint32{req.Index}}
		if req.Sender != "" {
			res.RejectSenders = []string{req.Sender}
		}
		return res, nil
	}
	refuse := func(err error) (*abci.ResponseApplySnapshotChunk, error) {
		a.log.Warn("state sync: snapshot refused", "height", r.height, "err", err)
		if err := a.abortRestore(); err != nil {
			return nil, err
		}
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_REJECT_SNAPSHOT}, nil
	}
	r.dirty = true
	if err := r.dec.feed(req.Chunk, func(n *iavl.ExportNode) error { return safely(func() error { return r.imp.Add(n) }) }); err != nil {
		return refuse(fmt.Errorf("chunk %d: %w", req.Index, err))
	}
	r.next++
	if int(r.next) < len(r.meta.Chunks) {
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ACCEPT}, nil
	}
	if err := r.dec.finish(); err != nil {
		return refuse(err)
	}
	if err := safely(r.imp.Commit); err != nil {
		return refuse(fmt.Errorf("committing the restored state: %w", err))
	}
	if got := a.tree.Hash(); !bytes.Equal(got, r.appHash) {
		return refuse(fmt.Errorf("restored state hashes to %X; the verified header says %X", got, r.appHash))
	}
	a.snap.restoring = nil
	if err := a.refreshCommitted(); err != nil {
		return nil, err
	}
	a.log.Info("state sync: snapshot restored", "height", r.height, "chunks", len(r.meta.Chunks), "took", time.Since(r.started))
	return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ACCEPT}, nil
}

// abortRestore drops a restore in progress and, if it wrote anything,
// empties the state database so that the next snapshot starts clean.
func (a *App) abortRestore() error {
	r := a.snap.restoring
	if r == nil {
		return nil
	}
	a.snap.restoring = nil
	r.imp.Close()
	if !r.dirty {
		return nil
	}
	return a.wipeState()
}

// wipeState replaces the state database with an empty one (only ever
// while restoring, before the ledger has any state of its own).
func (a *App) wipeState() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.db.Close(); err != nil {
		return fmt.Errorf("closing the state database: %w", err)
	}
	if a.cfg.Dir != "" {
		if err := os.RemoveAll(filepath.Join(a.cfg.Dir, "state.db")); err != nil {
			return fmt.Errorf("emptying the state database: %w", err)
		}
	}
	db, tree, reads, err := openState(a.cfg)
	if err != nil {
		return err
	}
	a.db, a.tree, a.reads, a.committed = db, tree, reads, nil
	a.saved.height, a.saved.hash = 0, tree.Hash()
	return nil
}

// openState opens the state database of c and its working and reading trees.
func openState(c Config) (iavldb.DB, *iavl.MutableTree, *iavl.MutableTree, error) {
	var db iavldb.DB
	if c.Dir == "" {
		db = iavldb.NewMemDB()
	} else {
		ldb, err := iavldb.NewGoLevelDB("state", c.Dir)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("opening ledger state in %s: %w", c.Dir, err)
		}
		db = ldb
	}
	// Fast storage stays off: IAVL v1.3's fast path reads the node DB's latest
	// version without its lock, a data race with Commit for readers of
	// committed versions (the API, gateways); it gave no measurable speed-up.
	tree := iavl.NewMutableTree(db, c.CacheNodes, true, iavl.NewNopLogger())
	if _, err := tree.Load(); err != nil {
		db.Close()
		return nil, nil, nil, fmt.Errorf("loading ledger state: %w", err)
	}
	reads := iavl.NewMutableTree(db, c.CacheNodes, true, iavl.NewNopLogger())
	return db, tree, reads, nil
}

// safely runs f, turning a panic (IAVL's importer on a malformed but
// hash-consistent stream from a lying peer) into an error.
func safely(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed snapshot: %v", p)
		}
	}()
	return f()
}
