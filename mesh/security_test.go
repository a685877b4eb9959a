package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"

	"github.com/thingnet/thingnet/identity"
)

// TestSecurityTLSFirst: two mesh nodes secure their TCP connection with
// TLS 1.3 (both key types); a node that offers only Noise, as older nodes
// do, still connects, with Noise.
func TestSecurityTLSFirst(t *testing.T) {
	l := newTestLedger(t, "acme")
	g := startNode(t, l, l.device("acme", "gateway", identity.Ed25519), func(c *Config) {
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	})
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.P256} {
		t.Run(alg.String(), func(t *testing.T) {
			d := startNode(t, l, l.device("acme", "sensor", alg), nil)
			connect(t, d, g)
			conns := d.Host().Network().ConnsToPeer(g.PeerID())
			if len(conns) == 0 {
				t.Fatal("no connection")
			}
			if got := conns[0].ConnState().Security; got != libp2ptls.ID {
				t.Fatalf("security %q; want %q", got, libp2ptls.ID)
			}
		})
	}
	t.Run("noise-only peer", func(t *testing.T) {
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Security(noise.ID, noise.New))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Connect(ctx, peer.AddrInfo{ID: g.PeerID(), Addrs: g.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
		if got := h.Network().ConnsToPeer(g.PeerID())[0].ConnState().Security; got != protocol.ID(noise.ID) {
			t.Fatalf("security %q; want %q", got, noise.ID)
		}
	})
}
