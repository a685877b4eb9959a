package mesh

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
)

const testChain = "mesh-test"

// testLedger is a real ledger App driven block by block, as CometBFT
// would drive it, without a network: the mesh reads it through a
// LedgerAuthority.
type testLedger struct {
	t      *testing.T
	app    *ledger.App
	height int64
	nonces map[string]uint64
	admins map[string]*identity.Key // org -> admin
	auth   *LedgerAuthority
}

func newTestLedger(t *testing.T, orgs ...string) *testLedger {
	t.Helper()
	app, err := ledger.NewApp(ledger.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	l := &testLedger{t: t, app: app, nonces: map[string]uint64{}, admins: map[string]*identity.Key{}}
	var g ledger.GenesisState
	for _, o := range orgs {
		k := mustKey(t, identity.Ed25519)
		l.admins[o] = k
		g.Orgs = append(g.Orgs, ledger.GenesisOrg{ID: o, Admins: []string{k.ID()}})
	}
	raw, _ := json.Marshal(g)
	val := mustKey(t, identity.Ed25519)
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: testChain, AppStateBytes: raw, InitialHeight: 1,
		Validators: []abci.ValidatorUpdate{{PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: val.Public().Bytes}}, Power: 10}}}); err != nil {
		t.Fatal(err)
	}
	l.block()
	l.auth = NewLedgerAuthority(func() (*ledger.State, error) { return app.View(0) }, func() string { return testChain })
	return l
}

func mustKey(t testing.TB, alg identity.Algorithm) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (l *testLedger) block(txs ...[]byte) {
	l.t.Helper()
	l.height++
	res, err := l.app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: l.height, Txs: txs})
	if err != nil {
		l.t.Fatal(err)
	}
	for i, r := range res.TxResults {
		if r.Code != 0 {
			l.t.Fatalf("tx %d in block %d: code %d: %s", i, l.height, r.Code, r.Log)
		}
	}
	if _, err := l.app.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		l.t.Fatal(err)
	}
}

func (l *testLedger) do(key *identity.Key, m ledger.Msg) {
	l.t.Helper()
	l.nonces[key.ID()]++
	raw, err := ledger.NewTx(key, key.ID(), testChain, l.nonces[key.ID()], l.height+100, m)
	if err != nil {
		l.t.Fatal(err)
	}
	l.block(raw)
}

// device registers a new device of org (class "sensor", or "gateway").
func (l *testLedger) device(org, class string, alg identity.Algorithm) *identity.Key {
	l.t.Helper()
	k := mustKey(l.t, alg)
	proof, err := k.Sign(ledger.PossessionMessage(testChain, org, k.ID()))
	if err != nil {
		l.t.Fatal(err)
	}
	l.do(l.admins[org], &ledger.DeviceRegister{Org: org, Device: k.ID(), Class: class, Proof: proof})
	return k
}

func (l *testLedger) grant(org, subject, action, resource string) {
	l.t.Helper()
	l.do(l.admins[org], &ledger.GrantAdd{Grantor: "org:" + org, Subject: subject, Action: action, Resource: resource})
}

func (l *testLedger) setStatus(org, device string, to ledger.Status) {
	l.t.Helper()
	l.do(l.admins[org], ledger.NewDeviceStatus(device, to, "test"))
}

func (l *testLedger) labels(org, device string, labels map[string]string) {
	l.t.Helper()
	l.do(l.admins[org], &ledger.DeviceUpdate{Device: device, Labels: labels})
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
