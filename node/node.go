package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/ledger"
)

// Node is a running thingnet node.
type Node struct {
	home  string
	app   *ledger.App
	chain *chain.Node
	api   *api.Server
	log   *slog.Logger
}

// Init prepares a node home: CometBFT keys and config, and thingnet.toml
// (written only if missing). It returns the node's identity, which the
// genesis needs.
func Init(home string, c Config) (chain.NodeIdentity, error) {
	if err := c.Validate(); err != nil {
		return chain.NodeIdentity{}, err
	}
	id, err := chain.InitHome(c.chainConfig(home))
	if err != nil {
		return id, err
	}
	if _, err := LoadConfig(home); err != nil {
		if werr := WriteConfig(home, c); werr != nil {
			return id, werr
		}
	}
	return id, nil
}

// Start opens the ledger state, starts CometBFT and the API.
func Start(home string, c Config, logger *slog.Logger) (*Node, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	app, err := ledger.NewApp(ledger.Config{
		Dir:          filepath.Join(home, "data", "ledger"),
		Logger:       logger.With("module", "ledger"),
		KeepVersions: c.Ledger.KeepVersions,
	})
	if err != nil {
		return nil, err
	}
	cn, err := chain.Start(c.chainConfig(home), app, logger.With("module", "comet"))
	if err != nil {
		app.Close()
		return nil, err
	}
	n := &Node{home: home, app: app, chain: cn, log: logger}
	if c.API.Listen != "" {
		n.api = api.New(app, cn.Client(), logger.With("module", "api"))
		if err := n.api.Start(c.API.Listen); err != nil {
			return nil, errors.Join(err, n.Close())
		}
		logger.Info("api listening", "addr", "http://"+n.api.Addr())
	}
	return n, nil
}

// App is the node's ledger application.
func (n *Node) App() *ledger.App { return n.app }

// Chain is the node's CometBFT node.
func (n *Node) Chain() *chain.Node { return n.chain }

// APIAddr is the API's host:port ("" when disabled).
func (n *Node) APIAddr() string {
	if n.api == nil {
		return ""
	}
	return n.api.Addr()
}

// Close stops the API, CometBFT and the ledger, in that order. It is idempotent.
func (n *Node) Close() error {
	var errs []error
	if n.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, n.api.Shutdown(ctx))
		cancel()
	}
	if n.chain != nil {
		errs = append(errs, n.chain.Stop())
	}
	if err := n.app.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing ledger: %w", err))
	}
	return errors.Join(errs...)
}
