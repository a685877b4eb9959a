package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/export/exporters"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/internal/textdur"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/rules"
)

// ConfigFile is the node's configuration file name inside its home.
const ConfigFile = "thingnet.toml"

// Config is a node's configuration (thingnet.toml). DefaultConfig's values work.
type Config struct {
	Moniker  string `toml:"moniker"`
	LogLevel string `toml:"log_level"` // debug | info | warn | error
	// LogFormat is "text" or "json".
	LogFormat string `toml:"log_format"`

	API       APIConfig       `toml:"api"`
	P2P       P2PConfig       `toml:"p2p"`
	RPC       RPCConfig       `toml:"rpc"`
	Consensus ConsensusConfig `toml:"consensus"`
	Ledger    LedgerConfig    `toml:"ledger"`
	StateSync StateSyncConfig `toml:"statesync"`
	Gateway   GatewayConfig   `toml:"gateway"`
	MQTT      MQTTConfig      `toml:"mqtt"`
	CoAP      CoAPConfig      `toml:"coap"`
	Mesh      MeshConfig      `toml:"mesh"`
	Modbus    ModbusConfig    `toml:"modbus,omitempty"`
	// Export lists the export connectors the node runs ([[export]]
	// tables: PostgreSQL, NATS JetStream, webhooks; docs/export.md).
	Export []exporters.Spec `toml:"export,omitempty"`
	// Rules run on the readings this node's gateway stores ([[rules]];
	// docs/data.md, "Rules").
	Rules []rules.Rule `toml:"rules,omitempty"`
	// Fleet tunes the gateway's fleet health (fleet.go).
	Fleet FleetConfig `toml:"fleet,omitempty"`
}

// MeshConfig configures the gateway's peer-to-peer mesh node: device to
// device messages, a circuit relay and mailboxes for sleeping devices. It
// runs with the gateway key as its identity, so only where [gateway] is
// enabled.
type MeshConfig struct {
	// Listen: libp2p multiaddrs; empty: no mesh.
	Listen    []string `toml:"listen"`
	Bootstrap []string `toml:"bootstrap"` // multiaddrs with /p2p/<peer id> of other gateways
	MDNS      bool     `toml:"mdns"`      // find devices on the local network
	DHT       bool     `toml:"dht"`       // Kademlia DHT (server mode) for peer routing
	// Mailboxes for sleeping devices: per device at most MailboxMessages
	// messages and MailboxBytes bytes (oldest dropped, with an alarm);
	// DownlinksPerDay is a device's default daily wake-up budget (its
	// ledger label downlinks_per_day overrides it), SenderWakesPerDay what
	// one sender may use of it.
	MailboxMessages   int `toml:"mailbox_messages"`
	MailboxBytes      int `toml:"mailbox_bytes"`
	DownlinksPerDay   int `toml:"downlinks_per_day"`
	SenderWakesPerDay int `toml:"sender_wakes_per_day"`
	// DownlinksPerClass: daily budgets by device class, e.g.
	// [mesh.downlinks_per_class] sensor = 4, lock = 24.
	DownlinksPerClass map[string]int `toml:"downlinks_per_class"`
	// FilesCacheMB bounds the file blocks kept beside pinned files (LRU);
	// 0: 1024 MiB. Files (docs/files.md) share the mesh node's host.
	FilesCacheMB int64 `toml:"files_cache_mb"`
	// FilesReprovideInterval is how often pinned files are announced again
	// in the DHT (provider records expire after 48 h); 0: 12h.
	FilesReprovideInterval Duration `toml:"files_reprovide_interval"`
}

// CoAPConfig configures the gateway's CoAP (UDP) server.
type CoAPConfig struct {
	Listen string `toml:"listen"` // host:port (UDP); empty: no CoAP
}

