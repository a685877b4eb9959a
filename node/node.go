package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/events"
	"github.com/thingnet/thingnet/export/exporters"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/fleet"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/gateway/coap"
	"github.com/thingnet/thingnet/gateway/modbus"
	"github.com/thingnet/thingnet/gateway/mqtt"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/identity/pkcs11"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/metrics"
	"github.com/thingnet/thingnet/rules"
	"github.com/thingnet/thingnet/web"
)

// Node is a running thingnet node.
type Node struct {
	home   string
	app    *ledger.App
	chain  *chain.Node
	api    *api.Server
	gw     *gateway.Gateway
	broker *mqtt.Broker
	coap   *coap.Server
	mesh   *mesh.Node
	files  *files.Service
	log    *slog.Logger
	events *events.Bus
	opts   options
	// stopEvents ends the watcher that publishes committed blocks.
	stopEvents    context.CancelFunc
	modbus        *modbus.Poller
	stopModbus    func()
	keyToken      *pkcs11.Token                 // the gateway key's token, if it is in one
	gwKey         *identity.Key                 // the gateway key (exports read as it by default)
	exports       atomic.Pointer[exporters.Set] // set once the API listens
	rules         *rules.Engine                 // [[rules]] and rules.d (rules.go)
	rulesOut      *rules.Dispatcher
	rulesConf     []rules.Rule // those of thingnet.toml
	rulesStore    rules.Store  // those added while running
	rulesMu       sync.Mutex   // serialises changes of the rule set
	rulesState    string       // the engine's saved state
	stopRules     func()
	stopRuleLoops func()
	rulesSkipped  func() int
	fleet         *fleet.Tracker // fleet.go
	census        *fleet.Census

	closeOnce sync.Once
	closeErr  error
	frontOnce sync.Once
	frontErr  error
}

// Option gives a node what it takes from its process rather than from its
// configuration file.
type Option func(*options)

type options struct {
	gatewayKey *identity.Key
	events     *events.Bus
	noSync     bool
}

// WithGatewayKey gives the node its gateway key itself, instead of loading
// gateway.key from the keystore (a devnet's keystore holds its gateways'
// keys with an empty passphrase).
func WithGatewayKey(k *identity.Key) Option { return func(o *options) { o.gatewayKey = k } }

// WithEvents makes the node publish its events on b, which may outlive the
// node: a devnet keeps each node's bus across restarts.
func WithEvents(b *events.Bus) Option { return func(o *options) { o.events = b } }

// WithNoSync is for tests only: the gateway's data log and the mailboxes
// are not fsynced, so a crash may lose what they acknowledged.
func WithNoSync() Option { return func(o *options) { o.noSync = true } }

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

