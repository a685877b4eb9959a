// Package devnet runs a whole local thingnet network in one process: N
// validating nodes on 127.0.0.1, each a node.DevConfig started by the node
// package like any other node, and a demo organisation with its admin key.
// A second start with the same home resumes the same chain.
package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/events"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/record"
)

// Defaults of a devnet.
const (
	DefaultChainID    = "thingnet-devnet"
	DefaultValidators = 4
	DefaultBasePort   = 26600
	DemoOrg           = "demo"
	DemoAdminKey      = "demo-admin"
	DemoCredits       = 1_000_000 // the demo organisation's credits at genesis
	manifestFile      = "devnet.json"
)

// Config describes a devnet. Zero values get defaults.
type Config struct {
	Home       string // everything lives here; required
	Validators int
	ChainID    string
	BasePort   int  // node i: p2p BasePort+10i, CometBFT RPC +1, API +2, MQTT +3, CoAP +4 (UDP), mesh +5 (TCP and QUIC) (node.DevConfig); 0 = DefaultBasePort (tests: chain.FreePortBase)
	FastBlocks bool // short consensus timeouts (tests, benchmarks)
	NoSync     bool // tests only: gateways do not fsync their data logs
	// KeepVersions is how many past versions of the ledger state each node
	// keeps (0: the node default, 1,000); tests set it small to show that
	// proofs do not depend on pruned versions.
	KeepVersions int64
	// Governance is the network's membership and budget rules (nil: open
	// organisation creation, no budgets — a devnet is for trying things).
	Governance *record.Governance
	// Limits bound each device at every gateway (zero:
	// ratelimit.DefaultLimits()); SourceLimits each source address (zero:
	// Limits). Every simulated device and CLI of a devnet sends from
	// 127.0.0.1: raise SourceLimits (SourceLimitsFor) for a fleet of more
	// than a few dozen devices; each device stays bound by Limits.
	Limits, SourceLimits ratelimit.Limits
	Logger               *slog.Logger
	// Progress, if set, is told each step of Start as it begins: step done
	// of total (counting from 0), and what it is (e.g. a progress bar).
	Progress func(done, total int, step string)
}

// SourceLimitsFor are per-source limits for rate envelopes/s from one
// address (burst: that many at once): bytes at 4 KiB per envelope (a
// batch of 100 readings is under 3 KiB), connections at a tenth of the
// rate (at least 1/s, burst 3), packets as ratelimit.DefaultLimits.
func SourceLimitsFor(rate float64, burst int) ratelimit.Limits {
	l := ratelimit.DefaultLimits()
	l.MsgsPerSec, l.Burst = rate, burst
	l.BytesPerSec, l.ByteBurst = rate*4096, max(burst*4096, l.MaxPacket)
	l.ConnectsPerSec, l.ConnectBurst = max(rate/10, 1), max(burst/10, 3)
	return l
}

// manifest records what a devnet was created with, so a restart resumes it.
type manifest struct {
	ChainID    string `json:"chain_id"`
	Validators int    `json:"validators"`
	BasePort   int    `json:"base_port"`
}

// Devnet is a running local network.
type Devnet struct {
	cfg     Config
	net     *node.Net
	log     *slog.Logger
	Resumed bool // the home held a devnet already

	gwKeys []*identity.Key
	buses  []*events.Bus // node i's event bus, kept across restarts
}

// GatewayKey is the keystore name of node i's gateway key.
func GatewayKey(i int) string { return fmt.Sprintf("gateway-%d", i) }

// NodeConfig is node i's configuration in a devnet of c (BasePort, FastBlocks
// and the limits applied; not the persistent peers, which Start adds).
func NodeConfig(c Config, i int) node.Config {
	nc := node.DevConfig(i, c.BasePort)
	nc.Gateway.Key = GatewayKey(i)
	if c.FastBlocks {
		nc.Consensus.FastBlocks = true
		nc.Consensus.TimeoutCommit = node.Duration{}
	}
	if c.KeepVersions > 0 {
		nc.Ledger.KeepVersions = c.KeepVersions
	}
	if c.Limits != (ratelimit.Limits{}) {
		nc.Gateway.Limits = node.LimitsConfigOf(c.Limits)
	}
	if c.SourceLimits != (ratelimit.Limits{}) {
		nc.Gateway.SourceLimits = node.LimitsConfigOf(c.SourceLimits)
	}
	return nc
}

