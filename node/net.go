package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/thingnet/thingnet/chain"
)

// NetConfig is a network of validators on one machine, each a node started
// by Start from its own configuration: a devnet, a test network.
type NetConfig struct {
	Dir string // node i lives in Dir/node<i>; a second start resumes the chain it holds
	// ChainID of a new chain (default chain.DefaultLocalChainID); when
	// resuming, "" accepts whatever Dir holds.
	ChainID  string
	AppState json.RawMessage // the ledger's genesis state of a new chain
	// Nodes[i] is node i's configuration (DevConfig, TestConfig); each
	// lists the others as CometBFT persistent peers.
	Nodes []Config
	// Options, if set, returns node i's Start options.
	Options func(i int) []Option
	Logger  *slog.Logger // node i logs with "node", i
	// Started, if set, is called (on node i's starting goroutine) once
	// node i has started.
	Started func(i int)
}

// Net is a running network of nodes on one machine.
type Net struct {
	cfg NetConfig
	log *slog.Logger

	mu       sync.Mutex
	nodes    []*Node // nil while stopped
	starting []bool
	closed   bool
}

// StartNet initialises the nodes' homes and the genesis the first time (a
// second call with the same Dir resumes the same chain: keys and genesis
// are never regenerated), starts every node at once (a node that replays
// blocks on start would otherwise hold up the others), then connects their
// mesh nodes to each other.
func StartNet(c NetConfig) (*Net, error) {
	if c.Dir == "" || len(c.Nodes) == 0 {
		return nil, fmt.Errorf("node: NetConfig.Dir %q with %d nodes: name a directory and at least one node", c.Dir, len(c.Nodes))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Nodes = append([]Config(nil), c.Nodes...)
	n := &Net{cfg: c, log: c.Logger, nodes: make([]*Node, len(c.Nodes)), starting: make([]bool, len(c.Nodes))}
	homes := make([]string, len(c.Nodes))
	ids := make([]chain.NodeIdentity, len(c.Nodes))
	for i, nc := range c.Nodes {
		homes[i] = n.Home(i)
		if err := nc.Validate(); err != nil {
			return nil, fmt.Errorf("node: net node %d: %w", i, err)
		}
		id, err := chain.InitHome(nc.chainConfig(homes[i]))
		if err != nil {
			return nil, fmt.Errorf("node: net node %d: %w", i, err)
		}
		ids[i] = id
	}
	for i := range c.Nodes {
		peers := []string(nil)
		for j, nc := range c.Nodes {
			if j != i {
				peers = append(peers, ids[j].NodeID+"@"+strings.TrimPrefix(nc.P2P.Listen, "tcp://"))
			}
		}
		n.cfg.Nodes[i].P2P.PersistentPeers = peers
	}
	if err := chain.EnsureNetGenesis(homes, ids, c.ChainID, c.AppState); err != nil {
		return nil, err
	}
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Go(func() { errs[i] = n.start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, n.Stop())
	}
	for i := range c.Nodes {
		n.joinMesh(i, i) // with the nodes before it: all pairs once
	}
	return n, nil
}

// Home is node i's home directory.
func (n *Net) Home(i int) string { return filepath.Join(n.cfg.Dir, fmt.Sprintf("node%d", i)) }

// Size is the number of nodes.
func (n *Net) Size() int { return len(n.cfg.Nodes) }

// Config is node i's configuration, persistent peers included.
func (n *Net) Config(i int) Config { return n.cfg.Nodes[i] }

// SetConfig changes the configuration node i starts with next (StartNode);
// a running node keeps its own.
func (n *Net) SetConfig(i int, c Config) { n.cfg.Nodes[i] = c }

// Node is node i (nil while it is stopped).
func (n *Net) Node(i int) *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[i]
}

// start starts node i, which must be stopped.
func (n *Net) start(i int) error {
	if i < 0 || i >= len(n.nodes) {
		return fmt.Errorf("node: no node %d in a net of %d", i, len(n.nodes))
	}
	n.mu.Lock()
	switch {
	case n.closed:
		n.mu.Unlock()
		return errors.New("node: the net is stopped")
	case n.starting[i] || n.nodes[i] != nil:
		n.mu.Unlock()
		return fmt.Errorf("node: net node %d is already running", i)
	}
	n.starting[i] = true
	n.mu.Unlock()
	var opts []Option
	if n.cfg.Options != nil {
		opts = n.cfg.Options(i)
	}
	nd, err := Start(n.Home(i), n.cfg.Nodes[i], n.log.With("node", i), opts...)
	n.mu.Lock()
	n.starting[i] = false
	closed := n.closed
	if err == nil && !closed {
		n.nodes[i] = nd
	}
	n.mu.Unlock()
	switch {
	case err != nil:
		return fmt.Errorf("node: net node %d: %w", i, err)
	case closed: // Stop ran meanwhile
		return errors.Join(errors.New("node: the net is stopped"), nd.Close())
	}
	if n.cfg.Started != nil {
		n.cfg.Started(i)
	}
	return nil
}

// joinMesh connects node i's mesh node to those of the running nodes
// 0..upto-1 (all others when upto is Size). A peer out of reach is logged,
// as an unreachable mesh bootstrap peer is.
func (n *Net) joinMesh(i, upto int) {
	self := n.Node(i)
	if self == nil || self.Mesh() == nil {
		return
	}
	for j := range upto {
		other := n.Node(j)
		if j == i || other == nil || other.Mesh() == nil || len(other.Mesh().Addrs()) == 0 {
			continue
		}
		addr := other.Mesh().Addrs()[0]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := self.Mesh().Connect(ctx, addr)
		cancel()
		if err != nil {
			n.log.Warn("mesh: peer unreachable", "node", i, "peer", addr, "err", err)
		}
	}
}

// StartNode starts a stopped node i again; it catches up from its peers.
func (n *Net) StartNode(i int) error {
	if err := n.start(i); err != nil {
		return err
	}
	n.joinMesh(i, n.Size())
	return nil
}

// StopNode stops node i, as a crash would from the others' view; stopping
// a stopped node does nothing.
func (n *Net) StopNode(i int) error {
	if i < 0 || i >= len(n.nodes) {
		return fmt.Errorf("node: no node %d in a net of %d", i, len(n.nodes))
	}
	n.mu.Lock()
	nd := n.nodes[i]
	n.nodes[i] = nil
	n.mu.Unlock()
	if nd == nil {
		return nil
	}
	return nd.Close()
}

// Stop stops every node, at once: first what takes requests on every
// node, then the gateways, consensus and ledgers. It is idempotent.
func (n *Net) Stop() error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	// Every node's front first, while the chain still has its quorum: a
	// request in flight on one node (a tx waiting for its commit) must not
	// wait for consensus the others already left.
	// (CloseFront's error comes back from Close.)
	var wg sync.WaitGroup
	for i := range n.nodes {
		if nd := n.Node(i); nd != nil {
			wg.Go(func() { _ = nd.CloseFront() })
		}
	}
	wg.Wait()
	errs := make([]error, len(n.nodes))
	for i := range n.nodes {
		wg.Go(func() { errs[i] = n.StopNode(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitForHeight waits until every running node's block store holds height h.
func (n *Net) WaitForHeight(ctx context.Context, h int64) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		done := true
		for i := range n.nodes {
			if nd := n.Node(i); nd != nil && nd.Chain().Height() < h {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
