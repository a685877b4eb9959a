package chain

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	"github.com/cometbft/cometbft/abci/example/kvstore"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/internal/testutil"
)

// waitTimeout bounds every wait in these tests: generous, for a loaded 2-core machine.
const waitTimeout = 60 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("CHAIN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func persistentKVStore(_ int, home string) (abci.Application, error) {
	db, err := dbm.NewGoLevelDB("kvstore", filepath.Join(home, "app"))
	if err != nil {
		return nil, err
	}
	return kvstore.NewApplication(db), nil
}

// commitTx submits key=value to n and waits until it is committed.
func commitTx(t *testing.T, n *Node, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := n.Client().BroadcastTxCommit(ctx, kvstore.NewTx(key, value))
	if err != nil {
		t.Fatalf("commit %s=%s on %s: %v", key, value, n.Config().Moniker, err)
	}
	if res.CheckTx.Code != 0 || res.TxResult.Code != 0 || res.Height == 0 {
		t.Fatalf("commit %s=%s: check %d, exec %d, height %d", key, value, res.CheckTx.Code, res.TxResult.Code, res.Height)
	}
	return res.Height
}

// queryKV returns n's application value for key.
func queryKV(t *testing.T, n *Node, key string) string {
	t.Helper()
	res, err := n.Client().ABCIQuery(context.Background(), "/store", []byte(key))
	if err != nil {
		t.Fatalf("query %s on %s: %v", key, n.Config().Moniker, err)
	}
	return string(res.Response.Value)
}

// knownLeaks are goroutines that CometBFT v0.38 never ends: each consensus WAL opens
// an autofile whose SIGHUP watcher and close ticker outlive it (autofile.Group.Close
// closes the file, not the AutoFile), and os/signal's loop starts once per process.
var knownLeaks = []string{"cometbft/libs/autofile.", "os/signal.loop"}

// soloConfig is the configuration of a one-node network on free loopback
// ports, with fast blocks, in a temporary home (no genesis yet).
func soloConfig(t *testing.T, moniker string) Config {
	t.Helper()
	base, err := FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig(t.TempDir())
	c.Moniker = moniker
	c.P2PListen = fmt.Sprintf("tcp://127.0.0.1:%d", base)
	c.RPCListen = fmt.Sprintf("tcp://127.0.0.1:%d", base+1)
	c.FastBlocks = true
	c.DisablePEX = true // its address book is saved after Stop, racing TempDir's cleanup
	return c
}