// GatewayConfig turns the node into a gateway for devices: readings over
// HTTP (POST /v1/readings, on the API) and, with [mqtt], over MQTT.
type GatewayConfig struct {
	Enabled bool `toml:"enabled"`
	// Key is the gateway's key: a name in Keystore, a key file path, or a
	// PKCS#11 token URI (pkcs11:token=...;object=...?module-path=...). Its
	// did:key must be registered on the ledger as a device of class
	// "gateway". The passphrase comes from $THINGNET_GATEWAY_PASSPHRASE.
	Key      string `toml:"key"`
	Keystore string `toml:"keystore"` // default <home>/keys
	// AnchorInterval is the longest new readings wait for their anchor
	// (default 1s); AnchorBudget the chain, in bytes of anchor tx per
	// 10,000 log entries, that an earlier anchor may cost (default 1000;
	// negative: anchors only every anchor_interval). docs/readings.md,
	// "Anchoring cadence".
	AnchorInterval Duration `toml:"anchor_interval"`
	AnchorBudget   int      `toml:"anchor_budget,omitempty"`
	// RetentionInterval is how often the gateway drops the reading values
	// that their organisations' retention periods expired (0: the
	// default, 10m; docs/readings.md).
	RetentionInterval Duration `toml:"retention_interval,omitempty"`
	// MaxSkew is how far after the gateway's clock a reading may be dated
	// (0: 5m); LateAfter how long before its receipt one may be dated
	// without being flagged late (0: 1h); docs/readings.md, "Time".
	MaxSkew   Duration `toml:"max_skew,omitempty"`
	LateAfter Duration `toml:"late_after,omitempty"`
	// NoRollups turns off the roll-ups (docs/data.md): bucketed queries
	// are then computed from the raw readings.
	NoRollups bool `toml:"no_rollups,omitempty"`
	// Archive packs old log entries into segments published through the
	// file service, and drops them locally once other nodes pin them
	// ([gateway.archive]; docs/operations.md, "Archiving").
	Archive ArchiveConfig `toml:"archive,omitempty"`
	// Limits bound what each device and each source address may cost.
	Limits LimitsConfig `toml:"limits"`
	// SourceLimits, if set, bound each source address instead
	// ([gateway.source_limits]; a field left out takes its value in
	// limits): raise them where many devices share one address.
	SourceLimits LimitsConfig `toml:"source_limits,omitempty"`
}

// ArchiveConfig is [gateway.archive]: off unless enabled. Archiving needs
// the file service (mesh.listen).
type ArchiveConfig struct {
	// Enabled archives this gateway's old log entries.
	Enabled bool `toml:"enabled"`
	// Pin pins the segments other gateways archive (the k copies their
	// archiving waits for); on by default where mesh.listen is set.
	Pin *bool `toml:"pin,omitempty"`
	// Age is how long after its receipt an entry may be archived (0: once
	// anchored).
	Age Duration `toml:"age,omitempty"`
	// SegmentEntries is the entries of one segment (0: 4096, at most 65536).
	SegmentEntries int `toml:"segment_entries,omitempty"`
	// MinPins is how many other nodes must pin a segment before its
	// entries are dropped here (0: 2; -1: none, for a single node).
	MinPins int `toml:"min_pins,omitempty"`
	// Interval is how often archiving looks for work (0: 10s).
	Interval Duration `toml:"interval,omitempty"`
}

func (a ArchiveConfig) gateway(mesh bool) gateway.ArchiveConfig {
	pin := mesh
	if a.Pin != nil {
		pin = *a.Pin && mesh
	}
	return gateway.ArchiveConfig{Archive: a.Enabled, Pin: pin, Age: a.Age.Duration, SegmentEntries: a.SegmentEntries,
		MinPins: a.MinPins, Interval: a.Interval.Duration}
}

// LimitsConfig is [gateway.limits]; DefaultConfig holds the defaults.
type LimitsConfig struct {
	MsgsPerSec     float64 `toml:"msgs_per_sec"`
	Burst          int     `toml:"burst"`
	BytesPerSec    float64 `toml:"bytes_per_sec"`
	ByteBurst      int     `toml:"byte_burst"`
	ConnectsPerSec float64 `toml:"connects_per_sec"`
	ConnectBurst   int     `toml:"connect_burst"`
	MaxPacket      int     `toml:"max_packet"`
}