// Start creates the devnet on first use, or resumes it, and starts every node.
func Start(c Config) (*Devnet, error) {
	if c.Home == "" {
		return nil, errors.New("devnet: Config.Home is empty")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	m, resumed, err := loadOrCreateManifest(c)
	if err != nil {
		return nil, err
	}
	c.ChainID, c.Validators, c.BasePort = m.ChainID, m.Validators, m.BasePort
	var progressMu sync.Mutex
	progress := func(done int, step string) {
		if c.Progress != nil {
			progressMu.Lock()
			defer progressMu.Unlock()
			c.Progress(done, c.Validators+2, step)
		}
	}
	progress(0, "keys: demo admin and gateways")
	admin, err := demoKey(c.Home, DemoAdminKey)
	if err != nil {
		return nil, err
	}
	gen := ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: DemoOrg, Name: "Demo organisation", Admins: []string{admin.ID()}}},
		Balances:   []ledger.GenesisBalance{{Account: "org:" + DemoOrg, Amount: DemoCredits}}, // credits to try agreements with
		Governance: c.Governance}
	d := &Devnet{cfg: c, log: c.Logger, Resumed: resumed, gwKeys: make([]*identity.Key, c.Validators), buses: make([]*events.Bus, c.Validators)}
	nodes := make([]node.Config, c.Validators)
	for i := range c.Validators {
		if d.gwKeys[i], err = demoKey(c.Home, GatewayKey(i)); err != nil {
			return nil, err
		}
		d.buses[i] = events.NewBus(0)
		nodes[i] = NodeConfig(c, i)
		// The api label tells clients where the gateway answers
		// (readings query --network asks every labelled gateway).
		gen.Devices = append(gen.Devices, ledger.GenesisDevice{ID: d.gwKeys[i].ID(), Org: DemoOrg, Class: record.ClassGateway,
			Labels: map[string]string{client.GatewayAPILabel: "http://" + nodes[i].API.Listen}})
	}
	state, err := json.Marshal(gen)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.Home, "nodes")
	for i := range c.Validators {
		if err := moveOldLayout(filepath.Join(dir, fmt.Sprintf("node%d", i))); err != nil {
			return nil, err
		}
	}
	progress(1, fmt.Sprintf("nodes: %d validators, each with its ledger, CometBFT, gateway, MQTT, CoAP, mesh and API", c.Validators))
	started := 0
	d.net, err = node.StartNet(node.NetConfig{
		Dir: dir, ChainID: c.ChainID, AppState: state, Nodes: nodes, Logger: c.Logger,
		Options: func(i int) []node.Option {
			opts := []node.Option{node.WithGatewayKey(d.gwKeys[i]), node.WithEvents(d.buses[i])}
			if c.NoSync {
				opts = append(opts, node.WithNoSync())
			}
			return opts
		},
		Started: func(i int) {
			progressMu.Lock()
			started++
			done := started
			progressMu.Unlock()
			progress(1+done, fmt.Sprintf("node %d started", i))
		},
	})
	if err != nil {
		return nil, err
	}
	progress(c.Validators+2, "started")
	return d, nil
}

// moveOldLayout moves a node's gateway log, mailboxes and files from where
// devnets kept them before their nodes were started by the node package
// (<node home>/gateway, ...) to where a node keeps them (<node
// home>/data/gateway, ...), so that an older devnet resumes with its data.
func moveOldLayout(home string) error {
	for _, name := range []string{"gateway", "mailbox", "files"} {
		from, to := filepath.Join(home, name), filepath.Join(home, "data", name)
		if _, err := os.Stat(from); err != nil {
			continue
		}
		if _, err := os.Stat(to); err == nil {
			continue
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("devnet: moving %s to %s: %w (move it by hand, or start a new devnet with another --home)", from, to, err)
		}
	}
	return nil
}

// Node is node i (nil while it is stopped).
func (d *Devnet) Node(i int) *node.Node { return d.net.Node(i) }

// NodeHome is node i's home: CometBFT's config/ (its validator key) and data/.
func (d *Devnet) NodeHome(i int) string { return d.net.Home(i) }

// Events is node i's event bus (GET /v1/events on its API); it stays the
// same across StopNode and StartNode.
func (d *Devnet) Events(i int) *events.Bus { return d.buses[i] }

// API is node i's API server (nil while the node is stopped).
func (d *Devnet) API(i int) *api.Server {
	if n := d.Node(i); n != nil {
		return n.API()
	}
	return nil
}

// Files is node i's file service (nil while the node is stopped).
func (d *Devnet) Files(i int) *files.Service {
	if n := d.Node(i); n != nil {
		return n.Files()
	}
	return nil
}

// Mesh is node i's mesh node (nil while the node is stopped).
func (d *Devnet) Mesh(i int) *mesh.Node {
	if n := d.Node(i); n != nil {
		return n.Mesh()
	}
	return nil
}