// Start assembles and starts the node that c describes, living in home: the
// ledger, CometBFT, and, as configured, the gateway with its MQTT and CoAP
// servers, the mesh with mailboxes and files, the events watcher, and the
// API with metrics and the explorer, in that order. It is the only place
// that wires a node: devnets and test networks start theirs here too
// (DevConfig, TestConfig, StartNet).
func Start(home string, c Config, logger *slog.Logger, opts ...Option) (*Node, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.events == nil {
		o.events = events.NewBus(0)
	}
	lc, err := c.ledgerConfig(home) // config.go
	if err != nil {
		return nil, err
	}
	lc.Logger = logger.With("module", "ledger")
	app, err := ledger.NewApp(lc)
	if err != nil {
		return nil, err
	}
	cn, err := chain.Start(c.chainConfig(home), app, logger.With("module", "comet"))
	if err != nil {
		app.Close()
		return nil, err
	}
	app.SetBlockTimes(chain.BlockTimes(cn))
	n := &Node{home: home, app: app, chain: cn, log: logger, events: o.events, opts: o}
	if c.Gateway.Enabled {
		if err := n.startGateway(c); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	if c.API.Listen != "" {
		n.api = api.New(app, cn.Client(), logger.With("module", "api"))
		reg := metrics.New()
		reg.Ledger(app)
		reg.CheckTxRejections(app.Rejections)
		if n.gw != nil {
			n.gw.Mount(n.api, app)
			reg.Gateway(n.gw)
			reg.Register(n.rulesOut.Collector(n.rules, n.rulesSkipped))
			reg.Fleet(n.census.Summary)
			n.api.SetFleetCensus(n.census.Summary, n.fleet.Since)
			n.mountRules()
		}
		if n.broker != nil {
			reg.MQTT(n.broker)
		}
		if n.coap != nil {
			reg.CoAP(n.coap)
		}
		if n.mesh != nil {
			mesh.MountAPI(n.api, n.mesh)
			reg.Mesh(n.mesh)
			files.MountAPI(n.api, n.files)
		}
		ctx, cancel := context.WithCancel(context.Background())
		n.stopEvents = cancel
		watch, err := events.Watch(ctx, cn.Client(), n.events, logger.With("module", "events"))
		if err != nil {
			return nil, errors.Join(err, n.Close())
		}
		reg.Chain(watch)
		reg.Events(n.events, n.api.ServeEvents(n.events))
		reg.API(n.api)
		n.mountExports(reg)
		n.api.MountHandler("GET /metrics", reg.Handler())
		web.Mount(n.api)
		if err := n.api.Start(c.API.Listen); err != nil {
			return nil, errors.Join(err, n.Close())
		}
		logger.Info("api listening", "addr", "http://"+n.api.Addr())
		if err := n.startExports(c); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	return n, nil
}

// gatewayKey is the key given by WithGatewayKey, or gateway.key: a PKCS#11
// token URI (pkcs11:token=...;object=..., docs/devices.md), a key file, or
// a name in the keystore (passphrase: $THINGNET_GATEWAY_PASSPHRASE).
func (n *Node) gatewayKey(c Config) (*identity.Key, error) {
	if n.opts.gatewayKey != nil {
		return n.opts.gatewayKey, nil
	}
	if pkcs11.IsURI(c.Gateway.Key) { // a key in a token: it signs there while the node runs
		k, tok, err := pkcs11.Open(c.Gateway.Key)
		if err != nil {
			return nil, fmt.Errorf("gateway key: %w", err)
		}
		n.keyToken = tok
		return k, nil
	}
	ks := c.Gateway.Keystore
	if ks == "" {
		ks = filepath.Join(n.home, "keys")
	}
	pass := []byte(os.Getenv("THINGNET_GATEWAY_PASSPHRASE"))
	var key *identity.Key
	var err error
	if strings.ContainsRune(c.Gateway.Key, os.PathSeparator) {
		key, err = identity.LoadKeyFile(c.Gateway.Key, pass)
	} else {
		key, err = identity.Keystore{Dir: ks}.Load(c.Gateway.Key, pass)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway key %q: %w (create it with `thingnet keys new --keystore %s %s` and register it as a device of class gateway)", c.Gateway.Key, err, ks, c.Gateway.Key)
	}
	return key, nil
}

func (n *Node) startGateway(c Config) error {
	key, err := n.gatewayKey(c)
	if err != nil {
		return err
	}
	n.gw, err = gateway.New(gateway.Config{
		Dir: filepath.Join(n.home, "data", "gateway"), Key: key, AnchorInterval: c.Gateway.AnchorInterval.Duration, AnchorBudget: c.Gateway.AnchorBudget, NoSync: n.opts.noSync,
		RetentionInterval: c.Gateway.RetentionInterval.Duration,
		MaxSkew:           c.Gateway.MaxSkew.Duration, LateAfter: c.Gateway.LateAfter.Duration, NoRollups: c.Gateway.NoRollups,
		Limits: c.Gateway.Limits.limits(), SourceLimits: c.Gateway.sourceLimits(),
		Logger: n.log.With("module", "gateway"),
	}, gateway.NodeLedger{App: n.app, Comet: n.chain.Client()})
	if err != nil {
		return err
	}
	n.log.Info("gateway started", "id", key.ID(), "log_size", n.gw.Log().Size())
	n.gwKey = key
	if err := n.startModbus(c, key); err != nil {
		return err
	}
	if err := n.startRules(c, key); err != nil {
		return err
	}
	if c.MQTT.Listen != "" {
		if n.broker, err = n.gw.StartMQTT(gateway.MQTTConfig{Listen: c.MQTT.Listen, MaxClients: c.MQTT.MaxClients}); err != nil {
			return err
		}
		n.log.Info("mqtt listening", "addr", n.broker.Addr())
	}
	if c.CoAP.Listen != "" {
		if n.coap, err = n.gw.StartCoAP(gateway.CoAPConfig{Listen: c.CoAP.Listen}); err != nil {
			return err
		}
		n.log.Info("coap listening", "addr", n.coap.Addr())
	}
	if len(c.Mesh.Listen) > 0 {
		n.mesh, err = mesh.New(mesh.Config{
			Key: key, Authority: mesh.NewLedgerAuthority(func() (*ledger.State, error) { return n.app.View(0) }, n.app.ChainID),
			Listen: c.Mesh.Listen, Bootstrap: c.Mesh.Bootstrap, MDNS: c.Mesh.MDNS, DHT: c.Mesh.DHT, Relay: true,
			Mailboxes: &mesh.MailboxConfig{
				Dir:         filepath.Join(n.home, "data", "mailbox"),
				MaxMessages: c.Mesh.MailboxMessages, MaxBytes: c.Mesh.MailboxBytes,
				DownlinksPerDay: c.Mesh.DownlinksPerDay, SenderWakesPerDay: c.Mesh.SenderWakesPerDay,
				DownlinksPerClass: c.Mesh.DownlinksPerClass, NoSync: n.opts.noSync,
			},
			Handler: n.meshMessage,
			// A device banned for refused messages is an offender: quarantined
			// by its organisation's policy, as on the gateway's other paths.
			OnBan:  func(device string) { n.gw.ReportOffender(device, 100, "banned by the mesh for refused messages") },
			Logger: n.log.With("module", "mesh"),
		})
		if err != nil {
			return err
		}
		n.log.Info("mesh listening", "peer_id", n.mesh.PeerID(), "addrs", n.mesh.Addrs())
		if n.files, err = files.New(files.Config{Host: n.mesh.Host(), Routing: n.mesh.Routing(), Dir: filepath.Join(n.home, "data", "files"),
			CacheBytes: c.Mesh.FilesCacheMB << 20, ReprovideInterval: c.Mesh.FilesReprovideInterval.Duration,
			Ledger: &files.Ledger{ID: n.gw.ID(), View: func() (*ledger.State, error) { return n.app.View(0) }, Enqueue: n.gw.Enqueue},
			Logger: n.log.With("module", "files")}); err != nil {
			return err
		}
	}
	if n.files != nil {
		if err := n.gw.StartArchive(c.Gateway.Archive.gateway(true), segmentStore{n.files}); err != nil {
			return err
		}
	}
	return nil
}

// meshMessage receives messages addressed to the gateway itself: they are
// published as events.
func (n *Node) meshMessage(_ context.Context, d *mesh.Delivery) error {
	n.events.Publish("message", map[string]any{"from": d.From, "to": d.To, "kind": d.Kind, "seq": d.Seq, "via": d.Via})
	return nil
}

// Events is the node's event bus: publish what others may follow live
// (GET /v1/events).
func (n *Node) Events() *events.Bus { return n.events }

// Home is the node's home directory.
func (n *Node) Home() string { return n.home }

// API is the node's API server (nil when disabled).
func (n *Node) API() *api.Server { return n.api }

// Files is the node's file service (nil unless the gateway and mesh are on).
func (n *Node) Files() *files.Service { return n.files }

// Mesh is the node's mesh node (nil unless the gateway and mesh are on).
func (n *Node) Mesh() *mesh.Node { return n.mesh }

// Gateway is the node's gateway (nil unless enabled).
func (n *Node) Gateway() *gateway.Gateway { return n.gw }

// MQTTAddr is the MQTT broker's address ("" when off).
func (n *Node) MQTTAddr() string {
	if n.broker == nil {
		return ""
	}
	return n.broker.Addr()
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

// Close stops the node in the reverse of Start's order, the API first so
// that no request reaches a stopped part: the events watcher, the API (at
// most 5 s for requests in flight), files, mesh, CoAP, MQTT, the gateway,
// CometBFT (at most chain.StopTimeout) and the ledger. It is idempotent:
// later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = errors.Join(n.CloseFront(), n.closeBack()) })
	return n.closeErr
}

// CloseFront stops what takes requests from outside (the events watcher,
// Modbus polling, exports, the API, files, mesh, CoAP, MQTT and the rules)
// and leaves the gateway, CometBFT and the ledger running, so that requests
// in flight still see their transactions committed. A net of nodes stops
// every node's front before any node's consensus: a request waiting for a
// commit on one node would otherwise wait for a chain that lost its quorum.
// Close calls it; it is idempotent.
func (n *Node) CloseFront() error {
	n.frontOnce.Do(func() { n.frontErr = n.closeFront() })
	return n.frontErr
}

func (n *Node) closeFront() error {
	var errs []error
	if n.stopEvents != nil {
		n.stopEvents()
	}
	if n.stopModbus != nil {
		n.stopModbus()
	}
	if set := n.exports.Load(); set != nil {
		errs = append(errs, set.Close())
	}
	if n.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.api.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the API: requests still in flight after 5 s were cut off: %w", err))
		}
		cancel()
	}
	if n.gw != nil {
		n.gw.StopArchive() // a client of the file service: stopped before it
	}
	if n.files != nil {
		errs = append(errs, n.files.Close())
	}
	if n.mesh != nil {
		errs = append(errs, n.mesh.Close())
	}
	if n.coap != nil {
		errs = append(errs, n.coap.Close())
	}
	if n.broker != nil {
		errs = append(errs, n.broker.Close())
	}
	n.stopRulesEngine()
	return errors.Join(errs...)
}

func (n *Node) closeBack() error {
	var errs []error
	if n.gw != nil {
		errs = append(errs, n.gw.Close())
	}
	if n.chain != nil {
		errs = append(errs, n.chain.Stop())
	}
	if err := n.app.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing ledger: %w", err))
	}
	if n.keyToken != nil {
		errs = append(errs, n.keyToken.Close())
	}
	return errors.Join(errs...)
}