func (l LimitsConfig) limits() ratelimit.Limits {
	return ratelimit.Limits{
		MsgsPerSec: l.MsgsPerSec, Burst: l.Burst, BytesPerSec: l.BytesPerSec, ByteBurst: l.ByteBurst,
		ConnectsPerSec: l.ConnectsPerSec, ConnectBurst: l.ConnectBurst, MaxPacket: l.MaxPacket,
	}
}

// sourceLimits are the per-source limits: SourceLimits, its fields left
// out taken from Limits.
func (g GatewayConfig) sourceLimits() ratelimit.Limits {
	l, d := g.SourceLimits.limits(), g.Limits.limits()
	if l.MsgsPerSec == 0 {
		l.MsgsPerSec = d.MsgsPerSec
	}
	if l.Burst == 0 {
		l.Burst = d.Burst
	}
	if l.BytesPerSec == 0 {
		l.BytesPerSec = d.BytesPerSec
	}
	if l.ByteBurst == 0 {
		l.ByteBurst = max(d.ByteBurst, l.MaxPacket)
	}
	if l.ConnectsPerSec == 0 {
		l.ConnectsPerSec = d.ConnectsPerSec
	}
	if l.ConnectBurst == 0 {
		l.ConnectBurst = d.ConnectBurst
	}
	if l.MaxPacket == 0 {
		l.MaxPacket = d.MaxPacket
	}
	return l
}

// LimitsConfigOf is l as [gateway.limits] (or [gateway.source_limits]).
func LimitsConfigOf(l ratelimit.Limits) LimitsConfig {
	return LimitsConfig{
		MsgsPerSec: l.MsgsPerSec, Burst: l.Burst, BytesPerSec: l.BytesPerSec, ByteBurst: l.ByteBurst,
		ConnectsPerSec: l.ConnectsPerSec, ConnectBurst: l.ConnectBurst, MaxPacket: l.MaxPacket,
	}
}

// MQTTConfig configures the gateway's embedded MQTT broker.
type MQTTConfig struct {
	Listen     string `toml:"listen"` // host:port; empty: no broker
	MaxClients int    `toml:"max_clients"`
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	Listen string `toml:"listen"` // host:port; empty disables the API
}

// P2PConfig configures CometBFT's peer-to-peer layer.
type P2PConfig struct {
	Listen           string   `toml:"listen"`             // tcp://host:port
	ExternalAddress  string   `toml:"external_address"`   // host:port advertised to peers
	PersistentPeers  []string `toml:"persistent_peers"`   // nodeid@host:port
	AllowDuplicateIP bool     `toml:"allow_duplicate_ip"` // several nodes behind one IP
	// PEX exchanges peer addresses with other nodes; turn it off for a
	// closed network whose nodes all list each other in persistent_peers.
	PEX bool `toml:"pex"`
}

// RPCConfig configures CometBFT's own RPC server.
type RPCConfig struct {
	Listen string `toml:"listen"` // tcp://host:port
}

// ConsensusConfig tunes block production.
type ConsensusConfig struct {
	TimeoutCommit       Duration `toml:"timeout_commit"`
	FastBlocks          bool     `toml:"fast_blocks"` // short timeouts for local networks and benchmarks
	CreateEmptyBlocks   bool     `toml:"create_empty_blocks"`
	EmptyBlocksInterval Duration `toml:"empty_blocks_interval"`
	MempoolSize         int      `toml:"mempool_size"`
}