// Gateway is node i's gateway (nil while the node is stopped).
func (d *Devnet) Gateway(i int) *gateway.Gateway {
	if n := d.Node(i); n != nil {
		return n.Gateway()
	}
	return nil
}

func loadOrCreateManifest(c Config) (manifest, bool, error) {
	path := filepath.Join(c.Home, manifestFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var m manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return m, false, fmt.Errorf("devnet: %s is damaged (%v); remove %s to start a new devnet", path, err, c.Home)
		}
		if c.Validators != 0 && c.Validators != m.Validators {
			return m, false, fmt.Errorf("devnet: %s holds a devnet of %d validators, not %d; use another --home to start a new one", c.Home, m.Validators, c.Validators)
		}
		if c.BasePort != 0 && c.BasePort != m.BasePort {
			m.BasePort = c.BasePort
		}
		return m, true, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return manifest{}, false, err
	}
	m := manifest{ChainID: c.ChainID, Validators: c.Validators, BasePort: c.BasePort}
	if m.ChainID == "" {
		m.ChainID = DefaultChainID
	}
	if m.Validators == 0 {
		m.Validators = DefaultValidators
	}
	if m.BasePort == 0 {
		m.BasePort = DefaultBasePort
	}
	if err := os.MkdirAll(c.Home, 0o700); err != nil {
		return m, false, fmt.Errorf("devnet: creating %s: %w", c.Home, err)
	}
	b, _ = json.MarshalIndent(m, "", "  ")
	return m, false, os.WriteFile(path, b, 0o600)
}

// Keystore is the devnet's keystore (demo admin key, and keys users make).
func Keystore(home string) identity.Keystore {
	return identity.Keystore{Dir: filepath.Join(home, "keys")}
}

// demoKey loads a devnet key (the demo admin's, the gateways'), creating
// it on first use. Its passphrase is empty: it guards a local demo network,
// nothing else.
func demoKey(home, name string) (*identity.Key, error) {
	ks := Keystore(home)
	k, err := ks.Load(name, nil)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, identity.ErrKeyNotFound) {
		return nil, fmt.Errorf("devnet: key %s: %w", name, err)
	}
	if k, err = identity.GenerateKey(identity.Ed25519); err != nil {
		return nil, err
	}
	if _, err := ks.Save(name, k, nil); err != nil {
		return nil, fmt.Errorf("devnet: saving key %s: %w", name, err)
	}
	return k, nil
}

// ChainID is the devnet's chain id.
func (d *Devnet) ChainID() string { return d.cfg.ChainID }

// Size is the number of validators.
func (d *Devnet) Size() int { return d.cfg.Validators }

// Home is the devnet's directory.
func (d *Devnet) Home() string { return d.cfg.Home }

// APIURL is node i's API base URL.
func (d *Devnet) APIURL(i int) string { return "http://" + d.net.Config(i).API.Listen }

// RPCURL is node i's CometBFT RPC URL.
func (d *Devnet) RPCURL(i int) string {
	return "http://" + strings.TrimPrefix(d.net.Config(i).RPC.Listen, "tcp://")
}

// MQTTAddr is node i's MQTT broker address.
func (d *Devnet) MQTTAddr(i int) string { return d.net.Config(i).MQTT.Listen }

// CoAPAddr is node i's CoAP (UDP) address.
func (d *Devnet) CoAPAddr(i int) string { return d.net.Config(i).CoAP.Listen }

// P2PAddr is node i's CometBFT p2p address.
func (d *Devnet) P2PAddr(i int) string {
	return strings.TrimPrefix(d.net.Config(i).P2P.Listen, "tcp://")
}

// App is node i's ledger application (nil while the node is stopped).
func (d *Devnet) App(i int) *ledger.App {
	if n := d.Node(i); n != nil {
		return n.App()
	}
	return nil
}

// Net is the devnet's network of nodes.
func (d *Devnet) Net() *node.Net { return d.net }

// StopNode stops node i, as a crash would from the others' view.
func (d *Devnet) StopNode(i int) error { return d.net.StopNode(i) }

// StartNode restarts a stopped node i; it catches up from its peers.
func (d *Devnet) StartNode(i int) error { return d.net.StartNode(i) }

// Stop stops every node. It is idempotent.
func (d *Devnet) Stop() error { return d.net.Stop() }

// WaitForHeight waits until every running node has committed height h.
func (d *Devnet) WaitForHeight(ctx context.Context, h int64) error {
	return d.net.WaitForHeight(ctx, h)
}
