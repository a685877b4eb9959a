package datalog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/compact"

	"github.com/thingnet/thingnet/internal/pebblelog"
)

// Config configures Open.
type Config struct {
	// Dir is the directory of the log's Pebble database. It is created if
	// missing. Only one Log may have it open at a time.
	Dir string
	// Logger receives the log's and Pebble's messages. Nil discards them.
	Logger *slog.Logger
	// NoSync skips fsync when committing an Append. For tests and
	// benchmarks only: an acknowledged Append may then be lost in a crash.
	NoSync bool
	// CacheSize is the size of Pebble's block cache in bytes; 0 means
	// DefaultCacheSize. Proofs read O(log n) subtree hashes, so a cache
	// holding the upper levels of the tree keeps them fast.
	CacheSize int64
}

// DefaultCacheSize is the default size of Pebble's block cache.
const DefaultCacheSize = 64 << 20

// The log's write path, tuned for its keys (issue 19, part 2): every
// Append adds entries at the end of the 'e' range, leaf and subtree
// hashes at the end of each level's 'n' range and rewrites the 's' key, so
// every flushed table spans from the newest entry to the state key and
// overlaps all the tables of the base level that hold subtree hashes. With
// Pebble's defaults (4 MiB memtables, an L0 compaction at 4 sublevels)
// each of those compactions rewrote the base level's hashes for a few MiB
// of new entries: 6.0 bytes written per byte appended at ~12,000
// entries/s, a fifth of a gateway's CPU. Four times the memtable and
// three times the L0 sublevels before compacting make each rewrite carry
// 12 times as many new entries (0.95; 65 → 51 µs of CPU per one-reading
// envelope); writes stop at 32 sublevels, not at the default 12, so that
// the later compactions never stall Appends.
const (
	memTableSize          = 16 << 20
	l0CompactionThreshold = 12
	l0StopWritesThreshold = 32
)

// Log is a durable, append-only Merkle log. Its methods are safe for
// concurrent use; Appends are serialised.
type Log struct {
	db     *pebble.DB
	logger *slog.Logger
	wo     *pebble.WriteOptions
	rf     *compact.RangeFactory
	dir    string

	// appendMu serialises Append and guards rng.
	appendMu sync.Mutex
	// rng is the compact range [0, size) of the log.
	rng *compact.Range

	// mu guards the fields below. It is held for reading for the whole of
	// any database access, so that Close waits for them.
	mu     sync.RWMutex
	closed bool
	size   uint64
	root   [HashSize]byte
}

// Open opens the log in c.Dir, creating it if needed. It recovers the state
// of the last Append that Pebble has durably committed, and checks it
// against the stored tree.
func Open(c Config) (*Log, error) {
	if c.Dir == "" {
		return nil, errors.New("datalog: open: Config.Dir is empty")
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "datalog")
	cacheSize := c.CacheSize
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebblelog.New(logger, "datalog"),
		CacheSize:          cacheSize,
		FS:                 noRecycleFS{vfs.Default},

		MemTableSize:          memTableSize,
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: l0StopWritesThreshold,
	}
	db, err := pebble.Open(c.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("datalog: open pebble store in %s: %w", c.Dir, err)
	}
	l := &Log{
		db:     db,
		logger: logger,
		wo:     pebble.Sync,
		rf:     newRangeFactory(),
		dir:    c.Dir,
	}
	if c.NoSync {
		l.wo = pebble.NoSync
	}
	if err := l.recover(); err != nil {
		if cerr := db.Close(); cerr != nil {
			logger.Error("closing pebble store after failed recovery", "dir", c.Dir, "err", cerr)
		}
		return nil, fmt.Errorf("datalog: open %s: %w", c.Dir, err)
	}
	logger.Info("opened data log", "dir", c.Dir, "size", l.size, "root", hex.EncodeToString(l.root[:]))
	return l, nil
}

