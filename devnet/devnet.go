// Package devnet runs a whole local thingnet network in one process: N
// validating nodes on 127.0.0.1, each with its ledger, CometBFT and API, and
// a demo organisation with its admin key. A second start with the same home
// resumes the same chain.
package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/events"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/gateway/coap"
	"github.com/thingnet/thingnet/gateway/mqtt"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/metrics"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/web"
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
	BasePort   int  // node i: p2p BasePort+10i, CometBFT RPC +1, API +2, MQTT +3, CoAP +4 (UDP), mesh +5 (TCP and QUIC); 0 = DefaultBasePort (tests: chain.FreePortBase)
	FastBlocks bool // short consensus timeouts (tests, benchmarks)
	NoSync     bool // tests only: gateways do not fsync their data logs
	// Limits bound each device at every gateway (zero:
	// ratelimit.DefaultLimits()); SourceLimits each source address (zero:
	// Limits). Every simulated device and CLI of a devnet sends from
	// 127.0.0.1: raise SourceLimits (SourceLimitsFor) for a fleet of more
	// than a few dozen devices; each device stays bound by Limits.
	Limits, SourceLimits ratelimit.Limits
	Logger               *slog.Logger
	LogLevel             string // CometBFT's verbosity; see chain.Config.LogLevel
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
	net     *chain.LocalNet
	log     *slog.Logger
	Resumed bool // the home held a devnet already

	gwKeys []*identity.Key

	mu      sync.Mutex
	apps    []*ledger.App
	apis    []*api.Server
	gws     []*gateway.Gateway
	brokers []*mqtt.Broker
	coaps   []*coap.Server
	meshes  []*mesh.Node
	files   []*files.Service     // node i's file service, on its mesh host
	buses   []*events.Bus        // node i's event bus, kept across restarts
	watches []context.CancelFunc // stop node i's block watcher
}

// GatewayKey is the keystore name of node i's gateway key.
func GatewayKey(i int) string { return fmt.Sprintf("gateway-%d", i) }

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
	progress := func(done int, step string) {
		if c.Progress != nil {
			c.Progress(done, c.Validators+2, step)
		}
	}
	progress(0, "keys: demo admin and gateways")
	admin, err := demoKey(c.Home, DemoAdminKey)
	if err != nil {
		return nil, err
	}
	gen := ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: DemoOrg, Name: "Demo organisation", Admins: []string{admin.ID()}}},
		Balances: []ledger.GenesisBalance{{Account: "org:" + DemoOrg, Amount: DemoCredits}}} // credits to try agreements with
	gwKeys := make([]*identity.Key, c.Validators)
	for i := range gwKeys {
		if gwKeys[i], err = demoKey(c.Home, GatewayKey(i)); err != nil {
			return nil, err
		}
		gen.Devices = append(gen.Devices, ledger.GenesisDevice{ID: gwKeys[i].ID(), Org: DemoOrg, Class: ledger.ClassGateway})
	}
	state, err := json.Marshal(gen)
	if err != nil {
		return nil, err
	}
	d := &Devnet{cfg: c, log: c.Logger, Resumed: resumed, gwKeys: gwKeys,
		apps: make([]*ledger.App, c.Validators), apis: make([]*api.Server, c.Validators), gws: make([]*gateway.Gateway, c.Validators), meshes: make([]*mesh.Node, c.Validators),
		brokers: make([]*mqtt.Broker, c.Validators), coaps: make([]*coap.Server, c.Validators),
		files: make([]*files.Service, c.Validators),
		buses: make([]*events.Bus, c.Validators), watches: make([]context.CancelFunc, c.Validators)}
	for i := range d.buses {
		d.buses[i] = events.NewBus(0)
	}
	progress(1, fmt.Sprintf("consensus: %d CometBFT validators", c.Validators))
	d.net, err = chain.StartLocalNet(chain.LocalNetConfig{
		Dir: filepath.Join(c.Home, "nodes"), Validators: c.Validators, ChainID: c.ChainID, BasePort: c.BasePort,
		AppState: state, FastBlocks: c.FastBlocks, LogLevel: c.LogLevel,
		NewApp: d.newApp,
	}, c.Logger)
	if err != nil {
		return nil, err
	}
	for i := range c.Validators {
		progress(2+i, fmt.Sprintf("node %d: gateway, MQTT, CoAP, API", i))
		if err := d.startServices(i); err != nil {
			return nil, errors.Join(err, d.Stop())
		}
	}
	progress(c.Validators+2, "started")
	return d, nil
}

