package mesh

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
)

// TestTopics: P — S1 — S2 in a line, and U (registered, no grant) next to
// S1. P's messages reach S2 through S1; U's stop at S1.
func TestTopics(t *testing.T) {
	l := newTestLedger(t, "acme")
	const topic = "acme/alerts"
	res := TopicResource(topic)
	pKey := l.device("acme", "sensor", identity.Ed25519)
	uKey := l.device("acme", "sensor", identity.Ed25519)
	s1Key := l.device("acme", "gateway", identity.P256)
	s2Key := l.device("acme", "display", identity.Ed25519)
	l.grant("acme", "device:"+pKey.ID(), message.KindPublish, res)
	for _, k := range []*identity.Key{s1Key, s2Key} {
		l.grant("acme", "device:"+k.ID(), ActionSubscribe, res)
	}
	withPubSub := func(b *inbox) func(*Config) {
		return func(c *Config) {
			c.NoPubSub = false
			if b != nil {
				c.Handler = b.handler
			}
		}
	}
	box1, box2 := newInbox(), newInbox()
	s1 := startNode(t, l, s1Key, withPubSub(box1))
	s2 := startNode(t, l, s2Key, withPubSub(box2))
	p := startNode(t, l, pKey, withPubSub(nil))
	u := startNode(t, l, uKey, withPubSub(nil))
	// A dishonest peer: a registered device without a grant running plain
	// gossipsub, with no validation.
	rogue := startNode(t, l, l.device("acme", "sensor", identity.Ed25519), nil)
	rps, err := pubsub.NewGossipSub(context.Background(), rogue.Host())
	if err != nil {
		t.Fatal(err)
	}
	rtopic, err := rps.Join(s1.pubsubTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	connect(t, rogue, s1)
	connect(t, s2, s1)
	connect(t, p, s1)
	connect(t, u, s1)
	for _, n := range []*Node{s1, s2} {
		if err := n.Subscribe(topic); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Subscribe(topic); err == nil {
		t.Fatal("a device without a subscribe grant subscribed")
	}
	// Wait until the gossipsub mesh has formed.
	ts, err := p.join(topic)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(ts.t.ListPeers()) > 0 })
	s1t, _ := s1.join(topic)
	waitFor(t, 10*time.Second, func() bool { return len(s1t.t.ListPeers()) >= 1 })
	// Knowing S2 subscribed is not enough: S1 forwards to the peers of its
	// topic mesh, which it grafts at its next heartbeat (every second).
	time.Sleep(2200 * time.Millisecond)

	ctx := ctxT(t)
	// An honest node does not even publish what it may not.
	if err := u.Publish(ctx, topic, "text/plain", []byte("fake alarm")); err == nil {
		t.Fatal("U published without a grant")
	}
	waitFor(t, 10*time.Second, func() bool { return len(rtopic.ListPeers()) > 0 })
	for i := 0; i < 5; i++ {
		env, err := rogue.Compose(message.Outgoing{Topic: topic, Body: []byte("fake alarm")})
		if err != nil {
			t.Fatal(err)
		}
		if err := rtopic.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, topic, "text/plain", []byte("smoke in hall 3")); err != nil {
		t.Fatal(err)
	}
	d := box2.next(t, 10*time.Second)
	if string(d.Plaintext) != "smoke in hall 3" || d.From != pKey.ID() || d.Via != "topic" {
		t.Fatalf("S2 got %q from %s", d.Plaintext, d.From)
	}
	time.Sleep(500 * time.Millisecond)
	for name, b := range map[string]*inbox{"S1": box1, "S2": box2} {
		b.mu.Lock()
		for _, d := range b.got {
			if d.From == uKey.ID() || d.From == rogue.ID() {
				t.Errorf("%s delivered the unauthorized publisher's message", name)
			}
		}
		b.mu.Unlock()
	}
	if s1.Stats().Refused["not_granted"] == 0 {
		t.Fatalf("S1 refused nothing: %+v", s1.Stats().Refused)
	}
	if s2.Stats().Refused["not_granted"] != 0 {
		t.Fatalf("an unauthorized message reached S2: %+v", s2.Stats().Refused)
	}
}

func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
