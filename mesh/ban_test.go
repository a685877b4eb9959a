package mesh

import (
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
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
			env, _ := a.Compose(Outgoing{To: bKey.ID(), Body: []byte("let me in")})
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
