package files

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestAddGetThreeNodes(t *testing.T) {
	n := newTestNet(t)
	a := n.peer("acme", nil, nil)
	b := n.peer("acme", a, nil)
	c := n.peer("beta", a, nil)
	data := randomBytes(t, 6<<20+12345)
	added := add(t, a, data)
	if added.CID.Version() != 1 || added.Size != uint64(len(data)) {
		t.Fatalf("added %v (%d bytes); want a CIDv1 of %d bytes", added.CID, added.Size, len(data))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// b finds a through the DHT (it is connected only to a, the bootstrap).
	var got bytes.Buffer
	if _, err := b.files.Get(ctx, added.CID, &got, GetOptions{Pin: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("b got different bytes")
	}
	if !b.files.Store().IsPinned(added.CID) {
		t.Fatal("b did not pin what it fetched with Pin")
	}
	// c fetches from a and b at once (once its bitswap knows both).
	c.files.connect(ctx, []peer.AddrInfo{a.info(), b.info()})
	waitBitswapPeers(t, c, a, b)
	sentA, sentB := a.files.Transfers().BlocksSent, b.files.Transfers().BlocksSent
	got.Reset()
	if _, err := c.files.Get(ctx, added.CID, &got, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("c got different bytes")
	}
	fromA, fromB := a.files.Transfers().BlocksSent-sentA, b.files.Transfers().BlocksSent-sentB
	t.Logf("c got %d blocks from a, %d from b", fromA, fromB)
	if fromA == 0 || fromB == 0 {
		t.Errorf("c fetched from one provider only: %d blocks from a, %d from b", fromA, fromB)
	}
	// Same bytes, same CID anywhere.
	if again := add(t, c, data); !again.CID.Equals(added.CID) {
		t.Fatalf("adding the same bytes gave %v, then %v", added.CID, again.CID)
	}
}

// waitBitswapPeers waits until p's host knows that the others speak
// bitswap (identify done), so a session's first broadcast reaches them.
func waitBitswapPeers(t *testing.T, p *testPeer, others ...*testPeer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, o := range others {
		for {
			ps, _ := p.node.Host().Peerstore().SupportsProtocols(o.node.PeerID(), "/ipfs/bitswap/1.2.0")
			if len(ps) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never announced bitswap", o.node.PeerID())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond) // bitswap's connect events follow identify
}

// lyingStore serves altered bytes under the right CID.
type lyingStore struct {
	*Store
	served atomic.Int64
}

func (l *lyingStore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := l.Store.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	d := append([]byte(nil), b.RawData()...)
	d[len(d)/2] ^= 0xff
	l.served.Add(1)
	return blocks.NewBlockWithCid(d, c)
}

func TestLyingProvider(t *testing.T) {
	n := newTestNet(t)
	var liar *lyingStore
	bad := n.peer("acme", nil, func(c *Config) {
		c.wrapServe = func(s *Store) blockstoreServe { liar = &lyingStore{Store: s}; return liar }
	})
	good := n.peer("acme", bad, nil)
	client := n.peer("beta", bad, nil)
	data := randomBytes(t, 2<<20)
	added := add(t, bad, data)

	// Only the liar has it: the download fails; nothing wrong is stored.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	lone := n.peer("beta", bad, nil)
	_, err := lone.files.Get(ctx, added.CID, &bytes.Buffer{}, GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("a download served only by a lying provider succeeded")
	}
	if st := lone.files.Store().Stats(); st.CacheBlocks != 0 {
		t.Fatalf("a lying provider's blocks were stored: %+v", st)
	}

	if again := add(t, good, data); !again.CID.Equals(added.CID) {
		t.Fatal("CIDs differ")
	}

	// Liar and honest provider: the download completes, right.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got bytes.Buffer
	if _, err := client.files.Get(ctx, added.CID, &got, GetOptions{Pin: true, Peers: []peer.AddrInfo{bad.info(), good.info()}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("client stored wrong bytes")
	}
	if liar.served.Load() == 0 {
		t.Fatal("the liar was never asked: the test proves nothing")
	}
	checkStoreIntact(t, client.files.Store())
}

// checkStoreIntact re-hashes every block a store holds.
func checkStoreIntact(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	keys, err := s.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for c := range keys {
		b, err := s.base.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := c.Prefix().Sum(b.RawData())
		if !bytes.Equal(h.Hash(), c.Hash()) {
			t.Fatalf("block %s holds bytes that hash to %s", c, h)
		}
		n++
	}
	if n == 0 {
		t.Fatal("store is empty")
	}
}

func TestProviderLossMidDownload(t *testing.T) {
	n := newTestNet(t)
	p1 := n.peer("acme", nil, nil)
	p2 := n.peer("acme", p1, nil)
	p3 := n.peer("acme", p1, nil)
	client := n.peer("beta", p1, nil)
	data := randomBytes(t, 16<<20)
	added := add(t, p1, data)
	add(t, p2, data)
	add(t, p3, data)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var killed atomic.Bool
	progress := func(done int64) {
		if done > int64(len(data)/4) && killed.CompareAndSwap(false, true) {
			go p2.node.Close() // provider lost mid-download
		}
	}
	var got bytes.Buffer
	if _, err := client.files.Get(ctx, added.CID, &got, GetOptions{Progress: progress, Peers: []peer.AddrInfo{p2.info(), p3.info()}}); err != nil {
		t.Fatal(err)
	}
	if !killed.Load() {
		t.Fatal("the provider was not killed")
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("wrong bytes after losing a provider")
	}
}

func TestUnpinnedNotFound(t *testing.T) {
	n := newTestNet(t)
	a := n.peer("acme", nil, nil)
	c, _ := cid.Decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	if err := a.files.Unpin(context.Background(), c); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("unpin of an unknown CID: %v", err)
	}
}

// TestUseAfterClose: a file service used after Close (an archiver
// unpinning as its node stops) answers ErrClosed, instead of reaching the
// closed Pebble store, whose every method panics.
func TestUseAfterClose(t *testing.T) {
	ctx := context.Background()
	s := newTestNet(t).peer("acme", nil, nil).files
	added, err := s.Add(ctx, bytes.NewReader([]byte("kept")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Store().Unpin(ctx, added.CID); !errors.Is(err, ErrClosed) {
		t.Errorf("Unpin after Close = %v; want ErrClosed", err)
	}
	if err := s.Store().Put(ctx, rawBlock(t, []byte("late"))); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v; want ErrClosed", err)
	}
	s.Store().Get(ctx, added.CID) // from memory, or ErrClosed: no panic
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
