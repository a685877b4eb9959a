package files

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	blockstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// pinPrefix is where pinned roots are kept in the datastore (the blocks
// live under boxo's /blocks namespace).
var pinPrefix = ds.NewKey("/thingnet/pins")

// Store is a blockstore that keeps every block reachable from a pinned root
// and, beside them, at most Limit bytes of other blocks, evicting the least
// recently used. Every block put is checked against its CID first, but
// for those bitswap delivered (received), whose CIDs it derived from their
// bytes as they arrived.
type Store struct {
	base  blockstore.Blockstore
	ds    ds.Batching
	limit int64

	mu     sync.Mutex
	lru    *list.List               // of *cached, most recent at the front
	cached map[string]*list.Element // unpinned blocks, by multihash
	used   int64                    // bytes of unpinned blocks
	pinned map[string]int           // multihash -> number of pinned roots that reach it
	roots  map[string][]string      // pinned root CID -> multihashes of its DAG
	sizes  map[string]int           // sizes of pinned blocks
	holds  int                      // pinned downloads in progress: no eviction meanwhile
	// putting holds the blocks being written, by multihash: closed when done
	putting map[string]chan struct{}
	recent  recentBlocks // the last blocks written, served without Pebble
}

type cachedBlock struct {
	key  string
	c    cid.Cid
	size int
}

// StoreStats describes what a store holds.
type StoreStats struct {
	PinnedRoots  int   `json:"pinned_roots"`
	PinnedBlocks int   `json:"pinned_blocks"`
	PinnedBytes  int64 `json:"pinned_bytes"`
	CacheBlocks  int   `json:"cache_blocks"`
	CacheBytes   int64 `json:"cache_bytes"`
	CacheLimit   int64 `json:"cache_limit"`
}

// ErrNotPinned is returned by Unpin for a root that is not pinned.
var ErrNotPinned = errors.New("files: not pinned")

// NewStore opens a bounded store over d. It re-reads the pinned roots and
// the blocks on disk; blocks not reachable from a pin count against limit
// (in no particular recency order after a restart).
func NewStore(ctx context.Context, d ds.Batching, limit int64) (*Store, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("files: cache limit %d must be positive", limit)
	}
	s := &Store{
		// WriteThrough: PutMany puts only blocks the index says it lacks
		// (Pebble's Has would read each value).
		base: blockstore.NewBlockstore(d, blockstore.WriteThrough(true)), ds: d, limit: limit,
		lru: list.New(), cached: map[string]*list.Element{},
		pinned: map[string]int{}, roots: map[string][]string{}, sizes: map[string]int{},
		putting: map[string]chan struct{}{},
		recent:  recentBlocks{limit: recentBytes, list: list.New(), byKey: map[string]*list.Element{}},
	}
	res, err := d.Query(ctx, query.Query{Prefix: pinPrefix.String(), KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("files: reading pins: %w", err)
	}
	var roots []cid.Cid
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return nil, fmt.Errorf("files: reading pins: %w", r.Error)
		}
		c, err := cid.Decode(ds.RawKey(r.Key).BaseNamespace())
		if err != nil {
			continue // not ours
		}
		roots = append(roots, c)
	}
	res.Close()
	for _, c := range roots {
		keys, err := s.walkLocal(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("files: pinned %s is incomplete on disk (%v); fetch it again with pin", c, err)
		}
		s.addPin(c, keys)
	}
	all, err := s.base.AllKeysChan(ctx)
	if err != nil {
		return nil, err
	}
	for c := range all {
		k := string(c.Hash())
		if s.pinned[k] > 0 {
			continue
		}
		n, err := s.base.GetSize(ctx, c)
		if err != nil {
			continue
		}
		s.cached[k] = s.lru.PushBack(&cachedBlock{key: k, c: c, size: n})
		s.used += int64(n)
	}
	s.evict(ctx)
	return s, nil
}

