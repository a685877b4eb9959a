package mesh

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDirectMessages(t *testing.T) {
	l := newTestLedger(t, "acme")
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.P256} {
		t.Run(alg.String(), func(t *testing.T) {
			aKey := l.device("acme", "sensor", alg)
			bKey := l.device("acme", "actuator", alg)
			l.grant("acme", "device:"+aKey.ID(), message.KindCommand, "device:"+bKey.ID())
			box := newInbox()
			a := startNode(t, l, aKey, nil)
			b := startNode(t, l, bKey, func(c *Config) { c.Handler = box.handler })
			connect(t, a, b)
			ctx := ctxT(t)

			hybrid, err := bKey.HybridEncryptionKey()
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []message.Outgoing{
				{To: bKey.ID(), Kind: message.KindCommand, Type: "text/plain", Body: []byte("valve open")},
				{To: bKey.ID(), Kind: message.KindCommand, Body: []byte("sealed: valve close"), Seal: true},
				{To: bKey.ID(), Body: []byte("sealed, post-quantum"), Seal: true, HybridKey: hybrid},
			} {
				env, err := a.Compose(o)
				if err != nil {
					t.Fatal(err)
				}
				if o.Seal && bytes.Contains(env, o.Body) {
					t.Fatal("sealed message carries its plaintext")
				}
				res, err := a.Send(ctx, env)
				if err != nil {
					t.Fatal(err)
				}
				if res.Err() != nil {
					t.Fatal(res.Err())
				}
				d := box.next(t, 5*time.Second)
				if !bytes.Equal(d.Plaintext, o.Body) || d.From != aKey.ID() || d.Via != "direct" {
					t.Fatalf("delivered %q from %s via %s", d.Plaintext, d.From, d.Via)
				}
				// A replay of the same message is refused.
				res, err = a.Send(ctx, env)
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != message.StatusReplay {
					t.Fatalf("replayed message: %v", res.Status)
				}
			}
			if box.count() != 3 {
				t.Fatalf("%d delivered, want 3", box.count())
			}
		})
	}
}

