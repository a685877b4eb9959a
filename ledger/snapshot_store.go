package ledger

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	abci "github.com/cometbft/cometbft/abci/types"
)

// snapshotStore keeps the snapshots this node serves: on disk under dir
// (dir/<height>/meta and dir/<height>/<chunk index>), or in memory when
// dir is "". A snapshot appears only once it is complete.
type snapshotStore struct {
	dir  string
	keep int

	mu     sync.Mutex
	snaps  []*abci.Snapshot          // by height, ascending
	chunks map[uint64]map[int][]byte // in memory only
}

func openSnapshotStore(dir string, keep int) (*snapshotStore, error) {
	s := &snapshotStore{dir: dir, keep: keep, chunks: map[uint64]map[int][]byte{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the snapshot directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the snapshot directory: %w", err)
	}
	for _, e := range ents {
		h, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			_ = os.RemoveAll(filepath.Join(dir, e.Name())) // an unfinished snapshot
			continue
		}
		meta, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta"))
		if err != nil {
			return nil, fmt.Errorf("snapshot at height %d: %w", h, err)
		}
		m, err := decodeSnapshotMeta(meta)
		if err != nil {
			return nil, fmt.Errorf("snapshot at height %d in %s: %w (delete that directory)", h, dir, err)
		}
		s.snaps = append(s.snaps, &abci.Snapshot{Height: h, Format: SnapshotFormat, Chunks: uint32(len(m.Chunks)), Hash: m.hash(), Metadata: meta})
	}
	slices.SortFunc(s.snaps, func(a, b *abci.Snapshot) int { return cmp.Compare(a.Height, b.Height) })
	return s, nil
}

// writer returns where to put the chunks of a new snapshot at height, and
// the function that completes it.
func (s *snapshotStore) writer(height uint64) (put func(int, []byte) error, done func(snapshotMeta) error, abort func(), err error) {
	if s.dir == "" {
		mem := map[int][]byte{}
		put = func(i int, b []byte) error { mem[i] = b; return nil }
		done = func(m snapshotMeta) error {
			s.mu.Lock()
			s.chunks[height] = mem
			s.mu.Unlock()
			return s.add(height, m)
		}
		return put, done, func() {}, nil
	}
	tmp := filepath.Join(s.dir, fmt.Sprintf("%d.tmp", height))
	if err := os.RemoveAll(tmp); err != nil {
		return nil, nil, nil, err
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, nil, nil, err
	}
	put = func(i int, b []byte) error { return os.WriteFile(filepath.Join(tmp, strconv.Itoa(i)), b, 0o600) }
	done = func(m snapshotMeta) error {
		if err := os.WriteFile(filepath.Join(tmp, "meta"), m.encode(), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(s.dir, strconv.FormatUint(height, 10))); err != nil {
			return err
		}
		return s.add(height, m)
	}
	return put, done, func() { _ = os.RemoveAll(tmp) }, nil
}

// add lists a completed snapshot and forgets the oldest beyond keep.
func (s *snapshotStore) add(height uint64, m snapshotMeta) error {
	s.mu.Lock()
	s.snaps = append(s.snaps, &abci.Snapshot{Height: height, Format: SnapshotFormat, Chunks: uint32(len(m.Chunks)), Hash: m.hash(), Metadata: m.encode()})
	var drop []uint64
	for len(s.snaps) > s.keep {
		drop = append(drop, s.snaps[0].Height)
		delete(s.chunks, s.snaps[0].Height)
		s.snaps = s.snaps[1:]
	}
	s.mu.Unlock()
	var errs []error
	for _, h := range drop {
		if s.dir != "" {
			errs = append(errs, os.RemoveAll(filepath.Join(s.dir, strconv.FormatUint(h, 10))))
		}
	}
	return errors.Join(errs...)
}

// list returns the snapshots kept, newest first.
func (s *snapshotStore) list() []*abci.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.snaps)
	slices.Reverse(out)
	return out
}

// oldest returns the height of the oldest snapshot kept (0: none).
func (s *snapshotStore) oldest() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.snaps) == 0 {
		return 0
	}
	return int64(s.snaps[0].Height)
}

// chunk returns a chunk of a kept snapshot, or nil.
func (s *snapshotStore) chunk(height uint64, format uint32, index uint32) ([]byte, error) {
	if format != SnapshotFormat {
		return nil, nil
	}
	s.mu.Lock()
	kept := slices.ContainsFunc(s.snaps, func(x *abci.Snapshot) bool { return x.Height == height && index < x.Chunks })
	mem := s.chunks[height]
	s.mu.Unlock()
	if !kept {
		return nil, nil
	}
	if s.dir == "" {
		return mem[int(index)], nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, strconv.FormatUint(height, 10), strconv.FormatUint(uint64(index), 10)))
	if errors.Is(err, fs.ErrNotExist) { // pruned meanwhile
		return nil, nil
	}
	return b, err
}