// LedgerConfig tunes the application's state store.
type LedgerConfig struct {
	KeepVersions int64 `toml:"keep_versions"` // past state versions kept for proofs
	// SnapshotInterval: a state sync snapshot every this many heights (0:
	// none); SnapshotKeep of them are kept and served (docs/operations.md).
	SnapshotInterval int64 `toml:"snapshot_interval"`
	SnapshotKeep     int   `toml:"snapshot_keep"`
	// RetainBlocks and RetainAge: blocks kept (0 and 0: all); the node keeps
	// whichever reaches further back, and never less than evidence and the
	// served snapshots need.
	RetainBlocks int64    `toml:"retain_blocks"`
	RetainAge    Duration `toml:"retain_age"`
}

// StateSyncConfig makes a new node join from a snapshot ([statesync];
// `thingnet node init --state-sync`).
type StateSyncConfig struct {
	Enable      bool     `toml:"enable"`
	RPCServers  []string `toml:"rpc_servers"`  // CometBFT RPC of two nodes of the network, http://host:26657
	TrustHeight int64    `toml:"trust_height"` // a block height and its hash, from a source you trust
	TrustHash   string   `toml:"trust_hash"`
	TrustPeriod Duration `toml:"trust_period"` // 0: 168h
	// DiscoveryTime: how long to gather snapshots before choosing one (0: 15s).
	DiscoveryTime Duration `toml:"discovery_time,omitempty"`
}

// Duration is a time.Duration written as text ("500ms", "5m") in TOML.
type Duration = textdur.Duration

// DefaultConfig is a production node's configuration.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Moniker:   host,
		LogLevel:  "info",
		LogFormat: "text",
		API:       APIConfig{Listen: "127.0.0.1:26680"},
		P2P:       P2PConfig{Listen: chain.DefaultP2PListen, PEX: true},
		RPC:       RPCConfig{Listen: chain.DefaultRPCListen},
		Consensus: ConsensusConfig{
			TimeoutCommit:     Duration{Duration: chain.DefaultTimeoutCommit},
			CreateEmptyBlocks: true,
			MempoolSize:       chain.DefaultMempoolSize,
		},
		Ledger:  LedgerConfig{KeepVersions: 1000, SnapshotInterval: 1000, SnapshotKeep: 2},
		Gateway: GatewayConfig{Key: "gateway", AnchorInterval: Duration{Duration: gateway.DefaultAnchorInterval}, AnchorBudget: gateway.DefaultAnchorBudget, Limits: LimitsConfigOf(ratelimit.DefaultLimits())},
		Mesh: MeshConfig{
			Listen: []string{"/ip4/0.0.0.0/tcp/26606", "/ip4/0.0.0.0/udp/26606/quic-v1"},
			MDNS:   true, DHT: true,
			MailboxMessages: 1000, MailboxBytes: 1 << 20, DownlinksPerDay: 10, SenderWakesPerDay: 5,
		},
	}
}

// Ports of node i of a local network (DevConfig): the node uses
// base+10i+offset, so ten nodes fit in a hundred ports.
const (
	PortP2P  = 0 // CometBFT p2p (TCP)
	PortRPC  = 1 // CometBFT RPC
	PortAPI  = 2 // HTTP API, metrics, explorer
	PortMQTT = 3
	PortCoAP = 4 // UDP
	PortMesh = 5 // libp2p, TCP and QUIC
)

// DevConfig is node i of a local network on 127.0.0.1 whose ports start at
// base (node i: base+10i+Port*): a gateway with MQTT, CoAP, API and a mesh
// (DHT, no mDNS), CometBFT without peer exchange (a local network lists its
// peers), 256 MiB of file cache. A devnet is N of these (StartNet).
func DevConfig(i, base int) Config {
	port := func(offset int) int { return base + 10*i + offset }
	c := DefaultConfig()
	c.Moniker = fmt.Sprintf("node%d", i)
	c.API.Listen = fmt.Sprintf("127.0.0.1:%d", port(PortAPI))
	c.P2P = P2PConfig{Listen: fmt.Sprintf("tcp://127.0.0.1:%d", port(PortP2P)), AllowDuplicateIP: true}
	c.RPC.Listen = fmt.Sprintf("tcp://127.0.0.1:%d", port(PortRPC))
	c.Gateway.Enabled = true
	c.Gateway.AnchorInterval = Duration{Duration: time.Second} // a local network favours latency over chain growth
	c.MQTT.Listen = fmt.Sprintf("127.0.0.1:%d", port(PortMQTT))
	c.CoAP.Listen = fmt.Sprintf("127.0.0.1:%d", port(PortCoAP))
	c.Mesh.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port(PortMesh)), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port(PortMesh))}
	c.Mesh.MDNS = false
	c.Mesh.FilesCacheMB = 256
	return c
}

