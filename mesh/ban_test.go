package mesh

import (
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
)

// TestBanReportsDevice: a registered device whose messages keep being
// refused is banned and reported through OnBan (for the gateway's
// quarantine); an unregistered key is banned but not reported.
func TestBanReportsDevice(t *testing.T) {
	l := newTestLedger(t, "acme")
	bKey := l.device("acme", "actuator", identity.Ed25519)
	cKey := l.device("acme", "sensor", identity.Ed25519) // registered, no grant
	reported := make(chan string, 4)
	b := startNode(t, l, bKey, func(c *Config) {
		c.MaxRefusals = 20
		c.OnBan = func(device string) { reported <- device }
	})
	ctx := ctxT(t)
	for _, k := range []*identity.Key{mustKey(t, identity.Ed25519), cKey} {
		a := startNode(t, l, k, nil)
		connect(t, a, b)
		for i := 0; i < 40; i++ {
			env, _ := a.Compose(message.Outgoing{To: bKey.ID(), Body: []byte("let me in")})
			if _, err := a.Send(ctx, env); err != nil {
				break // banned: cut off
			}
		}
	}
	select {
	case d := <-reported:
		if d != cKey.ID() {
			t.Fatalf("reported %s; want the registered device %s", d, cKey.ID())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the banned registered device was not reported")
	}
	select {
	case d := <-reported:
		t.Fatalf("reported %s as well; the unregistered key has no device to report", d)
	case <-time.After(500 * time.Millisecond):
	}
	if st := b.Stats(); st.Bans != 2 {
		t.Fatalf("bans %d; want 2", st.Bans)
	}
}

// TestDeviceConnectionsProtected: the connections of a registered device
// that talks to a gateway (deposit, wake channel) are exempt from the
// connection manager's trimming; an unregistered key's are not, and a
// banned device loses the exemption.
func TestDeviceConnectionsProtected(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{NoSync: true})
	s.g.gater.max = 3
	ctx := ctxT(t)
	a := startNode(t, s.l, s.aKey, nil)
	b := s.startB()
	stranger := startNode(t, s.l, mustKey(t, identity.Ed25519), nil)
	c := startNode(t, s.l, s.cKey, nil) // registered, no grant: banned below
	for _, x := range []*Node{a, b, stranger, c} {
		connect(t, x, s.g)
	}
	deposit := func(x *Node) {
		env, _ := x.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("x")})
		_, _ = x.Deposit(ctx, s.gKey.ID(), env)
	}
	deposit(a)
	deposit(stranger)
	if _, err := b.Sleep(ctx, s.gKey.ID()); err != nil {
		t.Fatal(err)
	}
	deposit(c)
	cm := s.g.Host().ConnManager()
	waitFor(t, 5*time.Second, func() bool { return cm.IsProtected(a.PeerID(), deviceTag) && cm.IsProtected(b.PeerID(), deviceTag) })
	if cm.IsProtected(stranger.PeerID(), deviceTag) {
		t.Error("an unregistered key's connection is protected")
	}
	if !cm.IsProtected(c.PeerID(), deviceTag) {
		t.Error("a registered device's connection is not protected before its ban")
	}
	for i := 0; i < 5; i++ {
		deposit(c)
	}
	waitFor(t, 5*time.Second, func() bool { return s.g.Stats().Bans >= 1 })
	if cm.IsProtected(c.PeerID(), deviceTag) {
		t.Error("a banned device's connections are still protected")
	}
}
