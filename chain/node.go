package chain

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/rpc/client/local"
)

// StopTimeout bounds Node.Stop.
const StopTimeout = 30 * time.Second

// Node is a running CometBFT node around an in-process ABCI application
// (one lock for all its ABCI connections, or one per connection for a
// ConcurrentApp).
//
// The node does not own the application: stopping the node does not close it.
type Node struct {
	cfg    Config // with defaults
	comet  *node.Node
	client *local.Local
	dbs    *dbSet

	stopping *atomic.Bool // quiets CometBFT's shutdown errors
	stopOnce sync.Once
	stopErr  error
}

// Start loads config from c (config.toml is regenerated from c, never read), creates
// what InitHome creates if it is missing, starts the node and returns once it is
// started: listening on its P2P and RPC addresses and dialling its persistent peers.
// The home must already hold a genesis (WriteGenesis); if its genesis time is in the
// future, Start waits for it.
func Start(c Config, app abci.Application, logger *slog.Logger) (*Node, error) {
	if app == nil {
		return nil, errors.New("chain: Start: nil application")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c = c.withDefaults()
	if _, err := InitHome(c); err != nil {
		return nil, err
	}
	cc := c.cometConfig()
	if err := cc.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("chain: CometBFT rejects the configuration of %s: %w", c.Home, err)
	}
	if _, err := os.Stat(cc.GenesisFile()); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("chain: no genesis at %s; write one with WriteGenesis", cc.GenesisFile())
	}
	nodeKey, err := p2p.LoadNodeKey(cc.NodeKeyFile())
	if err != nil {
		return nil, fmt.Errorf("chain: node key: %w", err)
	}
	pv, err := loadFilePV(cc.PrivValidatorKeyFile(), cc.PrivValidatorStateFile())
	if err != nil {
		return nil, err
	}

	if _, err := indexReplay(cc, logger); err != nil {
		return nil, err
	}
	dbs := &dbSet{}
	clog := newCometLogger(logger, c.LogLevel)
	cn, err := node.NewNode(cc, pv, nodeKey,
		clientCreator(app),
		node.DefaultGenesisDocProviderFunc(cc),
		dbs.provider,
		node.DefaultMetricsProvider(cc.Instrumentation),
		clog,
	)
	if err != nil {
		// NewNode has started the ABCI connections, event bus and indexer by now, and
		// gives no handle on them: their few goroutines leak. The databases would stay
		// locked, which would prevent a retry; those at least are closed here.
		_ = dbs.closeAll()
		return nil, fmt.Errorf("chain: create node in %s: %w", c.Home, err)
	}
	if err := cn.Start(); err != nil {
		// A failed Start leaves the node "not started", so Stop would do nothing;
		// undo what OnStart and NewNode did directly.
		cn.OnStop()
		_ = cn.ProxyApp().Stop()
		_ = dbs.closeAll()
		return nil, fmt.Errorf("chain: start node in %s: %w", c.Home, err)
	}
	return &Node{cfg: c, comet: cn, client: local.New(cn), dbs: dbs, stopping: clog.stopping}, nil
}

// Stop stops the node and waits, at most StopTimeout, until it has shut down and
// released its databases. It is idempotent: later calls return the first call's result.
//
// One write can follow it: unless DisablePEX is set, CometBFT v0.38 saves
// config/addrbook.json from a goroutine that it gives no way to wait for, a moment
// after Stop returns.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		n.stopping.Store(true)
		done := make(chan error, 1)
		go func() { done <- n.stop() }()
		select {
		case n.stopErr = <-done:
		case <-time.After(StopTimeout):
			n.stopErr = fmt.Errorf("chain: node %s did not stop within %v", n.cfg.Moniker, StopTimeout)
		}
	})
	return n.stopErr
}

func (n *Node) stop() error {
	var errs []error
	if err := n.comet.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("chain: stop node %s: %w", n.cfg.Moniker, err))
	}
	// CometBFT v0.38 does not stop the ABCI connections, nor close the indexer's
	// database; without this, the node's home stays locked for this process.
	if err := n.comet.ProxyApp().Stop(); err != nil {
		errs = append(errs, fmt.Errorf("chain: stop ABCI connections of %s: %w", n.cfg.Moniker, err))
	}
	if err := n.dbs.closeAll(); err != nil {
		errs = append(errs, fmt.Errorf("chain: close databases of %s: %w", n.cfg.Moniker, err))
	}
	return errors.Join(errs...)
}

// Comet returns the CometBFT node, for what this package does not wrap.
func (n *Node) Comet() *node.Node { return n.comet }

// Client returns an RPC client that calls the node in-process.
//
// Its BroadcastTxCommit counts against the node's max_subscriptions_per_client (5) as
// a single client: run at most that many at once per node, or use BroadcastTxSync.
func (n *Node) Client() *local.Local { return n.client }

// Config returns the node's configuration, defaults applied.
func (n *Node) Config() Config { return n.cfg }

// Running reports whether the node is started and not stopped.
func (n *Node) Running() bool { return n.comet.IsRunning() }

// Height returns the height of the latest block in the node's block store.
func (n *Node) Height() int64 { return n.comet.BlockStore().Height() }

// NodeID returns the node's p2p id.
func (n *Node) NodeID() string { return string(n.comet.NodeInfo().ID()) }

// P2PAddress returns "nodeid@host:port" for peers to dial: the external address if
// set, else the listen address, with an unspecified host (0.0.0.0, ::) as 127.0.0.1.
func (n *Node) P2PAddress() string {
	addr := n.cfg.ExternalAddress
	if addr == "" {
		addr = n.cfg.P2PListen
	}
	host, port, err := splitHostPort(strings.TrimPrefix(addr, "tcp://"))
	if err != nil { // Validate has checked both
		return n.NodeID() + "@" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return n.NodeID() + "@" + net.JoinHostPort(host, strconv.Itoa(port))
}