func TestSingleNode(t *testing.T) {
	c := soloConfig(t, "solo")

	if _, err := Start(c, kvstore.NewInMemoryApplication(), testLogger(t)); err == nil || !strings.Contains(err.Error(), "no genesis") {
		t.Fatalf("start without genesis: %v", err)
	}
	id, err := InitHome(c)
	if err != nil {
		t.Fatal(err)
	}
	g := Genesis{ChainID: "solo", Validators: []GenesisValidator{{Name: "solo", PubKey: id.ValidatorPubKey, Power: 1}}}
	if err := WriteGenesis(c.Home, g); err != nil {
		t.Fatal(err)
	}
	n, err := Start(c, kvstore.NewInMemoryApplication(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n.NodeID() != id.NodeID || n.P2PAddress() != id.NodeID+"@"+strings.TrimPrefix(c.P2PListen, "tcp://") {
		t.Errorf("node id %s, p2p address %s", n.NodeID(), n.P2PAddress())
	}
	commitTx(t, n, "solo", "yes")
	if v := queryKV(t, n, "solo"); v != "yes" {
		t.Errorf("query: %q", v)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// The home is released: the same home starts again in this process.
	n, err = Start(c, kvstore.NewInMemoryApplication(), testLogger(t))
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestLocalNet(t *testing.T) {
	baseline, _ := testutil.Goroutines(knownLeaks...)
	cfg := LocalNetConfig{
		Dir:        t.TempDir(),
		Validators: 4,
		ChainID:    "thingnet-test",
		FastBlocks: true,
		NewApp:     persistentKVStore,
	}
	net, err := StartLocalNet(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = net.Stop() }()
	nodes := net.Nodes()

	start := time.Now()
	commitTx(t, nodes[0], "first", "1")
	t.Logf("first tx committed after %v", time.Since(start))

	// One of four validators down: the other three are more than 2/3 and keep going.
	if err := net.StopNode(3); err != nil {
		t.Fatal(err)
	}
	var h int64
	for i := range 3 {
		h = commitTx(t, nodes[i%3], fmt.Sprintf("down%d", i), "3")
	}
	t.Logf("committed at height %d with node3 down", h)

	// node3 catches up: blocks and application state.
	start = time.Now()
	if err := net.StartNode(3); err != nil {
		t.Fatal(err)
	}
	node3 := net.Node(3)
	testutil.WaitFor(t, testutil.Context(t, waitTimeout), "node3 to catch up", func() bool { return node3.Height() >= h })
	testutil.WaitFor(t, testutil.Context(t, waitTimeout), "node3's state", func() bool { return queryKV(t, node3, "down2") == "3" })
	t.Logf("node3 caught up to %d in %v", h, time.Since(start))
	commitTx(t, node3, "back", "4")

	// Stop everything and resume from the same directory.
	if err := net.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := net.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	var old int64
	for _, n := range net.Nodes() {
		old = max(old, n.Height())
	}
	cfg.ChainID = ""   // resume whatever Dir holds
	cfg.AppState = nil // ignored on resume anyway
	cfg.BasePort = 0   // new ports: peers are rewritten from the config on every start
	start = time.Now()
	net, err = StartLocalNet(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	defer func() { _ = net.Stop() }()
	for i, n := range net.Nodes() {
		if n.Comet().GenesisDoc().ChainID != "thingnet-test" {
			t.Errorf("node%d chain id %q", i, n.Comet().GenesisDoc().ChainID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := net.WaitForHeight(ctx, old); err != nil {
		t.Fatalf("resume at height %d: %v", old, err)
	}
	if v := queryKV(t, net.Node(2), "first"); v != "1" {
		t.Errorf("first=%q after resume", v)
	}
	if h := commitTx(t, net.Node(1), "resumed", "5"); h <= old {
		t.Errorf("committed at %d after resuming from %d", h, old)
	}
	t.Logf("resumed and committed in %v", time.Since(start))
	start = time.Now()
	if err := net.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %v", time.Since(start))
	testutil.CheckGoroutines(t, baseline, knownLeaks...)
	t.Logf("goroutines back to baseline %v after stop", time.Since(start))
}

func TestLocalNetRejectsOtherChain(t *testing.T) {
	cfg := LocalNetConfig{
		Dir: t.TempDir(), Validators: 1, ChainID: "a", FastBlocks: true,
		NewApp: func(int, string) (abci.Application, error) { return kvstore.NewInMemoryApplication(), nil },
	}
	net, err := StartLocalNet(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := net.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg.ChainID = "b"
	if _, err := StartLocalNet(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), `holds chain "a"`) {
		t.Fatalf("got %v", err)
	}
	cfg.ChainID, cfg.Validators = "a", 2
	if _, err := StartLocalNet(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "1 validators") {
		t.Fatalf("got %v", err)
	}
}

// TestIndexAfterCrash: a node whose index missed committed blocks (killed
// between commit and indexing; here its index is deleted outright) finds
// every transaction by hash again once restarted.
func TestIndexAfterCrash(t *testing.T) {
	c := soloConfig(t, "indexed")
	id, err := InitHome(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteGenesis(c.Home, Genesis{ChainID: "indexed", Validators: []GenesisValidator{{Name: "solo", PubKey: id.ValidatorPubKey, Power: 1}}}); err != nil {
		t.Fatal(err)
	}
	app, err := persistentKVStore(0, c.Home) // the node does not own it: one for both runs
	if err != nil {
		t.Fatal(err)
	}
	start := func() *Node {
		t.Helper()
		n, err := Start(c, app, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	var txs []types.Tx
	for i := range 3 {
		k, v := fmt.Sprintf("k%d", i), "v"
		commitTx(t, n, k, v)
		txs = append(txs, kvstore.NewTx(k, v))
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	cc := c.withDefaults().cometConfig()
	if got, err := indexReplay(cc, testLogger(t)); err != nil || got != 0 {
		t.Fatalf("a cleanly stopped node re-indexed %d blocks (%v); want 0", got, err)
	}
	if err := os.RemoveAll(filepath.Join(cc.DBDir(), "tx_index.db")); err != nil {
		t.Fatal(err)
	}
	n = start()
	defer n.Stop()
	for i, tx := range txs {
		r, err := n.Client().Tx(context.Background(), tx.Hash(), false)
		if err != nil {
			t.Fatalf("tx %d after restart: %v", i, err)
		}
		if r.TxResult.Code != 0 || r.Height == 0 {
			t.Errorf("tx %d: code %d height %d", i, r.TxResult.Code, r.Height)
		}
	}
}
