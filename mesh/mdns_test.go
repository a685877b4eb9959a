package mesh

import (
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
)

// TestMDNSDiscovery: two devices with no bootstrap peers find each other
// on the local network and a message goes directly from one to the other.
// It runs in a network namespace of its own, so that mDNS multicast stays
// on this machine.
func TestMDNSDiscovery(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	l := newTestLedger(t, "acme")
	aKey := l.device("acme", "sensor", identity.Ed25519)
	bKey := l.device("acme", "lamp", identity.Ed25519)
	l.grant("acme", "device:"+aKey.ID(), message.KindMessage, "device:"+bKey.ID())
	box := newInbox()
	mdns := func(b *inbox) func(*Config) {
		return func(c *Config) {
			c.MDNS = true
			c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
			if b != nil {
				c.Handler = b.handler
			}
		}
	}
	a := startNode(t, l, aKey, mdns(nil))
	b := startNode(t, l, bKey, mdns(box))
	// mDNS queries at start, after 4 s, then backs off (zeroconf): a first
	// query can miss a peer that starts at the same moment.
	waitFor(t, 45*time.Second, func() bool { return len(a.Host().Network().ConnsToPeer(b.PeerID())) > 0 })
	env, err := a.Compose(message.Outgoing{To: bKey.ID(), Body: []byte("found you")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Send(ctxT(t), env)
	if err != nil || res.Err() != nil {
		t.Fatalf("%v %v", err, res)
	}
	if d := box.next(t, 5*time.Second); string(d.Plaintext) != "found you" {
		t.Fatalf("got %q", d.Plaintext)
	}
	if a.Stats().MDNSFound == 0 && b.Stats().MDNSFound == 0 {
		t.Fatal("connected, but not through mDNS")
	}
}
