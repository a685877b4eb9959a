package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/ratelimit"
)

// TestRedialRefusedAtAccept: a banned device that keeps redialling is
// refused after the security handshake a few times, then at accept,
// before any handshake, while the devices connected from the same address
// keep depositing.
func TestRedialRefusedAtAccept(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{NoSync: true})
	s.g.gater.max = 3
	ctx := ctxT(t)
	a := startNode(t, s.l, s.aKey, nil)
	c := startNode(t, s.l, s.cKey, nil) // registered, no grant: banned below
	connect(t, a, s.g)
	connect(t, c, s.g)
	for i := 0; i < 3; i++ {
		env, _ := c.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("x")})
		_, _ = c.Deposit(ctx, s.gKey.ID(), env)
	}
	waitFor(t, 5*time.Second, func() bool { return s.g.Stats().Bans == 1 })
	stop := redial(t, s.cKey, s.g.AddrInfo(), 200)
	waitFor(t, 10*time.Second, func() bool { return s.g.gater.acceptsRefused.Load() >= 50 })
	dials := stop()
	hs := s.g.gater.handshakesRefused.Load()
	// The burst, then 2 a second while the dials went on.
	if hs > refusedBurst+20 {
		t.Errorf("%d of %d redials refused after their handshake; want about %d, the rest at accept", hs, dials, refusedBurst)
	}
	if n := len(s.g.Host().Network().ConnsToPeer(c.PeerID())); n > 0 {
		t.Errorf("the banned device holds %d connections", n)
	}
	env, _ := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("still here")})
	if res, err := a.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Err() != nil {
		t.Fatalf("a device on the same address: %v %v", err, res)
	}
	t.Logf("%d redials: %d refused after the handshake, %d at accept", dials, hs, s.g.gater.acceptsRefused.Load())
}

// TestRegisteredOnly: with Config.RegisteredOnly a host refuses keys that
// are not active registered devices right after the security handshake
// (for P-256 keys, which their peer id does not embed, once upgraded);
// registered devices of both algorithms connect and talk.
func TestRegisteredOnly(t *testing.T) {
	l := newTestLedger(t, "acme")
	gKey := l.device("acme", "gateway", identity.Ed25519)
	box := newInbox()
	g := startNode(t, l, gKey, func(c *Config) { c.RegisteredOnly, c.Handler = true, box.handler })
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.P256} {
		t.Run(alg.String(), func(t *testing.T) {
			before := g.gater.handshakesRefused.Load()
			stranger := startNode(t, l, mustKey(t, alg), nil)
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = stranger.Connect(cctx, g.Addrs()[0])
			cancel()
			waitFor(t, 5*time.Second, func() bool { return g.gater.handshakesRefused.Load() > before })
			if len(g.Host().Network().ConnsToPeer(stranger.PeerID())) > 0 {
				t.Fatal("an unregistered key holds a connection")
			}

			k := l.device("acme", "sensor", alg)
			l.grant("acme", "device:"+k.ID(), message.KindMessage, "device:"+gKey.ID())
			d := startNode(t, l, k, nil)
			connect(t, d, g)
			env, _ := d.Compose(message.Outgoing{To: gKey.ID(), Body: []byte("registered")})
			if res, err := d.Send(ctxT(t), env); err != nil || res.Err() != nil {
				t.Fatalf("a registered device: %v %v", err, res)
			}
		})
	}
}

// TestGaterAcceptRate: an address's inbound connections are bounded at
// accept; another address is not affected; a relayed connection has no
// address of its own and is not counted.
func TestGaterAcceptRate(t *testing.T) {
	clock := &stepClock{t: time.Unix(1_000_000, 0)}
	g := newGater(100, time.Minute, clock)
	from := func(a string) network.ConnMultiaddrs { return connAddrs{ma.StringCast(a)} }
	x := from("/ip4/192.0.2.1/tcp/4001")
	for i := 0; i < acceptBurst; i++ {
		if !g.InterceptAccept(x) {
			t.Fatalf("connection %d of a burst of %d refused", i+1, acceptBurst)
		}
	}
	if g.InterceptAccept(x) {
		t.Fatalf("connection %d from one address accepted at once; the burst is %d", acceptBurst+1, acceptBurst)
	}
	if !g.InterceptAccept(from("/ip4/192.0.2.2/tcp/4001")) {
		t.Fatal("another address refused")
	}
	relayed := from("/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit")
	if !g.InterceptAccept(relayed) {
		t.Fatal("a relayed connection counted against its relay's address")
	}
	clock.t = clock.t.Add(time.Second)
	if !g.InterceptAccept(x) {
		t.Fatalf("refused a second later (%d a second)", acceptsPerSec)
	}
}

type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time { return c.t }

var _ ratelimit.Clock = (*stepClock)(nil)

type connAddrs struct{ remote ma.Multiaddr }

func (c connAddrs) LocalMultiaddr() ma.Multiaddr  { return ma.StringCast("/ip4/127.0.0.1/tcp/1") }
func (c connAddrs) RemoteMultiaddr() ma.Multiaddr { return c.remote }