// TestConfig is node i of a test network (ports as DevConfig): fast blocks
// (no wait after a commit) and only the ledger, CometBFT and the API. A
// test that needs the gateway starts from DevConfig.
func TestConfig(i, base int) Config {
	c := DevConfig(i, base)
	c.Consensus.FastBlocks = true
	c.Consensus.TimeoutCommit = Duration{}
	c.Gateway.Enabled = false
	c.MQTT.Listen, c.CoAP.Listen, c.Mesh.Listen = "", "", nil
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: use debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format %q: use text or json", c.LogFormat)
	}
	if err := rules.CheckAll(c.Rules, rules.DefaultLimits()); err != nil {
		return err
	}
	if c.API.Listen != "" {
		if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
			return fmt.Errorf("api.listen %q: %w", c.API.Listen, err)
		}
	}
	if err := exporters.Validate(c.Export); err != nil {
		return err
	}
	if c.Gateway.AnchorInterval.Duration < 0 {
		return fmt.Errorf("gateway.anchor_interval %v: must not be negative (0: the default, %v)", c.Gateway.AnchorInterval.Duration, gateway.DefaultAnchorInterval)
	}
	if c.Modbus.Map != "" && !c.Gateway.Enabled {
		return errors.New("modbus.map needs gateway.enabled: the gateway attests the sensors' readings")
	}
	if c.Gateway.Enabled {
		if c.Gateway.Key == "" {
			return errors.New("gateway.key: name the gateway's key (a keystore name or a file)")
		}
		if c.API.Listen == "" && c.MQTT.Listen == "" {
			return errors.New("gateway.enabled needs api.listen or mqtt.listen: devices reach the gateway through them")
		}
	}
	if a := c.Gateway.Archive; a.Enabled && (!c.Gateway.Enabled || len(c.Mesh.Listen) == 0) {
		return errors.New("gateway.archive.enabled needs gateway.enabled and mesh.listen: segments are published through the file service")
	} else if a.SegmentEntries < 0 || a.SegmentEntries > datalog.MaxSegmentEntries || a.MinPins < -1 || a.Age.Duration < 0 || a.Interval.Duration < 0 {
		return fmt.Errorf("gateway.archive: segment_entries must be 0..%d, min_pins -1 or more, age and interval not negative", datalog.MaxSegmentEntries)
	}
	if c.Gateway.Enabled {
		if err := c.Gateway.Limits.limits().Validate(); err != nil {
			return fmt.Errorf("gateway.limits: %w", err)
		}
		if err := c.Gateway.sourceLimits().Validate(); err != nil {
			return fmt.Errorf("gateway.source_limits: %w", err)
		}
	}
	if c.Mesh.FilesReprovideInterval.Duration < 0 {
		return fmt.Errorf("mesh.files_reprovide_interval %s: must not be negative", c.Mesh.FilesReprovideInterval)
	}
	if c.MQTT.Listen != "" {
		if !c.Gateway.Enabled {
			return errors.New("mqtt.listen is set but gateway.enabled is false: the broker is part of the gateway")
		}
		if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
			return fmt.Errorf("mqtt.listen %q: %w", c.MQTT.Listen, err)
		}
	}
	if c.CoAP.Listen != "" {
		if !c.Gateway.Enabled {
			return errors.New("coap.listen is set but gateway.enabled is false: the CoAP server is part of the gateway")
		}
		if _, _, err := net.SplitHostPort(c.CoAP.Listen); err != nil {
			return fmt.Errorf("coap.listen %q: %w", c.CoAP.Listen, err)
		}
	}
	if c.Ledger.KeepVersions < 2 {
		return fmt.Errorf("ledger.keep_versions %d: keep at least 2", c.Ledger.KeepVersions)
	}
	if c.Ledger.SnapshotInterval < 0 || c.Ledger.SnapshotKeep < 0 || c.Ledger.RetainBlocks < 0 || c.Ledger.RetainAge.Duration < 0 {
		return errors.New("ledger: snapshot_interval, snapshot_keep, retain_blocks and retain_age must not be negative")
	}
	return c.chainConfig(".").Validate() // the home itself is checked when the node starts
}

