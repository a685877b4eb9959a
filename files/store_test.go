package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	mh "github.com/multiformats/go-multihash"

	"github.com/thingnet/thingnet/internal/testutil"
)

func rawBlock(t *testing.T, data []byte) blocks.Block {
	t.Helper()
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreLRUEviction(t *testing.T) {
	ctx := context.Background()
	s, err := NewStore(ctx, dssync.MutexWrap(ds.NewMapDatastore()), 3000)
	if err != nil {
		t.Fatal(err)
	}
	var bs []blocks.Block
	for i := range 4 {
		b := rawBlock(t, bytes.Repeat([]byte{byte(i)}, 1000))
		bs = append(bs, b)
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if _, err := s.Get(ctx, bs[0].Cid()); err != nil { // 0 is now more recent than 1
				t.Fatal(err)
			}
		}
	}
	has := func(b blocks.Block) bool { ok, _ := s.Has(ctx, b.Cid()); return ok }
	if !has(bs[0]) || has(bs[1]) || !has(bs[2]) || !has(bs[3]) {
		t.Fatalf("want block 1 (least recently used) evicted: %v %v %v %v", has(bs[0]), has(bs[1]), has(bs[2]), has(bs[3]))
	}
	if st := s.Stats(); st.CacheBytes != 3000 || st.CacheBlocks != 3 {
		t.Fatalf("stats %+v", st)
	}

	// A pinned block is kept whatever comes after it; unpinned, it is evictable.
	if err := s.Pin(ctx, bs[2].Cid()); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 16; i++ {
		if err := s.Put(ctx, rawBlock(t, bytes.Repeat([]byte{byte(i)}, 1000))); err != nil {
			t.Fatal(err)
		}
	}
	if !has(bs[2]) {
		t.Fatal("a pinned block was evicted")
	}
	if err := s.DeleteBlock(ctx, bs[2].Cid()); err == nil {
		t.Fatal("deleted a pinned block")
	}
	if err := s.Unpin(ctx, bs[2].Cid()); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 24; i++ {
		if err := s.Put(ctx, rawBlock(t, bytes.Repeat([]byte{byte(i)}, 1000))); err != nil {
			t.Fatal(err)
		}
	}
	if has(bs[2]) {
		t.Fatal("an unpinned block outlived the cache")
	}
	if st := s.Stats(); st.CacheBytes > 3000 || st.PinnedRoots != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStoreRefusesWrongBytes(t *testing.T) {
	ctx := context.Background()
	s, err := NewStore(ctx, dssync.MutexWrap(ds.NewMapDatastore()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	good := rawBlock(t, []byte("firmware image v1"))
	bad, _ := blocks.NewBlockWithCid([]byte("firmware image v2"), good.Cid())
	if err := s.Put(ctx, bad); err == nil {
		t.Fatal("stored a block whose bytes do not match its CID")
	}
	if ok, _ := s.Has(ctx, good.Cid()); ok {
		t.Fatal("the refused block is there")
	}
}

// Pins survive a restart on the Pebble datastore; the cache is rebuilt.
func TestStoreRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*Store, *pebbleds.Datastore) {
		d, err := pebbleds.NewDatastore(dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewStore(ctx, d, 2500)
		if err != nil {
			t.Fatal(err)
		}
		return s, d
	}
	s, d := open()
	pinned := rawBlock(t, bytes.Repeat([]byte{1}, 1000))
	cached := rawBlock(t, bytes.Repeat([]byte{2}, 1000))
	for _, b := range []blocks.Block{pinned, cached} {
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Pin(ctx, pinned.Cid()); err != nil {
		t.Fatal(err)
	}
	d.Close()
	s, d = open()
	defer d.Close()
	if !s.IsPinned(pinned.Cid()) {
		t.Fatal("pin lost over a restart")
	}
	if st := s.Stats(); st.CacheBlocks != 1 || st.CacheBytes != 1000 || st.PinnedBlocks != 1 {
		t.Fatalf("after restart: %+v", st)
	}
}

// TestStorePinSurvivesCrash: the block store runs without a write-ahead
// log, so Pin flushes: after a crash (the disk as it was last synced), a
// pinned file and its blocks are there; a block put after the last flush
// may be gone, and nothing refers to it.
func TestStorePinSurvivesCrash(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	open := func(fs vfs.FS) (*Store, flushOnSync) {
		o := blockStoreOptions()
		o.FS = fs
		p, err := pebbleds.NewDatastore("blocks", pebbleds.WithPebbleOpts(o))
		if err != nil {
			t.Fatal(err)
		}
		d := flushOnSync{p}
		s, err := NewStore(ctx, d, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return s, d
	}
	s, d := open(mem)
	// Blocks above the value separation's minimum: in blob files.
	pinned := rawBlock(t, bytes.Repeat([]byte{1}, 4000))
	if err := s.Put(ctx, pinned); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, pinned.Cid()); err != nil {
		t.Fatal(err)
	}
	late := rawBlock(t, bytes.Repeat([]byte{2}, 4000))
	if err := s.Put(ctx, late); err != nil {
		t.Fatal(err)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{}) // only what was synced
	d.Close()
	s, d = open(crashed)
	defer d.Close()
	if !s.IsPinned(pinned.Cid()) {
		t.Fatal("IsPinned after a crash = false; want true")
	}
	if _, err := s.Get(ctx, pinned.Cid()); err != nil {
		t.Fatalf("Get(pinned) after a crash: %v", err)
	}
}

// TestStoreValueSeparation: a store made with Pebble's defaults (an older
// format, blocks in the tables) opens with the block store's options
// (blocks in blob files), keeps what it had and holds leaf-sized blocks
// intact over a restart.
func TestStoreValueSeparation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := pebbleds.NewDatastore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(ctx, old, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	before := rawBlock(t, bytes.Repeat([]byte{7}, 5000))
	if err := s.Put(ctx, before); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	open := func() (*Store, flushOnSync) {
		p, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleOpts(blockStoreOptions()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewStore(ctx, flushOnSync{p}, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		return s, flushOnSync{p}
	}
	s, d := open()
	want := []blocks.Block{before}
	for i := range 8 {
		b := rawBlock(t, bytes.Repeat([]byte{byte(i)}, ChunkSize))
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	if err := d.Sync(ctx, ds.NewKey("/")); err != nil { // flush: blocks into blob files
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := filepath.Glob(filepath.Join(dir, "*.blob")); len(blobs) == 0 {
		t.Fatal("no blob files: the blocks are not separated from the tables")
	}
	s, d = open()
	defer d.Close()
	for _, b := range want {
		got, err := s.Get(ctx, b.Cid())
		if err != nil {
			t.Fatalf("Get(%s) after a restart: %v", b.Cid(), err)
		}
		if !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("block %s changed over a restart", b.Cid())
		}
		if n, err := s.GetSize(ctx, b.Cid()); err != nil || n != len(b.RawData()) {
			t.Fatalf("GetSize(%s) = %d, %v; want %d", b.Cid(), n, err, len(b.RawData()))
		}
	}
	checkStoreIntact(t, s)
}

// countingDS counts the values written to a datastore.
type countingDS struct {
	ds.Batching
	puts atomic.Int64
}

func (c *countingDS) Put(ctx context.Context, k ds.Key, v []byte) error {
	c.puts.Add(1)
	return c.Batching.Put(ctx, k, v)
}

// TestStorePutsOnce: a block put by several callers at once (a Get's reader
// and its whole-file fetch get each block from bitswap at the same moment)
// is written once, and is in the store when each put returns; Has and
// GetSize answer from the index.
func TestStorePutsOnce(t *testing.T) {
	ctx := context.Background()
	d := &countingDS{Batching: dssync.MutexWrap(ds.NewMapDatastore())}
	s, err := NewStore(ctx, d, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	b := rawBlock(t, bytes.Repeat([]byte{3}, 4096))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				err = s.Put(ctx, received{b})
			} else {
				err = s.PutMany(ctx, []blocks.Block{b, b})
			}
			if err != nil {
				t.Error(err)
				return
			}
			if ok, _ := s.Has(ctx, b.Cid()); !ok {
				t.Error("Has = false after Put returned")
			}
		}()
	}
	wg.Wait()
	if n := d.puts.Load(); n != 1 {
		t.Fatalf("the block was written %d times; want 1", n)
	}
	if n, err := s.GetSize(ctx, b.Cid()); err != nil || n != 4096 {
		t.Fatalf("GetSize = %d, %v; want 4096", n, err)
	}
	if st := s.Stats(); st.CacheBlocks != 1 || st.CacheBytes != 4096 {
		t.Fatalf("stats after 8 puts of one block: %+v", st)
	}
}

// TestStoreChecksAllButReceived: the store hashes every block it is given
// but those bitswap delivered (received, whose CIDs bitswap derived from
// their bytes): a wrong block from anywhere else is refused.
func TestStoreChecksAllButReceived(t *testing.T) {
	ctx := context.Background()
	s, err := NewStore(ctx, dssync.MutexWrap(ds.NewMapDatastore()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	good := rawBlock(t, []byte("leaf"))
	bad, _ := blocks.NewBlockWithCid([]byte("other"), good.Cid())
	if err := s.PutMany(ctx, []blocks.Block{good, bad}); err == nil {
		t.Fatal("PutMany stored a batch with a block whose bytes do not match its CID")
	}
	if ok, _ := s.Has(ctx, good.Cid()); ok {
		t.Fatal("a refused batch left a block behind")
	}
}

// TestStoreRecentBlocks: a block just written is served from memory, not
// Pebble, until newer blocks push it out; a deleted or evicted block is
// not served from there.
func TestStoreRecentBlocks(t *testing.T) {
	ctx := context.Background()
	s, err := NewStore(ctx, dssync.MutexWrap(ds.NewMapDatastore()), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	s.recent.limit = 3 * 4096
	var bs []blocks.Block
	for i := range 4 {
		b := rawBlock(t, bytes.Repeat([]byte{byte(i)}, 4096))
		if err := s.Put(ctx, received{b}); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	if s.recent.get(string(bs[0].Cid().Hash())) != nil {
		t.Fatal("the oldest block is still in memory past the limit")
	}
	for _, b := range bs {
		got, err := s.Get(ctx, b.Cid())
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("Get(%s) = %v", b.Cid(), err)
		}
		if _, ok := got.(received); ok {
			t.Fatal("Get handed out a block still marked received")
		}
	}
	if err := s.DeleteBlock(ctx, bs[3].Cid()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, bs[3].Cid()); err == nil {
		t.Fatal("a deleted block is still served")
	}
	if s.recent.used != 2*4096 {
		t.Fatalf("%d bytes counted in memory; want %d", s.recent.used, 2*4096)
	}
}

// TestStoreDiskBoundedUnderEviction: with blocks in blob files (value
// separation), a cache that evicts as it fills gives its disk back: 16
// times its limit written through it, the block store stays within the
// limit plus two memtables' worth (flushed blob files whose blocks were
// evicted go when compactions drop their keys).
func TestStoreDiskBoundedUnderEviction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleOpts(blockStoreOptions()))
	if err != nil {
		t.Fatal(err)
	}
	d := flushOnSync{p}
	defer d.Close()
	const limit = 16 << 20
	s, err := NewStore(ctx, d, limit)
	if err != nil {
		t.Fatal(err)
	}
	const bound = limit + 2*blockMemTableBytes
	buf := make([]byte, ChunkSize)
	for i := range 16 * limit / ChunkSize {
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, rawBlock(t, buf)); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			if err := d.Sync(ctx, ds.NewKey("/")); err != nil {
				t.Fatal(err)
			}
			if n := testutil.DirBytes(dir); n > bound {
				t.Fatalf("after %d MiB put through a %d MiB cache: %.1f MiB on disk; want at most %d MiB", (i+1)*ChunkSize>>20, limit>>20, float64(n)/(1<<20), bound>>20)
			}
		}
	}
	if st := s.Stats(); st.CacheBytes > limit {
		t.Fatalf("cache holds %d bytes; limit %d", st.CacheBytes, limit)
	}
}
