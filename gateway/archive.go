package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Archiving (docs/operations.md, "Archiving"): bounded disks for years of
// readings. Entries received more than ArchiveConfig.Age ago, once
// anchored, are packed SegmentEntries at a time into a segment
// (datalog.Segment), sealed to the gateway's key, published through the
// file service, and recorded on
// the ledger (log.archive, signed with the gateway's key). Once at least
// MinPins other nodes record a pin of the segment (file.pin), the gateway
// drops the entries' bytes (datalog.Log.Archive) and its own pin of the
// segment. What stays per entry: its leaf hash and subtree hashes in the
// log (about 2 x 32 bytes plus keys, so every proof is made as before),
// its readings-index keys folded into a few bytes a reading
// (archive_index.go: queries, retention and erasure still find it) and
// its roll-ups. Reading an archived entry fetches its segment,
// checks it against the ledger's record and the log's leaf hashes, keeps
// it in a small cache, and answers exactly as for a stored entry; a
// segment that cannot be fetched or does not check is an
// ArchiveUnavailableError (HTTP 503 archive_unavailable), never a skip.
//
// Values with a retention period are not archived: the segment holds
// only their leaf hash and the entry stays stored until retention drops
// it, so no copy outlives the period. Erased entries go in as their leaf
// hash; their tombstones stay.

// SegmentStore is where the gateway publishes segments and fetches them
// back: the node's file service (node/archive.go).
type SegmentStore interface {
	// Publish adds b as a file, pinned here and recorded on the ledger,
	// and returns its CID.
	Publish(ctx context.Context, b []byte) (cid string, err error)
	// Fetch returns the bytes of file cid, of at most max bytes.
	Fetch(ctx context.Context, cid string, max uint64) ([]byte, error)
	// Pin fetches and pins cid here (another gateway's segment) and
	// records the pin on the ledger; Unpin drops this node's pin (nothing,
	// and no error, if it has none).
	Pin(ctx context.Context, cid string) error
	Unpin(ctx context.Context, cid string) error
}

// ArchiveConfig configures archiving (node config [gateway.archive]).
type ArchiveConfig struct {
	// Archive turns the gateway's own archiving on; Pin, pinning the
	// segments other gateways archive. A node may do either or both.
	Archive, Pin bool
	// Age is how long after its receipt an entry may be archived (0:
	// once anchored).
	Age time.Duration
	// SegmentEntries is the entries of a segment; default 4096.
	SegmentEntries int
	// MinPins is how many other nodes must record a pin of a segment
	// before the gateway drops its entries; default 2.
	MinPins int
	// Interval is how often the gateway looks for work; default 10s.
	Interval time.Duration
	// CacheSegments is how many fetched segments reads keep; default 4.
	CacheSegments int
	// FetchTimeout bounds fetching one segment; default 30s.
	FetchTimeout time.Duration
}

// Defaults of ArchiveConfig.
const (
	DefaultSegmentEntries = 4096
	DefaultMinPins        = 2
)