// chainConfig is the CometBFT part of the configuration.
func (c Config) chainConfig(home string) chain.Config {
	return chain.Config{
		Home:                home,
		Moniker:             c.Moniker,
		P2PListen:           c.P2P.Listen,
		RPCListen:           c.RPC.Listen,
		PersistentPeers:     c.P2P.PersistentPeers,
		ExternalAddress:     c.P2P.ExternalAddress,
		TimeoutCommit:       c.Consensus.TimeoutCommit.Duration,
		FastBlocks:          c.Consensus.FastBlocks,
		CreateEmptyBlocks:   c.Consensus.CreateEmptyBlocks,
		EmptyBlocksInterval: c.Consensus.EmptyBlocksInterval.Duration,
		MempoolSize:         c.Consensus.MempoolSize,
		AllowDuplicateIP:    c.P2P.AllowDuplicateIP,
		DisablePEX:          !c.P2P.PEX,
		LogLevel:            cometLogLevel(c.LogLevel),
		StateSync: chain.StateSync{
			Enable: c.StateSync.Enable, RPCServers: c.StateSync.RPCServers,
			TrustHeight: c.StateSync.TrustHeight, TrustHash: c.StateSync.TrustHash, TrustPeriod: c.StateSync.TrustPeriod.Duration,
			DiscoveryTime: c.StateSync.DiscoveryTime.Duration,
		},
	}
}

// ledgerConfig is the ledger's configuration; its block retention respects
// the evidence age of the genesis in home.
func (c Config) ledgerConfig(home string) (ledger.Config, error) {
	lc := ledger.Config{
		Dir:              filepath.Join(home, "data", "ledger"),
		KeepVersions:     c.Ledger.KeepVersions,
		SnapshotInterval: c.Ledger.SnapshotInterval,
		SnapshotKeep:     c.Ledger.SnapshotKeep,
		Retain:           ledger.RetainPolicy{Blocks: c.Ledger.RetainBlocks, Age: c.Ledger.RetainAge.Duration},
	}
	if c.Ledger.RetainBlocks > 0 || c.Ledger.RetainAge.Duration > 0 {
		blocks, age, err := chain.EvidenceAge(home)
		if err != nil {
			return lc, err
		}
		lc.Retain.EvidenceBlocks, lc.Retain.EvidenceAge = blocks, age
	}
	return lc, nil
}

// cometLogLevel keeps CometBFT's chatty info lines at debug unless asked.
func cometLogLevel(level string) string {
	if level == "debug" {
		return "debug"
	}
	return ""
}

// LoadConfig reads <home>/thingnet.toml over the defaults.
func LoadConfig(home string) (Config, error) {
	c := DefaultConfig()
	path := filepath.Join(home, ConfigFile)
	md, err := toml.DecodeFile(path, &c)
	if errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%s does not exist: run `thingnet node init --home %s` first", path, home)
	}
	if err != nil {
		return c, fmt.Errorf("reading %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("%s: unknown setting %q", path, und[0].String())
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WriteConfig writes <home>/thingnet.toml.
func WriteConfig(home string, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(home, ConfigFile+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	fmt.Fprintf(f, "# thingnet node configuration; see docs/multihost.md\n")
	if err := toml.NewEncoder(f).Encode(c); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", ConfigFile, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(home, ConfigFile))
}