func (d *Devnet) newApp(i int, home string) (abci.Application, error) {
	app, err := ledger.NewApp(ledger.Config{Dir: filepath.Join(home, "data", "ledger"), Logger: d.log.With("node", i, "module", "ledger")})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.apps[i] = app
	d.mu.Unlock()
	return app, nil
}

// startServices starts node i's gateway and API, once its CometBFT node runs.
func (d *Devnet) startServices(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	node := d.net.Node(i)
	gw, err := gateway.New(gateway.Config{
		Dir: filepath.Join(node.Config().Home, "gateway"), Key: d.gwKeys[i], NoSync: d.cfg.NoSync,
		Limits: d.cfg.Limits, SourceLimits: d.cfg.SourceLimits,
		Logger: d.log.With("node", i, "module", "gateway"),
	}, gateway.NodeLedger{App: d.apps[i], Comet: node.Client()})
	if err != nil {
		return err
	}
	broker, err := gw.StartMQTT(gateway.MQTTConfig{Listen: d.MQTTAddr(i)})
	if err != nil {
		return errors.Join(err, gw.Close())
	}
	cs, err := gw.StartCoAP(gateway.CoAPConfig{Listen: d.CoAPAddr(i)})
	if err != nil {
		return errors.Join(err, broker.Close(), gw.Close())
	}
	app := d.apps[i]
	var boot []string
	for j := range i {
		if d.meshes[j] != nil {
			boot = append(boot, d.meshes[j].Addrs()[0])
		}
	}
	mn, err := mesh.New(mesh.Config{
		Key: d.gwKeys[i], Authority: mesh.NewLedgerAuthority(func() (*ledger.State, error) { return app.View(0) }, app.ChainID),
		Listen:    []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", d.cfg.BasePort+10*i+5), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", d.cfg.BasePort+10*i+5)},
		Bootstrap: boot, Relay: true, DHT: true,
		Mailboxes: &mesh.MailboxConfig{Dir: filepath.Join(node.Config().Home, "mailbox"), NoSync: d.cfg.NoSync},
		Handler: func(_ context.Context, m *mesh.Delivery) error {
			d.buses[i].Publish("message", map[string]any{"from": m.From, "to": m.To, "kind": m.Kind, "seq": m.Seq, "via": m.Via})
			return nil
		},
		Logger: d.log.With("node", i, "module", "mesh"),
	})
	if err != nil {
		return errors.Join(err, cs.Close(), broker.Close(), gw.Close())
	}
	fs, err := files.New(files.Config{Host: mn.Host(), Routing: mn.Routing(), Dir: filepath.Join(node.Config().Home, "files"),
		CacheBytes: 256 << 20, Ledger: &files.Ledger{ID: gw.ID(), View: func() (*ledger.State, error) { return app.View(0) }, Enqueue: gw.Enqueue},
		Logger: d.log.With("node", i, "module", "files")})
	if err != nil {
		return errors.Join(err, mn.Close(), cs.Close(), broker.Close(), gw.Close())
	}
	s := api.New(d.apps[i], node.Client(), d.log.With("node", i, "module", "api"))
	gw.Mount(s, d.apps[i])
	mesh.MountAPI(s, mn, gw.Authenticate)
	files.MountAPI(s, fs, gw.Authenticate)
	reg := metrics.New()
	reg.Ledger(d.apps[i])
	reg.CheckTxRejections(d.apps[i].Rejections)
	reg.Gateway(gw)
	reg.MQTT(broker)
	reg.CoAP(cs)
	reg.Mesh(mn)
	ctx, cancel := context.WithCancel(context.Background())
	watch, err := events.Watch(ctx, node.Client(), d.buses[i], d.log.With("node", i, "module", "events"))
	if err != nil {
		cancel()
		return errors.Join(err, fs.Close(), mn.Close(), cs.Close(), broker.Close(), gw.Close())
	}
	reg.Chain(watch)
	reg.Events(d.buses[i], s.ServeEvents(d.buses[i]))
	reg.API(s)
	s.MountHandler("GET /metrics", reg.Handler())
	web.Mount(s)
	if err := s.Start(fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+10*i+2)); err != nil {
		cancel()
		return errors.Join(err, fs.Close(), mn.Close(), cs.Close(), broker.Close(), gw.Close())
	}
	d.meshes[i], d.files[i] = mn, fs
	d.watches[i] = cancel
	d.apis[i], d.gws[i], d.brokers[i], d.coaps[i] = s, gw, broker, cs
	return nil
}

