package files

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// ledgerFor is a Ledger for p that runs each queued message in a block of
// the test ledger, signed with p's key, as the gateway's queue would.
func (n *testNet) ledgerFor(p **testPeer, mu *sync.Mutex, sent *atomic.Int64) *Ledger {
	return &Ledger{
		ID:   "", // set once the peer exists
		View: n.ledger.View,
		Enqueue: func(m record.Msg, done func(error)) error {
			mu.Lock()
			err := n.ledger.Do((*p).key, m)
			mu.Unlock()
			sent.Add(1)
			done(err)
			return nil
		},
	}
}

func (n *testNet) pinners(t *testing.T, c cid.Cid) []string {
	t.Helper()
	st, err := n.ledger.View()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := st.FilePins(c.String())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Pinner)
	}
	return out
}

// peerWithLedger starts a gateway of org whose file service records its
// pins on the test ledger; mod may change the rest of its config.
func (n *testNet) peerWithLedger(org string, boot *testPeer, mu *sync.Mutex, sent *atomic.Int64, mod func(*Config)) *testPeer {
	var p *testPeer
	l := n.ledgerFor(&p, mu, sent)
	k, err := n.ledger.Device(org, "gateway", identity.Ed25519)
	if err != nil {
		n.t.Fatal(err)
	}
	l.ID = k.ID()
	p = n.peerWithKey(k, boot, func(c *Config) {
		c.Ledger = l
		if mod != nil {
			mod(c)
		}
	})
	return p
}

// knows puts a's addresses in p's peerstore (as identify or mDNS would)
// without connecting them.
func knows(p, a *testPeer) {
	p.node.Host().Peerstore().AddAddrs(a.node.PeerID(), a.node.Host().Addrs(), time.Hour)
}

// TestPinsOnLedger: adding, pinning and unpinning record file.pin (signed
// by the node) on the ledger, once each; a node that cannot find the file
// in the DHT gets it from the node the ledger names.
func TestPinsOnLedger(t *testing.T) {
	n := newTestNet(t)
	var mu sync.Mutex
	var sent atomic.Int64
	a := n.peerWithLedger("acme", nil, &mu, &sent, nil) // in no DHT: only the ledger tells where the file is
	data := randomBytes(t, 3*ChunkSize+17)
	f := add(t, a, data)
	if got := n.pinners(t, f.CID); !slices.Equal(got, []string{a.key.ID()}) {
		t.Fatalf("pinners after add = %v; want the adding node", got)
	}
	// Pinning again changes nothing on the ledger.
	if err := a.files.Pin(context.Background(), f.CID); err != nil {
		t.Fatal(err)
	}
	if sent.Load() != 1 {
		t.Errorf("%d file.pin txs after add and pin of the same root; want 1", sent.Load())
	}

	// b finds no provider record; the ledger names a.
	b := n.peerWithLedger("beta", nil, &mu, &sent, nil)
	knows(b, a)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.files.Pin(ctx, f.CID); err != nil {
		t.Fatalf("pin through the ledger's pinners: %v", err)
	}
	if got := n.pinners(t, f.CID); len(got) != 2 || !slices.Contains(got, b.key.ID()) {
		t.Fatalf("pinners after b pinned = %v; want a and b", got)
	}

	if err := a.files.Unpin(context.Background(), f.CID); err != nil {
		t.Fatal(err)
	}
	if got := n.pinners(t, f.CID); !slices.Equal(got, []string{b.key.ID()}) {
		t.Errorf("pinners after a unpinned = %v; want b only", got)
	}
}

// TestPinnersPreferred: a node that knows the pinner's address but is not
// connected to it, with no provider record to find, gets nothing without
// the ledger's pinners and the file with them.
func TestPinnersPreferred(t *testing.T) {
	n := newTestNet(t)
	var mu sync.Mutex
	var sent atomic.Int64
	a := n.peerWithLedger("acme", nil, &mu, &sent, nil)
	f := add(t, a, randomBytes(t, ChunkSize+1))
	plain := n.peer("beta", nil, nil)
	knows(plain, a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := plain.files.Get(ctx, f.CID, io.Discard, GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("a node with no provider record and no connection to the pinner got the file")
	}
	withLedger := n.peerWithLedger("beta", nil, &mu, &sent, nil)
	knows(withLedger, a)
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := withLedger.files.Get(ctx, f.CID, io.Discard, GetOptions{}); err != nil {
		t.Fatalf("get with the ledger's pinners: %v", err)
	}
}

// countProvides counts the provider records put per root.
type countProvides struct {
	routing.Routing
	mu sync.Mutex
	n  map[cid.Cid]int
}

func (c *countProvides) Provide(ctx context.Context, k cid.Cid, announce bool) error {
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
	return c.Routing.Provide(ctx, k, announce)
}

func (c *countProvides) count(k cid.Cid) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// TestReprovide: pinned roots are announced again every ReprovideInterval
// (here 300 ms), and a fresh node finds the provider; an unpinned root is
// no longer announced.
func TestReprovide(t *testing.T) {
	n := newTestNet(t)
	boot := n.peer("acme", nil, nil)
	var counter *countProvides
	a := n.peer("acme", boot, func(c *Config) {
		counter = &countProvides{Routing: c.Routing, n: map[cid.Cid]int{}}
		c.Routing, c.ReprovideInterval = counter, 300*time.Millisecond
	})
	f := add(t, a, randomBytes(t, 1000))
	deadline := time.Now().Add(60 * time.Second)
	// The announcement on add, then 3 rounds, each counted once it has
	// finished (Reprovided counts a round after its last announcement:
	// wait for both, not for the announcements alone).
	for counter.count(f.CID) < 4 || a.files.Reprovided() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("root announced %d times and %d rounds finished in 60 s; want a round every 300 ms", counter.count(f.CID), a.files.Reprovided())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fresh := n.peer("beta", boot, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A search made before the fresh node's routing table holds the
	// bootstrap peer (filled after identify, in the background) ends at
	// once with nothing: search again until found or 30 s.
	found := false
	for !found && ctx.Err() == nil {
		for p := range fresh.node.Routing().FindProvidersAsync(ctx, f.CID, 1) {
			found = found || p.ID == a.node.PeerID()
		}
		if !found {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if !found {
		t.Errorf("a fresh node did not find the provider in the DHT within 30 s")
	}
	if err := a.files.Unpin(context.Background(), f.CID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // a round in progress may still announce it
	before := counter.count(f.CID)
	time.Sleep(time.Second)
	if after := counter.count(f.CID); after != before {
		t.Errorf("an unpinned root was announced %d more times", after-before)
	}
}
