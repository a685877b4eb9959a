package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/meshtest"
)

// testNet is a real ledger with gateway devices, each running a mesh node
// (libp2p on loopback, DHT in server mode) and a file service on its host.
type testNet struct {
	t      testing.TB
	ledger *meshtest.Ledger
	auth   *mesh.LedgerAuthority
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	l, err := meshtest.New(t.TempDir(), "acme", "beta")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &testNet{t: t, ledger: l, auth: mesh.NewLedgerAuthority(l.View, func() string { return meshtest.ChainID })}
}

type testPeer struct {
	key   *identity.Key
	node  *mesh.Node
	files *Service
}

func (p *testPeer) info() peer.AddrInfo {
	return peer.AddrInfo{ID: p.node.PeerID(), Addrs: p.node.Host().Addrs()}
}

// peer starts a gateway of org with a file service; mod may change the
// file service's config. Every peer after the first bootstraps from boot.
func (n *testNet) peer(org string, boot *testPeer, mod func(*Config)) *testPeer {
	n.t.Helper()
	k, err := n.ledger.Device(org, "gateway", identity.Ed25519)
	if err != nil {
		n.t.Fatal(err)
	}
	return n.peerWithKey(k, boot, mod)
}

// peerWithKey starts a gateway with key k (a registered device).
func (n *testNet) peerWithKey(k *identity.Key, boot *testPeer, mod func(*Config)) *testPeer {
	n.t.Helper()
	mc := mesh.Config{Key: k, Authority: n.auth, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoPubSub: true, DHT: true, Relay: true}
	node, err := mesh.New(mc)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { node.Close() })
	if boot != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Host().Connect(ctx, boot.info()); err != nil {
			n.t.Fatal(err)
		}
	}
	fc := Config{Host: node.Host(), Routing: node.Routing(), Dir: n.t.TempDir()}
	if mod != nil {
		mod(&fc)
	}
	fs, err := New(fc)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { fs.Close() })
	return &testPeer{key: k, node: node, files: fs}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func add(t testing.TB, p *testPeer, data []byte) Added {
	t.Helper()
	a, err := p.files.Add(context.Background(), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