// walkLocal returns the multihashes of every block of the DAG under root,
// reading only local blocks, with their sizes recorded in s.sizes.
func (s *Store) walkLocal(ctx context.Context, root cid.Cid) ([]string, error) {
	var keys []string
	seen := map[string]bool{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := string(c.Hash())
		if seen[k] {
			continue
		}
		seen[k] = true
		b, err := s.base.Get(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", c, err)
		}
		keys = append(keys, k)
		s.mu.Lock()
		s.sizes[k] = len(b.RawData())
		s.mu.Unlock()
		links, err := blockLinks(b)
		if err != nil {
			return nil, err
		}
		stack = append(stack, links...)
	}
	return keys, nil
}

// blockLinks decodes a block's links (dag-pb); raw blocks have none.
func blockLinks(b blocks.Block) ([]cid.Cid, error) {
	switch b.Cid().Type() {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		n, err := merkledag.DecodeProtobufBlock(b)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", b.Cid(), err)
		}
		out := make([]cid.Cid, 0, len(n.Links()))
		for _, l := range n.Links() {
			out = append(out, l.Cid)
		}
		return out, nil
	}
	return nil, fmt.Errorf("block %s: codec %#x is not dag-pb or raw", b.Cid(), b.Cid().Type())
}

// addPin marks keys as reachable from root (under s.mu or single-threaded).
func (s *Store) addPin(root cid.Cid, keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addPinLocked(root, keys)
}

func (s *Store) addPinLocked(root cid.Cid, keys []string) {
	rk := root.String()
	if old, ok := s.roots[rk]; ok {
		s.dropKeysLocked(old)
	}
	s.roots[rk] = keys
	for _, k := range keys {
		s.pinned[k]++
		if e, ok := s.cached[k]; ok {
			s.used -= int64(e.Value.(*cachedBlock).size)
			s.lru.Remove(e)
			delete(s.cached, k)
		}
	}
}

// dropKeysLocked lowers the pin counts of keys; blocks no root reaches any
// more become cached (most recently used).
func (s *Store) dropKeysLocked(keys []string) {
	for _, k := range keys {
		s.pinned[k]--
		if s.pinned[k] > 0 {
			continue
		}
		delete(s.pinned, k)
		size := s.sizes[k]
		delete(s.sizes, k)
		if _, ok := s.cached[k]; !ok {
			c := cid.NewCidV1(cid.Raw, []byte(k))
			s.cached[k] = s.lru.PushFront(&cachedBlock{key: k, c: c, size: size})
			s.used += int64(size)
		}
	}
}

// Pin keeps the DAG under root (all of it must be local) until Unpin.
func (s *Store) Pin(ctx context.Context, root cid.Cid) error {
	keys, err := s.walkLocal(ctx, root)
	if err != nil {
		return fmt.Errorf("files: pin %s: %w (fetch it first)", root, err)
	}
	if err := s.ds.Put(ctx, pinPrefix.ChildString(root.String()), []byte{1}); err != nil {
		return fmt.Errorf("files: pin %s: %w", root, err)
	}
	if err := s.ds.Sync(ctx, pinPrefix); err != nil { // the pin and the blocks it keeps
		return fmt.Errorf("files: pin %s: %w", root, err)
	}
	s.addPin(root, keys)
	return nil
}

// Unpin lets the blocks of root's DAG be evicted (those no other pin reaches).
func (s *Store) Unpin(ctx context.Context, root cid.Cid) error {
	s.mu.Lock()
	keys, ok := s.roots[root.String()]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotPinned, root)
	}
	if err := s.ds.Delete(ctx, pinPrefix.ChildString(root.String())); err != nil {
		return fmt.Errorf("files: unpin %s: %w", root, err)
	}
	if err := s.ds.Sync(ctx, pinPrefix); err != nil {
		return fmt.Errorf("files: unpin %s: %w", root, err)
	}
	s.mu.Lock()
	delete(s.roots, root.String())
	s.dropKeysLocked(keys)
	s.mu.Unlock()
	s.evict(ctx)
	return nil
}