// recover loads the state record and checks it against the stored entries
// and perfect subtree hashes.
func (l *Log) recover() error {
	raw, err := l.get(stateKey())
	if errors.Is(err, ErrNotFound) {
		// A new log: nothing else may be stored.
		if ok, err := l.has(entryKey(0)); err != nil || ok {
			return fmt.Errorf("%w: entry 0 is stored but there is no state record (%v)", ErrCorrupt, err)
		}
		l.rng = l.rf.NewEmptyRange(0)
		l.size, l.root = 0, emptyRoot()
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	size, hashes, err := decodeState(raw)
	if err != nil {
		return err
	}
	rng, err := l.rf.NewRange(0, size, hashes)
	if err != nil {
		return fmt.Errorf("%w: state record: %v", ErrCorrupt, err)
	}
	stored, err := l.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return err
	}
	for i := range stored {
		if toHash(stored[i]) != toHash(hashes[i]) {
			return fmt.Errorf("%w: state record for size %d disagrees with stored subtree hash %d", ErrCorrupt, size, i)
		}
	}
	if size > 0 {
		if ok, err := l.stored(size - 1); err != nil || !ok {
			return fmt.Errorf("%w: last entry %d of a log of size %d is missing (%v)", ErrCorrupt, size-1, size, err)
		}
	}
	if ok, err := l.has(entryKey(size)); err != nil || ok {
		return fmt.Errorf("%w: entry %d is stored beyond the log's size %d (%v)", ErrCorrupt, size, size, err)
	}
	root, err := rootOf(rng)
	if err != nil {
		return err
	}
	l.rng, l.size, l.root = rng, size, root
	return nil
}

// Size returns the number of entries in the log.
func (l *Log) Size() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Root returns the log's size and the RFC 6962 root hash of all its entries.
// The empty log's root is SHA-256("").
func (l *Log) Root() (size uint64, root [HashSize]byte) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size, l.root
}

// Entry returns a copy of entry i. It returns an error wrapping ErrNotFound
// if i is not below the log's size, an *ErasedError (ErrErased) if the
// entry was erased, and an *ArchivedError (ErrArchived) if its bytes were
// archived.
func (l *Log) Entry(i uint64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	if i >= l.size {
		return nil, fmt.Errorf("%w: entry %d of a log of size %d", ErrNotFound, i, l.size)
	}
	e, err := l.get(entryKey(i))
	if errors.Is(err, ErrNotFound) {
		if t, terr := l.get(tombKey(i)); terr == nil {
			return nil, &ErasedError{Index: i, Tombstone: t}
		}
		if r, ok, aerr := l.archivedRange(i); aerr != nil {
			return nil, aerr
		} else if ok {
			return nil, &ArchivedError{Index: i, Range: r}
		}
		return nil, fmt.Errorf("%w: entry %d of a log of size %d is missing", ErrCorrupt, i, l.size)
	}
	return e, err
}

// stored reports whether entry i is stored, or erased with its tombstone,
// or archived.
func (l *Log) stored(i uint64) (bool, error) {
	if ok, err := l.has(entryKey(i)); err != nil || ok {
		return ok, err
	}
	if ok, err := l.has(tombKey(i)); err != nil || ok {
		return ok, err
	}
	_, ok, err := l.archivedRange(i)
	return ok, err
}

// Close closes the log, waiting for Appends and reads in progress. It is
// idempotent; methods of a closed Log return ErrClosed, except Size and Root
// which return the last state.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("datalog: close pebble store in %s: %w", l.dir, err)
	}
	l.logger.Info("closed data log", "dir", l.dir, "size", l.size)
	return nil
}

// get returns a copy of the value of key, or an error wrapping ErrNotFound.
func (l *Log) get(key []byte) ([]byte, error) {
	v, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("%w: key %x", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("datalog: read key %x: %w", key, err)
	}
	out := append([]byte(nil), v...)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("datalog: read key %x: %w", key, err)
	}
	return out, nil
}

// has reports whether key is stored.
func (l *Log) has(key []byte) (bool, error) {
	_, err := l.get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