func TestDirectRefusals(t *testing.T) {
	l := newTestLedger(t, "acme", "other")
	aKey := l.device("acme", "sensor", identity.Ed25519)
	bKey := l.device("acme", "actuator", identity.Ed25519)
	noGrant := l.device("acme", "sensor", identity.Ed25519)
	revoked := l.device("acme", "sensor", identity.Ed25519)
	foreign := l.device("other", "sensor", identity.Ed25519)
	stranger := mustKey(t, identity.Ed25519) // never registered
	for _, k := range []*identity.Key{aKey, revoked} {
		l.grant("acme", "device:"+k.ID(), message.KindMessage, "device:"+bKey.ID())
	}
	l.setStatus("acme", revoked.ID(), record.StatusRevoked)

	box := newInbox()
	b := startNode(t, l, bKey, func(c *Config) { c.Handler = box.handler })
	ctx := ctxT(t)
	send := func(from *Node, env []byte) message.Status {
		t.Helper()
		res, err := from.Send(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	compose := func(n *Node, o message.Outgoing) []byte {
		t.Helper()
		env, err := n.Compose(o)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	to := message.Outgoing{To: bKey.ID(), Body: []byte("hello")}
	cases := []struct {
		name string
		key  *identity.Key
		want message.Status
	}{
		{"unregistered key", stranger, message.StatusUnknownSender},
		{"no grant", noGrant, message.StatusNotGranted},
		{"revoked", revoked, message.StatusInactiveSender},
		{"other organisation", foreign, message.StatusNotGranted},
	}
	for _, c := range cases {
		n := startNode(t, l, c.key, nil)
		connect(t, n, b)
		if got := send(n, compose(n, to)); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	a := startNode(t, l, aKey, nil)
	connect(t, a, b)

	// A message of A's handed over by another peer is refused: on a
	// direct connection the peer must be the sender.
	fwd := startNode(t, l, noGrant, nil)
	connect(t, fwd, b)
	if got := send(fwd, compose(a, to)); got != message.StatusPeerMismatch {
		t.Errorf("forwarded: %v", got)
	}
	// A bad signature.
	env := compose(a, to)
	env[len(env)-1] ^= 1
	if got := send(a, env); got != message.StatusBadSignature {
		t.Errorf("bad signature: %v", got)
	}
	// For another receiver.
	other := compose(a, message.Outgoing{To: noGrant.ID(), Body: []byte("x")})
	res, err := a.exchange(ctx, b.PeerID(), ProtoMessage, bKey.ID(), bKey.Public(), other)
	if err != nil || res.Status != message.StatusWrongReceiver {
		t.Errorf("wrong receiver: %v %v", res, err)
	}
	if box.count() != 0 {
		t.Fatalf("%d messages delivered", box.count())
	}
	// A's own message goes through, and a sequence number it used is
	// refused even in a new, validly signed message.
	good := compose(a, to)
	if got := send(a, good); got != message.StatusDelivered {
		t.Fatalf("good: %v", got)
	}
	e, _ := message.Decode(good)
	again, err := message.Sign(aKey, message.Message{Chain: testChain, From: aKey.ID(), To: bKey.ID(), Seq: e.Seq, Kind: message.KindMessage, Body: []byte("again")})
	if err != nil {
		t.Fatal(err)
	}
	if got := send(a, again); got != message.StatusReplay {
		t.Fatalf("reused seq: %v", got)
	}
	// The receiver counts a refusal after it has answered: wait for it.
	counted := func() bool {
		s := b.Stats()
		return s.Refused["unknown_sender"] == 1 && s.Refused["replay"] == 1 && s.Delivered == 1
	}
	for deadline := time.Now().Add(10 * time.Second); !counted(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", b.Stats())
		}
	}
}

func TestRelay(t *testing.T) {
	l := newTestLedger(t, "acme")
	gKey := l.device("acme", "gateway", identity.Ed25519)
	aKey := l.device("acme", "sensor", identity.Ed25519)
	bKey := l.device("acme", "actuator", identity.Ed25519)
	stranger := mustKey(t, identity.Ed25519)
	l.grant("acme", "device:"+aKey.ID(), message.KindMessage, "device:"+bKey.ID())
	g := startNode(t, l, gKey, func(c *Config) { c.Relay = true })
	box := newInbox()
	// B listens on nothing reachable but the relay: it has no listen
	// address of its own that A knows.
	b := startNode(t, l, bKey, func(c *Config) { c.Handler = box.handler })
	a := startNode(t, l, aKey, nil)
	ctx := ctxT(t)
	connect(t, b, g)
	if _, err := client.Reserve(ctx, b.Host(), g.AddrInfo()); err != nil {
		t.Fatalf("reservation: %v", err)
	}
	circuit := g.Addrs()[0] + "/p2p-circuit/p2p/" + b.PeerID().String()
	connect(t, a, g)
	if _, err := a.AddPeer(circuit); err != nil {
		t.Fatal(err)
	}
	env, err := a.Compose(message.Outgoing{To: bKey.ID(), Body: []byte("through the gateway"), Seal: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Send(ctx, env)
	if err != nil || res.Err() != nil {
		t.Fatalf("send via relay: %v %v", err, res)
	}
	d := box.next(t, 5*time.Second)
	if string(d.Plaintext) != "through the gateway" {
		t.Fatalf("got %q", d.Plaintext)
	}
	conns := a.Host().Network().ConnsToPeer(b.PeerID())
	if len(conns) == 0 || !isCircuit(conns[0].RemoteMultiaddr()) {
		t.Fatalf("A reached B not through the relay: %v", conns)
	}
	// An unregistered key cannot reserve a slot on the gateway's relay.
	s := startNode(t, l, stranger, nil)
	connect(t, s, g)
	if _, err := client.Reserve(ctx, s.Host(), g.AddrInfo()); err == nil {
		t.Fatal("an unregistered key reserved a relay slot")
	}
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func TestFloodFromOnePeer(t *testing.T) {
	l := newTestLedger(t, "acme")
	bKey := l.device("acme", "actuator", identity.Ed25519)
	aKey := l.device("acme", "sensor", identity.Ed25519)
	l.grant("acme", "device:"+aKey.ID(), message.KindMessage, "device:"+bKey.ID())
	box := newInbox()
	b := startNode(t, l, bKey, func(c *Config) { c.Handler = box.handler; c.MaxRefusals = 50 })
	a := startNode(t, l, aKey, nil)
	flooder := startNode(t, l, mustKey(t, identity.Ed25519), nil)
	connect(t, a, b)
	connect(t, flooder, b)
	ctx := ctxT(t)
	banned := false
	for i := 0; i < 200 && !banned; i++ {
		env, _ := flooder.Compose(message.Outgoing{To: bKey.ID(), Body: []byte("let me in")})
		_, err := flooder.Send(ctx, env)
		banned = err != nil
	}
	if !banned {
		t.Fatal("a peer sending 200 refused messages was not cut off")
	}
	if b.Stats().Bans != 1 {
		t.Fatalf("bans: %d", b.Stats().Bans)
	}
	// It cannot come back: b refuses its connections.
	deadline := time.Now().Add(5 * time.Second)
	for len(b.Host().Network().ConnsToPeer(flooder.PeerID())) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, _ = flooder.Connect(cctx, b.Addrs()[0])
	cancel()
	time.Sleep(200 * time.Millisecond)
	if len(b.Host().Network().ConnsToPeer(flooder.PeerID())) > 0 {
		t.Fatal("a banned peer reconnected")
	}
	for i := 0; i < 100; i++ {
		env, _ := a.Compose(message.Outgoing{To: bKey.ID(), Body: []byte("still here")})
		res, err := a.Send(ctx, env)
		if err != nil || res.Err() != nil {
			t.Fatalf("legitimate message %d: %v %v", i, err, res)
		}
	}
	if box.count() != 100 {
		t.Fatalf("%d delivered", box.count())
	}
}

// TestDHTLookup: A and B know only the gateway (a DHT server); A finds B's
// address in the DHT and sends to it directly.
func TestDHTLookup(t *testing.T) {
	l := newTestLedger(t, "acme")
	gKey := l.device("acme", "gateway", identity.Ed25519)
	aKey := l.device("acme", "sensor", identity.Ed25519)
	bKey := l.device("acme", "actuator", identity.Ed25519)
	l.grant("acme", "device:"+aKey.ID(), message.KindMessage, "device:"+bKey.ID())
	g := startNode(t, l, gKey, func(c *Config) { c.Relay, c.DHT = true, true })
	box := newInbox()
	b := startNode(t, l, bKey, func(c *Config) { c.DHT, c.Handler, c.Bootstrap = true, box.handler, g.Addrs() })
	a := startNode(t, l, aKey, func(c *Config) { c.DHT, c.Bootstrap = true, g.Addrs() })
	ctx := ctxT(t)
	if len(a.Host().Peerstore().Addrs(b.PeerID())) != 0 {
		t.Fatal("A already knows B's address")
	}
	env, err := a.Compose(message.Outgoing{To: bKey.ID(), Body: []byte("found you in the DHT")})
	if err != nil {
		t.Fatal(err)
	}
	var res *message.Result
	// B's DHT routing table fills right after it connects to the gateway.
	for i := 0; i < 50; i++ {
		if res, err = a.Send(ctx, env); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || res.Err() != nil {
		t.Fatalf("send via DHT lookup: %v %v", err, res)
	}
	if d := box.next(t, 5*time.Second); string(d.Plaintext) != "found you in the DHT" {
		t.Fatalf("got %q", d.Plaintext)
	}
	for _, c := range a.Host().Network().ConnsToPeer(b.PeerID()) {
		if isCircuit(c.RemoteMultiaddr()) {
			t.Fatal("went through a relay, not directly")
		}
	}
}

// TestStreamFlood: one peer opening streams without end hits the resource
// manager's per-peer limit; another peer's messages still flow.
func TestStreamFlood(t *testing.T) {
	l := newTestLedger(t, "acme")
	bKey := l.device("acme", "actuator", identity.Ed25519)
	aKey := l.device("acme", "sensor", identity.Ed25519)
	l.grant("acme", "device:"+aKey.ID(), message.KindMessage, "device:"+bKey.ID())
	box := newInbox()
	b := startNode(t, l, bKey, func(c *Config) { c.Handler = box.handler })
	a := startNode(t, l, aKey, nil)
	flooder := startNode(t, l, mustKey(t, identity.Ed25519), nil)
	connect(t, a, b)
	connect(t, flooder, b)
	ctx := ctxT(t)
	refused := 0
	for i := 0; i < 400; i++ {
		// A stream the resource manager refuses may hang until the
		// opener's deadline.
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		s, err := flooder.Host().NewStream(sctx, b.PeerID(), ProtoMessage)
		cancel()
		if err == nil {
			// The stream may be refused by b after it opened on our side.
			_, err = s.Write([]byte{1, 0})
		}
		if err != nil {
			refused++
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		return len(b.Host().Network().ConnsToPeer(flooder.PeerID())) == 0 ||
			countStreams(b, flooder) <= 256
	})
	if n := countStreams(b, flooder); n > 256 {
		t.Fatalf("b holds %d streams of one peer", n)
	}
	for i := 0; i < 50; i++ {
		env, _ := a.Compose(message.Outgoing{To: bKey.ID(), Body: []byte("still here")})
		res, err := a.Send(ctx, env)
		if err != nil || res.Err() != nil {
			t.Fatalf("legitimate message %d: %v %v", i, err, res)
		}
	}
	if refused == 0 {
		t.Fatal("400 streams from one peer, none refused")
	}
	t.Logf("%d of 400 streams refused", refused)
}

func countStreams(n *Node, p *Node) int {
	c := 0
	for _, conn := range n.Host().Network().ConnsToPeer(p.PeerID()) {
		c += len(conn.GetStreams())
	}
	return c
}