// Pins lists the pinned roots.
func (s *Store) Pins() []cid.Cid {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cid.Cid, 0, len(s.roots))
	for r := range s.roots {
		if c, err := cid.Decode(r); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// IsPinned reports whether root is pinned.
func (s *Store) IsPinned(root cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.roots[root.String()]
	return ok
}

// Stats returns counts and sizes.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StoreStats{PinnedRoots: len(s.roots), PinnedBlocks: len(s.pinned), CacheBlocks: len(s.cached), CacheBytes: s.used, CacheLimit: s.limit}
	for _, n := range s.sizes {
		st.PinnedBytes += int64(n)
	}
	return st
}

// evict deletes least recently used unpinned blocks until the cache is
// within its limit.
func (s *Store) evict(ctx context.Context) {
	for {
		s.mu.Lock()
		if s.used <= s.limit || s.lru.Len() == 0 || s.holds > 0 {
			s.mu.Unlock()
			return
		}
		e := s.lru.Back()
		b := e.Value.(*cachedBlock)
		s.lru.Remove(e)
		delete(s.cached, b.key)
		s.used -= int64(b.size)
		s.recent.remove(b.key)
		s.mu.Unlock()
		_ = s.base.DeleteBlock(ctx, b.c) // a block that cannot be deleted is only counted out
	}
}

// hold stops eviction until the returned release is called: a download
// that will be pinned keeps its blocks even past the cache limit.
func (s *Store) hold() (release func(context.Context)) {
	s.mu.Lock()
	s.holds++
	s.mu.Unlock()
	var once sync.Once
	return func(ctx context.Context) {
		once.Do(func() {
			s.mu.Lock()
			s.holds--
			s.mu.Unlock()
			s.evict(ctx)
		})
	}
}

// touch marks a cached block as recently used.
func (s *Store) touch(c cid.Cid) {
	s.mu.Lock()
	if e, ok := s.cached[string(c.Hash())]; ok {
		s.lru.MoveToFront(e)
	}
	s.mu.Unlock()
}

// verify checks a block's bytes against its CID.
func verify(b blocks.Block) error {
	c, err := b.Cid().Prefix().Sum(b.RawData())
	if err != nil {
		return fmt.Errorf("files: block %s: %w", b.Cid(), err)
	}
	if !c.Equals(b.Cid()) {
		return fmt.Errorf("files: block %s: content hashes to %s; refused", b.Cid(), c)
	}
	return nil
}

// blockstore.Blockstore

func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	return s.PutMany(ctx, []blocks.Block{b})
}

// PutMany writes the blocks the store does not hold yet, each checked
// against its CID first (but received ones). A Get puts each block twice,
// from its reader and from its whole-file fetch, usually at the same
// moment (bitswap hands the block to both): the second put waits for the
// first and only touches the block, so it is written once and is in the
// store when either put returns.
func (s *Store) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if _, ok := b.(received); ok || s.has(b.Cid()) {
			continue // received: hashed where it entered from the network
		}
		if err := verify(b); err != nil {
			return err
		}
	}
	var fresh, waited []blocks.Block
	var waits []chan struct{}
	s.mu.Lock()
	for _, b := range bs {
		k := string(b.Cid().Hash())
		if s.pinned[k] > 0 {
			continue
		}
		if e, ok := s.cached[k]; ok {
			s.lru.MoveToFront(e)
			continue
		}
		if ch, ok := s.putting[k]; ok {
			waits, waited = append(waits, ch), append(waited, b)
			continue
		}
		s.putting[k] = make(chan struct{})
		fresh = append(fresh, b)
	}
	s.mu.Unlock()
	if len(fresh) > 0 {
		err := s.base.PutMany(ctx, fresh)
		s.mu.Lock()
		for _, b := range fresh {
			k := string(b.Cid().Hash())
			close(s.putting[k])
			delete(s.putting, k)
			if err != nil {
				continue
			}
			s.recent.add(k, b)
			if s.pinned[k] > 0 || s.cached[k] != nil {
				continue
			}
			n := len(b.RawData())
			s.cached[k] = s.lru.PushFront(&cachedBlock{key: k, c: b.Cid(), size: n})
			s.used += int64(n)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		s.evict(ctx)
	}
	var again []blocks.Block
	for i, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !s.has(waited[i].Cid()) { // the other put failed: try it here
			again = append(again, waited[i])
		}
	}
	if len(again) > 0 {
		return s.PutMany(ctx, again)
	}
	return nil
}

