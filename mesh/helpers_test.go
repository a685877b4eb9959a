package mesh

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/meshtest"
	"github.com/thingnet/thingnet/record"
)

const testChain = meshtest.ChainID

// testLedger is a real ledger App (meshtest.Ledger) that fails the test
// on errors; the mesh reads it through a LedgerAuthority.
type testLedger struct {
	t *testing.T
	*meshtest.Ledger
	admins map[string]*identity.Key
	auth   *LedgerAuthority
}

func newTestLedger(t *testing.T, orgs ...string) *testLedger {
	t.Helper()
	ml, err := meshtest.New(t.TempDir(), orgs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Close() })
	return &testLedger{t: t, Ledger: ml, admins: ml.Admins,
		auth: NewLedgerAuthority(ml.View, func() string { return testChain })}
}

func mustKey(t testing.TB, alg identity.Algorithm) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (l *testLedger) must(err error) {
	l.t.Helper()
	if err != nil {
		l.t.Fatal(err)
	}
}

// device registers a new device of org (class "sensor", or "gateway").
func (l *testLedger) device(org, class string, alg identity.Algorithm) *identity.Key {
	l.t.Helper()
	k, err := l.Device(org, class, alg)
	l.must(err)
	return k
}

func (l *testLedger) grant(org, subject, action, resource string) {
	l.t.Helper()
	l.must(l.Grant(org, subject, action, resource))
}

func (l *testLedger) setStatus(org, device string, to record.Status) {
	l.t.Helper()
	l.must(l.SetStatus(org, device, to))
}

func (l *testLedger) labels(org, device string, labels map[string]string) {
	l.t.Helper()
	l.must(l.Labels(org, device, labels))
}

// inbox collects delivered messages.
type inbox struct {
	mu  sync.Mutex
	got []*Delivery
	ch  chan *Delivery
}

func newInbox() *inbox { return &inbox{ch: make(chan *Delivery, 100_000)} }

func (b *inbox) handler(_ context.Context, d *Delivery) error {
	b.mu.Lock()
	b.got = append(b.got, d)
	b.mu.Unlock()
	b.ch <- d
	return nil
}

func (b *inbox) next(t *testing.T, within time.Duration) *Delivery {
	t.Helper()
	select {
	case d := <-b.ch:
		return d
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
		return nil
	}
}

func (b *inbox) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

// startNode starts a mesh node on loopback for key.
func startNode(t *testing.T, l *testLedger, key *identity.Key, mod func(*Config)) *Node {
	t.Helper()
	c := Config{Key: key, Authority: l.auth, Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, NoPubSub: true}
	if mod != nil {
		mod(&c)
	}
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func connect(t *testing.T, a, b *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
}