func (c *ArchiveConfig) defaults() {
	if c.SegmentEntries <= 0 {
		c.SegmentEntries = DefaultSegmentEntries
	}
	c.SegmentEntries = min(c.SegmentEntries, datalog.MaxSegmentEntries)
	if c.MinPins < 0 {
		c.MinPins = 0
	} else if c.MinPins == 0 {
		c.MinPins = DefaultMinPins
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.CacheSegments <= 0 {
		c.CacheSegments = 4
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = 30 * time.Second
	}
}

// NoPins is the MinPins that drops entries without waiting for any
// other node's pin (tests, single-node networks): ArchiveConfig.MinPins 0
// means the default.
const NoPins = -1

// ErrArchiveUnavailable reports an archived entry whose segment could not
// be fetched or did not check.
var ErrArchiveUnavailable = errors.New("archive segment unavailable")

// ArchiveUnavailableError is the error of reading an archived entry whose
// segment is lost (no node serves it) or altered (its digest or leaf
// hashes do not check).
type ArchiveUnavailableError struct {
	Index        uint64
	First, Count uint64 // the segment's range
	CID          string
	Err          error
}

func (e *ArchiveUnavailableError) Error() string {
	return fmt.Sprintf("log entry %d is archived in the segment of entries %d..%d (cid %s), which is unavailable: %v",
		e.Index, e.First, e.First+e.Count-1, e.CID, e.Err)
}

// Unwrap makes the error ErrArchiveUnavailable, and an API error 503
// archive_unavailable.
func (e *ArchiveUnavailableError) Unwrap() []error {
	return []error{ErrArchiveUnavailable, api.NewError(http.StatusServiceUnavailable, "archive_unavailable", e.Error()), e.Err}
}

// archiver is the gateway's archiving state.
type archiver struct {
	cfg   ArchiveConfig
	store SegmentStore

	mu    sync.Mutex
	cache []*datalog.Segment // most recently used last
	// pinned are the other gateways' segments pinned here.
	pinned map[string]bool
	// unpinned are segments replaced by a re-cut (recut.go) whose pins
	// here were dropped, or this gateway's re-cut segments that enough
	// others pin. Archive loop only.
	unpinned map[string]bool
	// cutEnd is the end of the last range cut, raised under storeMu before
	// a cut reads its entries (recut.go).
	cutEnd atomic.Uint64
	recut  atomic.Uint64 // segments re-cut since start
	// stop ends the archive loop (StopArchive), which closes exited.
	stop     chan struct{}
	stopOnce sync.Once
	exited   chan struct{}
}

// StartArchive starts archiving with store (the node calls it once its
// file service runs). It does nothing if neither Archive nor Pin is set.
func (g *Gateway) StartArchive(c ArchiveConfig, store SegmentStore) error {
	if !c.Archive && !c.Pin {
		return nil
	}
	if store == nil {
		return errors.New("gateway: archiving needs a segment store (the file service: mesh.listen)")
	}
	c.defaults()
	select {
	case <-g.done:
		return ErrClosed
	default:
	}
	a := &archiver{cfg: c, store: store, pinned: map[string]bool{}, unpinned: map[string]bool{}, stop: make(chan struct{}), exited: make(chan struct{})}
	local, err := g.data.LastArchived()
	if err != nil {
		return err
	}
	a.cutEnd.Store(local.End())
	if st, err := g.ledger.View(); err == nil {
		if last, err := st.LastLogArchive(g.id); err == nil {
			a.cutEnd.Store(max(local.End(), last.End()))
		}
	}
	g.arch.Store(a)
	g.wg.Add(1)
	go g.archiveLoop(a)
	return nil
}

// StopArchive stops archiving and pinning and returns once the archive
// loop has ended: the node calls it before it closes the file service
// that archiving uses. Idempotent; Close stops archiving too.
func (g *Gateway) StopArchive() {
	a := g.arch.Load()
	if a == nil || a.stop == nil {
		return
	}
	a.stopOnce.Do(func() { close(a.stop) })
	<-a.exited
}

func (g *Gateway) archiveLoop(a *archiver) {
	defer g.wg.Done()
	defer close(a.exited)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-g.done:
			cancel()
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	var lastErr string
	for {
		var err error
		if a.cfg.Archive {
			err = g.archiveRound(ctx, a)
		}
		if a.cfg.Pin {
			err = errors.Join(err, g.pinRound(ctx, a))
		}
		switch {
		case err == nil:
			lastErr = ""
		case errors.Is(err, ledger.ErrNoState), ctx.Err() != nil:
		case err.Error() != lastErr:
			g.log.Warn("gateway archiving", "err", err)
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// archiveRound does the next step of archiving: drop the entries of the
// last recorded segment once it is pinned enough, or else cut, publish and
// record the next segment if its entries are old enough.
func (g *Gateway) archiveRound(ctx context.Context, a *archiver) error {
	st, err := g.ledger.View()
	if err != nil {
		return err
	}
	if did, err := g.recutRound(ctx, a, st); did || err != nil {
		return err
	}
	if err := g.dropRecutPins(ctx, a, st); err != nil {
		return err
	}
	local, err := g.data.LastArchived()
	if err != nil {
		return err
	}
	if did, err := g.foldBehind(ctx, a, st, local.End()); did || err != nil {
		return err
	}
	if rec, err := st.LogArchiveCovering(g.id, local.End()); err == nil {
		return g.dropArchived(ctx, a, st, rec)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	anchor, err := st.Anchor(g.id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	r := datalog.ArchivedRange{First: local.End(), Count: uint64(a.cfg.SegmentEntries)}
	if anchor.Size < r.End() {
		return nil // not a full segment anchored yet
	}
	last, err := g.receivedAt(r.End() - 1)
	if err != nil {
		return err
	}
	if g.clock.Now().Sub(last) < a.cfg.Age {
		return nil
	}
	// Entries erased from now on are marked for a re-cut; those erased
	// before are read as erased by the cut.
	g.storeMu.Lock()
	if r.End() > a.cutEnd.Load() {
		a.cutEnd.Store(r.End())
	}
	g.storeMu.Unlock()
	retained := map[string]bool{} // org -> has a retention period
	seg, err := g.data.CutSegment(g.id, r, func(_ uint64, raw []byte) bool {
		e, err := reading.DecodeEntry(raw)
		if err != nil {
			return false // kept here; verify store reports it
		}
		d, err := st.Device(e.Envelope.Device)
		if err != nil {
			return true
		}
		keep, ok := retained[d.Org]
		if !ok {
			if p, err := st.Policy(d.Org); err == nil {
				keep = p.Retention > 0
			}
			retained[d.Org] = keep
		}
		return !keep
	})
	if err != nil {
		return err
	}
	plain, err := seg.Encode()
	if err != nil {
		return err
	}
	cid, size, err := g.publishSegment(ctx, a, r, plain, false)
	if err != nil {
		return err
	}
	a.remember(seg)
	g.log.Info("log segment archived", "first", r.First, "count", r.Count, "cid", cid, "bytes", size)
	return nil
}

// publishSegment seals plain (the segment of r), publishes it and records
// it on the ledger (a re-cut of r if recut), returning once the record is
// committed, with the segment's CID and size. A segment not recorded is
// unpinned here: nobody will pin or read it.
func (g *Gateway) publishSegment(ctx context.Context, a *archiver, r datalog.ArchivedRange, plain []byte, recut bool) (string, int, error) {
	what := "segment"
	if recut {
		what = "re-cut segment"
	}
	b, err := sealSegment(g.cfg.Key, g.id, r, plain)
	if err != nil {
		return "", 0, err
	}
	cid, err := a.store.Publish(ctx, b)
	if err != nil {
		return "", 0, fmt.Errorf("publishing the %s of entries %d..%d: %w", what, r.First, r.End()-1, err)
	}
	sum := sha256.Sum256(b)
	done := make(chan error, 1)
	if err := g.Enqueue(&record.LogArchiveMsg{First: r.First, Count: r.Count, CID: cid, Digest: sum[:], Size: uint64(len(b)), Recut: recut}, func(err error) { done <- err }); err != nil {
		return "", 0, err
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		return "", 0, ctx.Err()
	}
	if err != nil {
		if uerr := a.store.Unpin(ctx, cid); uerr != nil {
			g.log.Warn("unpinning an unrecorded segment", "cid", cid, "err", uerr)
		}
		return "", 0, fmt.Errorf("recording the %s of entries %d..%d: %w", what, r.First, r.End()-1, err)
	}
	return cid, len(b), nil
}

// dropArchived drops the bytes of rec's entries once at least MinPins
// other nodes pin its segment, then this node's own pin of it.
func (g *Gateway) dropArchived(ctx context.Context, a *archiver, st *ledger.State, rec *record.LogArchive) error {
	others, err := pinnersBesides(st, rec.CID, g.id)
	if err != nil {
		return err
	}
	if others < a.cfg.MinPins {
		return nil
	}
	seg, err := g.segment(ctx, a, rec, rec.First)
	if err != nil {
		return err
	}
	g.storeMu.Lock() // as erasure: one writer of the log's entries at a time
	n, err := g.data.Archive(seg.Range(), func(i uint64) bool {
		_, ok := seg.Entry(i)
		return ok
	})
	if err == nil {
		err = g.foldArchived(seg)
	}
	g.storeMu.Unlock()
	if err != nil {
		return err
	}
	g.stats.archived.Add(uint64(n))
	g.log.Info("archived log entries dropped", "first", rec.First, "count", rec.Count, "dropped", n, "cid", rec.CID, "pinners", others)
	if a.cfg.MinPins > 0 {
		if err := a.store.Unpin(ctx, rec.CID); err != nil {
			g.log.Warn("unpinning an archived segment", "cid", rec.CID, "err", err)
		}
	}
	return nil
}

// pinnersBesides counts the nodes other than owner that the ledger says
// pin cid.
func pinnersBesides(st *ledger.State, cid, owner string) (int, error) {
	pins, err := st.FilePins(cid)
	n := 0
	for _, p := range pins {
		if p.Pinner != owner {
			n++
		}
	}
	return n, err
}

// receivedAt is when entry i was received (its newest reading's time for
// an entry of a layout without a receive time).
func (g *Gateway) receivedAt(i uint64) (time.Time, error) {
	raw, err := g.data.Entry(i)
	var ee *datalog.ErasedError
	if errors.As(err, &ee) {
		t, err := DecodeTombstone(ee.Tombstone)
		if err != nil {
			return time.Time{}, err
		}
		return time.UnixMilli(max(t.ReceivedAt, t.Last)), nil
	}
	if err != nil {
		return time.Time{}, err
	}
	e, err := reading.DecodeEntry(raw)
	if err != nil {
		return time.Time{}, fmt.Errorf("log entry %d: %w", i, err)
	}
	if e.ReceivedAt != 0 {
		return time.UnixMilli(e.ReceivedAt), nil
	}
	return e.Envelope.Readings[len(e.Envelope.Readings)-1].Time, nil
}

// pinRound pins the segments other gateways recorded that fewer than
// MinPins nodes (besides their gateway) pin yet.
func (g *Gateway) pinRound(ctx context.Context, a *archiver) error {
	st, err := g.ledger.View()
	if err != nil {
		return err
	}
	var todo []string
	var errs []error
	var drop []string
	err = st.LogArchives("", func(r *record.LogArchive) bool {
		if r.Gateway == g.id {
			return true
		}
		for _, c := range r.Replaced {
			if !a.unpinned[c] {
				drop = append(drop, c)
			}
		}
		if a.pinned[r.CID] {
			return true
		}
		// Enough copies already (MinPins of nodes other than the
		// owner): no more, so that pinners' disks stay bounded too.
		others, err := pinnersBesides(st, r.CID, r.Gateway)
		if err != nil {
			errs = append(errs, err)
			return false
		}
		if others < max(a.cfg.MinPins, 1) {
			todo = append(todo, r.CID)
		}
		return true
	})
	if err != nil || len(errs) > 0 {
		return errors.Join(append(errs, err)...)
	}
	// Replaced by a re-cut: the old copy may hold erased values.
	for _, c := range drop {
		if err := a.store.Unpin(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("unpinning replaced segment %s: %w", c, err))
			continue
		}
		a.unpinned[c] = true
		delete(a.pinned, c)
	}
	for _, c := range todo {
		if err := a.store.Pin(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("pinning segment %s: %w", c, err))
			continue
		}
		a.pinned[c] = true
	}
	return errors.Join(errs...)
}

// entry is log entry i's bytes, stored or archived (fetched from its
// segment); errors as datalog.Log.Entry, and an *ArchiveUnavailableError
// for an archived entry whose segment cannot be had.
func (g *Gateway) entry(i uint64) ([]byte, error) {
	raw, err := g.data.Entry(i)
	var ae *datalog.ArchivedError
	if !errors.As(err, &ae) {
		return raw, err
	}
	a := g.arch.Load()
	st, err := g.ledger.View()
	if err != nil {
		return nil, err
	}
	rec, err := st.LogArchiveCovering(g.id, i)
	if err != nil {
		return nil, &ArchiveUnavailableError{Index: i, First: ae.Range.First, Count: ae.Range.Count,
			Err: fmt.Errorf("the ledger records no segment of it: %w", err)}
	}
	if a == nil {
		return nil, &ArchiveUnavailableError{Index: i, First: rec.First, Count: rec.Count, CID: rec.CID,
			Err: errors.New("this node has no file service to fetch it with (archiving needs mesh.listen)")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.FetchTimeout)
	defer cancel()
	seg, err := g.segment(ctx, a, rec, i)
	if err != nil {
		return nil, err
	}
	e, ok := seg.Entry(i)
	if !ok {
		return nil, fmt.Errorf("%w: entry %d is neither stored nor erased here and its segment %s holds only its hash", datalog.ErrCorrupt, i, rec.CID)
	}
	return e, nil
}

// segment returns rec's segment, from the cache or fetched and checked:
// its SHA-256 against the ledger's record, its range and every leaf hash
// against the log. Failures are *ArchiveUnavailableError for entry i.
func (g *Gateway) segment(ctx context.Context, a *archiver, rec *record.LogArchive, i uint64) (*datalog.Segment, error) {
	if s := a.cached(datalog.ArchivedRange{First: rec.First, Count: rec.Count}); s != nil {
		return s, nil
	}
	fail := func(err error) error {
		g.stats.archiveUnavailable.Add(1)
		return &ArchiveUnavailableError{Index: i, First: rec.First, Count: rec.Count, CID: rec.CID, Err: err}
	}
	s, err := fetchSegment(ctx, a.store.Fetch, rec, g.data.LeafHash, g.cfg.Key)
	if err != nil {
		return nil, fail(err)
	}
	a.remember(s)
	return s, nil
}

// SegmentFetch fetches file cid of at most max bytes (SegmentStore.Fetch).
type SegmentFetch func(ctx context.Context, cid string, max uint64) ([]byte, error)

// ErrSealed reports a segment whose digest was checked but that could not
// be opened: the gateway's key was not given (an audit without it).
var ErrSealed = errors.New("sealed to the gateway's key, which was not given")

// fetchSegment fetches rec's segment and checks it: its SHA-256 against
// the ledger's record, then (opened with key, the gateway's) its gateway
// and range against the record, each leaf hash against leaf (the log's).
// The one check of a segment, for reads and for the audit (CheckLog). A
// nil key checks the digest only and answers ErrSealed.
func fetchSegment(ctx context.Context, fetch SegmentFetch, rec *record.LogArchive, leaf func(uint64) ([datalog.HashSize]byte, error), key *identity.Key) (*datalog.Segment, error) {
	b, err := fetch(ctx, rec.CID, rec.Size)
	if err != nil {
		return nil, fmt.Errorf("no node served it: %w", err)
	}
	if sum := sha256.Sum256(b); !bytes.Equal(sum[:], rec.Digest) {
		return nil, fmt.Errorf("its SHA-256 is %x, the ledger records %x: it was altered", sum[:8], rec.Digest[:min(8, len(rec.Digest))])
	}
	if key == nil {
		return nil, ErrSealed
	}
	plain, err := openSegment(key, rec, b)
	if err != nil {
		return nil, err
	}
	s, err := datalog.DecodeSegment(plain)
	if err != nil {
		return nil, err
	}
	if err := s.Check(rec.Gateway, datalog.ArchivedRange{First: rec.First, Count: rec.Count}, leaf); err != nil {
		return nil, err
	}
	return s, nil
}

// Segments are sealed (HPKE, identity.Seal) to the gateway's own ledger
// key before they are published: the file service serves a file to
// anyone who asks for its CID, and a segment holds reading values, which
// only their readers may see — through the gateway, under the read rule.
// The info binds the gateway and the range.
func segmentInfo(gateway string, first, count uint64) []byte {
	return fmt.Appendf(nil, "thingnet/log-segment/v1\x00%s\x00%d\x00%d", gateway, first, count)
}

func sealSegment(k *identity.Key, gateway string, r datalog.ArchivedRange, plain []byte) ([]byte, error) {
	suite, pub, err := k.Public().EncryptionKey()
	if err != nil {
		return nil, fmt.Errorf("sealing a segment to the gateway's key: %w", err)
	}
	return identity.Seal(suite, pub, segmentInfo(gateway, r.First, r.Count), plain)
}

func openSegment(k *identity.Key, rec *record.LogArchive, sealed []byte) ([]byte, error) {
	suite, _, err := k.Public().EncryptionKey()
	if err != nil {
		return nil, err
	}
	plain, err := k.Open(suite, segmentInfo(rec.Gateway, rec.First, rec.Count), sealed)
	if err != nil {
		return nil, fmt.Errorf("it does not open with the gateway's key: %w", err)
	}
	return plain, nil
}

func (a *archiver) cached(r datalog.ArchivedRange) *datalog.Segment {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.cache {
		if s.Range() == r {
			a.cache = append(append(a.cache[:k:k], a.cache[k+1:]...), s)
			return s
		}
	}
	return nil
}

func (a *archiver) remember(s *datalog.Segment) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.cfg.CacheSegments {
		a.cache = append(a.cache[:0], a.cache[1:]...)
	}
	a.cache = append(a.cache, s)
}

// ArchiveStatus is what archiving did so far (GET /v1/archive).
type ArchiveStatus struct {
	Gateway string `json:"gateway"`
	// Archiving and Pinning say what this node does (ArchiveConfig).
	Archiving bool `json:"archiving"`
	Pinning   bool `json:"pinning"`
	// Archived is the end of the entries dropped here (their segments
	// hold them); Recorded the end of those the ledger records.
	Archived uint64 `json:"archived"`
	Recorded uint64 `json:"recorded"`
	Dropped  uint64 `json:"dropped"`     // entries' bytes dropped since start
	Missing  uint64 `json:"unavailable"` // reads that found a segment unavailable since start
	// Recut counts segments cut again since start, without the values of
	// entries erased after they were archived; PendingRecut is how many
	// erased entries wait to be checked against their segment (recut.go).
	Recut        uint64 `json:"recut"`
	PendingRecut int    `json:"pending_recut"`
}

// ArchiveStatus reports the archiving state.
func (g *Gateway) ArchiveStatus() (*ArchiveStatus, error) {
	local, err := g.data.LastArchived()
	if err != nil {
		return nil, err
	}
	out := &ArchiveStatus{Gateway: g.id, Archived: local.End(), Dropped: g.stats.archived.Load(), Missing: g.stats.archiveUnavailable.Load()}
	if a := g.arch.Load(); a != nil {
		out.Archiving, out.Pinning, out.Recut = a.cfg.Archive, a.cfg.Pin, a.recut.Load()
	}
	pending, err := g.index.pendingRecut()
	if err != nil {
		return nil, err
	}
	out.PendingRecut = int(pending)
	st, err := g.ledger.View()
	if err != nil {
		return nil, err
	}
	if last, err := st.LastLogArchive(g.id); err == nil {
		out.Recorded = last.End()
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	return out, nil
}

// archiveStatus answers GET /v1/archive (public: counts, no values).
func (g *Gateway) archiveStatus(*http.Request) (any, error) { return g.ArchiveStatus() }