func (s *Store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	s.mu.Lock()
	b := s.recent.get(string(c.Hash()))
	s.mu.Unlock()
	if b != nil {
		s.touch(c)
		return b, nil
	}
	b, err := s.base.Get(ctx, c)
	if err == nil {
		s.touch(c)
	}
	return b, err
}

func (s *Store) DeleteBlock(ctx context.Context, c cid.Cid) error {
	k := string(c.Hash())
	s.mu.Lock()
	if s.pinned[k] > 0 {
		s.mu.Unlock()
		return fmt.Errorf("files: block %s is pinned; unpin its root first", c)
	}
	if e, ok := s.cached[k]; ok {
		s.used -= int64(e.Value.(*cachedBlock).size)
		s.lru.Remove(e)
		delete(s.cached, k)
	}
	s.recent.remove(k)
	s.mu.Unlock()
	return s.base.DeleteBlock(ctx, c)
}

// Has answers from the store's index of its blocks (every block on disk
// is either pinned or cached), not from Pebble, whose Has reads the whole
// value: bitswap asks for every block it is sent and every want-have.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) { return s.has(c), nil }

// GetSize answers from the index too where it knows the size.
func (s *Store) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	h := c.Hash()
	s.mu.Lock()
	n, ok := 0, false
	if e, in := s.cached[string(h)]; in {
		n, ok = e.Value.(*cachedBlock).size, true
	} else if s.pinned[string(h)] > 0 {
		n, ok = s.sizes[string(h)]
	}
	s.mu.Unlock()
	if ok {
		return n, nil
	}
	return s.base.GetSize(ctx, c)
}

// has reports whether the block is in the store (pinned or cached).
func (s *Store) has(c cid.Cid) bool {
	h := c.Hash()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pinned[string(h)] > 0 || s.cached[string(h)] != nil
}

func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	return s.base.AllKeysChan(ctx)
}

var _ blockstore.Blockstore = (*Store)(nil)

// recentBytes bounds the blocks kept in memory after they were written.
// A downloading node reads back each block its whole-file fetch has just
// put (the reader) and serves it to other peers; from Pebble each such
// read copied the 256 KiB value (go-ds-pebble clones it) and often read
// it from a blob file: 9% of a distribution's CPU (BenchmarkDistribute).
const recentBytes = 32 << 20

// recentBlocks holds the most recently written blocks, under Store.mu.
// Blocks are immutable, so a hit hands out the block itself.
type recentBlocks struct {
	limit int64
	used  int64
	list  *list.List // of recentBlock, newest at the front
	byKey map[string]*list.Element
}

type recentBlock struct {
	key string
	b   blocks.Block
}

func (r *recentBlocks) add(k string, b blocks.Block) {
	if rb, ok := b.(received); ok {
		b = rb.Block // the mark means nothing once stored
	}
	if _, ok := r.byKey[k]; ok || int64(len(b.RawData())) > r.limit {
		return
	}
	r.byKey[k] = r.list.PushFront(recentBlock{key: k, b: b})
	r.used += int64(len(b.RawData()))
	for r.used > r.limit {
		r.remove(r.list.Back().Value.(recentBlock).key)
	}
}

func (r *recentBlocks) get(k string) blocks.Block {
	if e, ok := r.byKey[k]; ok {
		return e.Value.(recentBlock).b
	}
	return nil
}

func (r *recentBlocks) remove(k string) {
	if e, ok := r.byKey[k]; ok {
		r.used -= int64(len(e.Value.(recentBlock).b.RawData()))
		r.list.Remove(e)
		delete(r.byKey, k)
	}
}
