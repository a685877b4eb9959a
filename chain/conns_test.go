package chain

import (
	"sync/atomic"
	"testing"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	abci "github.com/cometbft/cometbft/abci/types"
)

// preCheckApp is a stateless ConcurrentApp (CometBFT's BaseApplication
// accepts and executes every tx) that counts PreCheckTx calls.
type preCheckApp struct {
	abci.BaseApplication
	prechecks *atomic.Int64
}

func (a *preCheckApp) PreCheckTx([]byte) { a.prechecks.Add(1) }

// TestConcurrentAppConnections: a ConcurrentApp gets a lock per ABCI
// connection and a PreCheckTx for each new tx on every node (submitted over
// RPC on one, gossiped to the others); other apps keep CometBFT's single
// lock.
func TestConcurrentAppConnections(t *testing.T) {
	var prechecks atomic.Int64
	if _, ok := clientCreator(kvstore.NewInMemoryApplication()).(connSyncCreator); ok {
		t.Fatal("clientCreator(kvstore) gives a lock per connection; want the single lock")
	}
	if _, ok := clientCreator(&preCheckApp{prechecks: &prechecks}).(connSyncCreator); !ok {
		t.Fatal("clientCreator(ConcurrentApp) keeps the single lock; want one per connection")
	}

	net, err := StartLocalNet(LocalNetConfig{
		Dir: t.TempDir(), Validators: 4, ChainID: "conns-test", FastBlocks: true,
		NewApp: func(int, string) (abci.Application, error) { return &preCheckApp{prechecks: &prechecks}, nil },
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = net.Stop() }()
	const txs = 5
	for i := range txs {
		commitTx(t, net.Nodes()[i%4], "k"+string(rune('a'+i)), "v")
	}
	// Each node pre-checks each new tx at most once (a node may commit a tx
	// before its gossip reaches it); the submitting node always does.
	if got := prechecks.Load(); got < txs || got > 4*txs {
		t.Fatalf("PreCheckTx called %d times for %d txs on 4 nodes; want %d to %d", got, txs, txs, 4*txs)
	}
}
