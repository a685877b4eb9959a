package chain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
)

// DefaultLocalChainID is the chain id of a LocalNet whose config names none.
const DefaultLocalChainID = "thingnet-local"

// LocalNetConfig describes N validators on 127.0.0.1 with their homes under Dir/node<i>.
type LocalNetConfig struct {
	Dir        string
	Validators int
	ChainID    string // default DefaultLocalChainID; when resuming, empty means "whatever Dir holds"
	// BasePort: node i uses BasePort+10*i for p2p and +1 for RPC; +2..+9 are left for the
	// application's own ports. 0 picks one with FreePortBase.
	BasePort   int
	AppState   json.RawMessage // app_state of a new chain; ignored when resuming
	FastBlocks bool
	LogLevel   string

	// NewApp returns the application of node i, on every start of that node. If the
	// application is an io.Closer, the LocalNet closes it after the node stops.
	NewApp func(i int, home string) (abci.Application, error)
}

// LocalNet is N validators on 127.0.0.1 with their homes under Dir/node<i>.
type LocalNet struct {
	cfg     LocalNetConfig
	logger  *slog.Logger
	configs []Config

	mu       sync.Mutex
	nodes    []*Node
	apps     []abci.Application
	starting []bool
	closed   bool
}

// StartLocalNet initialises the homes and genesis the first time (a second call with
// the same Dir resumes the same chain: keys and genesis are never regenerated),
// starts all nodes, and returns once all are started.
func StartLocalNet(c LocalNetConfig, logger *slog.Logger) (*LocalNet, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.BasePort == 0 {
		base, err := FreePortBase(c.Validators)
		if err != nil {
			return nil, err
		}
		c.BasePort = base
	}
	l := &LocalNet{
		cfg:     c,
		logger:  logger,
		configs: make([]Config, c.Validators),
		nodes:   make([]*Node, c.Validators),
		apps:    make([]abci.Application, c.Validators),
	}
	l.starting = make([]bool, c.Validators)
	ids := make([]NodeIdentity, c.Validators)
	for i := range c.Validators {
		l.configs[i] = c.nodeConfig(i)
		id, err := InitHome(l.configs[i])
		if err != nil {
			return nil, fmt.Errorf("chain: local net node %d: %w", i, err)
		}
		ids[i] = id
	}
	for i := range c.Validators {
		for j := range c.Validators {
			if j != i {
				l.configs[i].PersistentPeers = append(l.configs[i].PersistentPeers,
					fmt.Sprintf("%s@127.0.0.1:%d", ids[j].NodeID, c.BasePort+10*j))
			}
		}
	}
	if err := l.ensureGenesis(ids); err != nil {
		return nil, err
	}
	if err := l.startAll(); err != nil {
		return nil, errors.Join(err, l.Stop())
	}
	return l, nil
}

func (c LocalNetConfig) validate() error {
	switch {
	case c.Dir == "":
		return errors.New("chain: LocalNetConfig.Dir is empty")
	case c.Validators < 1:
		return fmt.Errorf("chain: LocalNetConfig.Validators is %d, want at least 1", c.Validators)
	case c.BasePort < 0 || c.BasePort+10*c.Validators > 65536:
		return fmt.Errorf("chain: LocalNetConfig.BasePort %d: ports for %d nodes do not fit below 65536", c.BasePort, c.Validators)
	case c.NewApp == nil:
		return errors.New("chain: LocalNetConfig.NewApp is nil")
	}
	return nil
}

func (c LocalNetConfig) home(i int) string { return filepath.Join(c.Dir, fmt.Sprintf("node%d", i)) }

// nodeConfig is node i's configuration, without its peers.
func (c LocalNetConfig) nodeConfig(i int) Config {
	base := c.BasePort + 10*i
	return Config{
		Home:              c.home(i),
		Moniker:           fmt.Sprintf("node%d", i),
		P2PListen:         fmt.Sprintf("tcp://127.0.0.1:%d", base),
		RPCListen:         fmt.Sprintf("tcp://127.0.0.1:%d", base+1),
		FastBlocks:        c.FastBlocks,
		CreateEmptyBlocks: true,
		AllowDuplicateIP:  true,
		DisablePEX:        true, // every peer is a persistent peer
		LogLevel:          c.LogLevel,
	}
}

// ensureGenesis writes the genesis of a new net, or checks the one Dir holds.
func (l *LocalNet) ensureGenesis(ids []NodeIdentity) error {
	homes := make([]string, len(ids))
	for i := range homes {
		homes[i] = l.cfg.home(i)
	}
	return EnsureNetGenesis(homes, ids, l.cfg.ChainID, l.cfg.AppState)
}