// stopServices stops node i's API and gateway.
func (d *Devnet) stopServices(i int) error {
	d.mu.Lock()
	s, gw, broker, cs, mn := d.apis[i], d.gws[i], d.brokers[i], d.coaps[i], d.meshes[i]
	d.apis[i], d.gws[i], d.brokers[i], d.coaps[i], d.meshes[i] = nil, nil, nil, nil, nil
	fs := d.files[i]
	d.files[i] = nil
	if d.watches[i] != nil {
		d.watches[i]()
		d.watches[i] = nil
	}
	d.mu.Unlock()
	var errs []error
	if fs != nil {
		errs = append(errs, fs.Close())
	}
	if mn != nil {
		errs = append(errs, mn.Close())
	}
	if cs != nil {
		errs = append(errs, cs.Close())
	}
	if broker != nil {
		errs = append(errs, broker.Close())
	}
	if s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.Shutdown(ctx))
		cancel()
	}
	if gw != nil {
		errs = append(errs, gw.Close())
	}
	return errors.Join(errs...)
}

// Events is node i's event bus (GET /v1/events on its API); it stays the
// same across StopNode and StartNode.
func (d *Devnet) Events(i int) *events.Bus { return d.buses[i] }

// API is node i's API server (nil while the node is stopped).
func (d *Devnet) API(i int) *api.Server {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.apis[i]
}

// Files is node i's file service (nil while the node is stopped).
func (d *Devnet) Files(i int) *files.Service {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.files[i]
}

// Mesh is node i's mesh node (nil while the node is stopped).
func (d *Devnet) Mesh(i int) *mesh.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meshes[i]
}

// Gateway is node i's gateway (nil while the node is stopped).
func (d *Devnet) Gateway(i int) *gateway.Gateway {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gws[i]
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
func (d *Devnet) APIURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", d.cfg.BasePort+10*i+2)
}

// RPCURL is node i's CometBFT RPC URL.
func (d *Devnet) RPCURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", d.cfg.BasePort+10*i+1)
}

// MQTTAddr is node i's MQTT broker address.
func (d *Devnet) MQTTAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+10*i+3) }

// CoAPAddr is node i's CoAP (UDP) address.
func (d *Devnet) CoAPAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+10*i+4) }

// P2PAddr is node i's CometBFT p2p address.
func (d *Devnet) P2PAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+10*i) }

// App is node i's ledger application (nil while the node is stopped).
func (d *Devnet) App(i int) *ledger.App {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.apps[i]
}

// Net is the underlying CometBFT network.
func (d *Devnet) Net() *chain.LocalNet { return d.net }

// StopNode stops node i (API and consensus), as a crash would from the others' view.
func (d *Devnet) StopNode(i int) error {
	return errors.Join(d.stopServices(i), d.net.StopNode(i))
}

// StartNode restarts a stopped node i; it catches up from its peers.
func (d *Devnet) StartNode(i int) error {
	if err := d.net.StartNode(i); err != nil {
		return err
	}
	return d.startServices(i)
}

// Stop stops every node. It is idempotent.
func (d *Devnet) Stop() error {
	var errs []error
	for i := range d.cfg.Validators {
		errs = append(errs, d.stopServices(i))
	}
	return errors.Join(append(errs, d.net.Stop())...)
}

// WaitForHeight waits until every running node has committed height h.
func (d *Devnet) WaitForHeight(ctx context.Context, h int64) error {
	return d.net.WaitForHeight(ctx, h)
}