// EnsureNetGenesis writes the genesis of a new net of validators in homes
// (node i is validator "node<i>" of ids[i], power 10; chainID "" is
// DefaultLocalChainID), or checks the one the homes hold against their keys
// and chainID ("" accepts any). Node 0's file is written first and copied to
// the others, so that an interrupted first start is completed, not
// restarted, by the next.
func EnsureNetGenesis(homes []string, ids []NodeIdentity, chainID string, appState json.RawMessage) error {
	if len(homes) == 0 || len(homes) != len(ids) {
		return fmt.Errorf("chain: %d homes for %d node identities", len(homes), len(ids))
	}
	dir := filepath.Dir(homes[0])
	doc, err := ReadGenesis(homes[0])
	switch {
	case errors.Is(err, fs.ErrNotExist):
		g := Genesis{ChainID: chainID, AppState: appState}
		if g.ChainID == "" {
			g.ChainID = DefaultLocalChainID
		}
		for i, id := range ids {
			g.Validators = append(g.Validators, GenesisValidator{
				Name: fmt.Sprintf("node%d", i), PubKey: id.ValidatorPubKey, Power: 10,
			})
		}
		if err := WriteGenesis(homes[0], g); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if chainID != "" && doc.ChainID != chainID {
			return fmt.Errorf("chain: %s holds chain %q, not %q", dir, doc.ChainID, chainID)
		}
		if len(doc.Validators) != len(ids) {
			return fmt.Errorf("chain: %s holds a net of %d validators, not %d", dir, len(doc.Validators), len(ids))
		}
		for i, v := range doc.Validators {
			if !bytes.Equal(v.PubKey.Bytes(), ids[i].ValidatorPubKey) {
				return fmt.Errorf("chain: genesis validator %d in %s is not node%d's key", i, dir, i)
			}
		}
	}
	want, err := os.ReadFile(genesisPath(homes[0]))
	if err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	for _, home := range homes[1:] {
		have, err := os.ReadFile(genesisPath(home))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := writeGenesisFile(home, want); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("chain: %w", err)
		case !bytes.Equal(have, want):
			return fmt.Errorf("chain: %s differs from %s", genesisPath(home), genesisPath(homes[0]))
		}
	}
	return nil
}

// startAll starts every node at once: a node that replays blocks into its
// application on start would otherwise hold up the others.
func (l *LocalNet) startAll() error {
	errs := make([]error, len(l.nodes))
	var wg sync.WaitGroup
	for i := range l.nodes {
		wg.Go(func() { errs[i] = l.StartNode(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Nodes returns the nodes by index. A stopped node stays in its place (Running reports
// false) until StartNode replaces it.
func (l *LocalNet) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Node(nil), l.nodes...)
}

// Node returns node i, or nil if i is out of range or the node never started.
func (l *LocalNet) Node(i int) *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < 0 || i >= len(l.nodes) {
		return nil
	}
	return l.nodes[i]
}

// StartNode starts node i (again) with a new application from NewApp.
func (l *LocalNet) StartNode(i int) error {
	if i < 0 || i >= len(l.configs) {
		return fmt.Errorf("chain: no node %d in a net of %d", i, len(l.configs))
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return errors.New("chain: local net is stopped")
	case l.starting[i] || l.apps[i] != nil:
		l.mu.Unlock()
		return fmt.Errorf("chain: node %d is already running", i)
	}
	l.starting[i] = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.starting[i] = false
		l.mu.Unlock()
	}()

	home := l.configs[i].Home
	app, err := l.cfg.NewApp(i, home)
	if err != nil {
		return fmt.Errorf("chain: node %d: new application: %w", i, err)
	}
	n, err := Start(l.configs[i], app, l.logger.With("node", i))
	if err != nil {
		return errors.Join(fmt.Errorf("chain: node %d: %w", i, err), closeApp(app))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed { // Stop ran meanwhile
		return errors.Join(errors.New("chain: local net is stopped"), n.Stop(), closeApp(app))
	}
	l.nodes[i], l.apps[i] = n, app
	return nil
}

// StopNode stops node i and closes its application; stopping a stopped node does nothing.
func (l *LocalNet) StopNode(i int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < 0 || i >= len(l.nodes) {
		return fmt.Errorf("chain: no node %d in a net of %d", i, len(l.nodes))
	}
	return l.stopNodeLocked(i)
}

func (l *LocalNet) stopNodeLocked(i int) error {
	n, app := l.nodes[i], l.apps[i]
	if n == nil || app == nil {
		return nil
	}
	l.apps[i] = nil
	err := n.Stop()
	return errors.Join(err, closeApp(app))
}

// Stop stops all nodes (at once) and closes their applications. It is idempotent.
func (l *LocalNet) Stop() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	errs := make([]error, len(l.nodes))
	var wg sync.WaitGroup
	for i := range l.nodes {
		wg.Go(func() { errs[i] = l.stopNodeLocked(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitForHeight waits until every running node's block store reaches height h.
func (l *LocalNet) WaitForHeight(ctx context.Context, h int64) error {
	return waitFor(ctx, func() bool {
		for _, n := range l.Nodes() {
			if n != nil && n.Running() && n.Height() < h {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond every 20ms until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func closeApp(app abci.Application) error {
	if c, ok := app.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("chain: close application: %w", err)
		}
	}
	return nil
}
