package chain

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultP2PListen     = "tcp://0.0.0.0:26656"
	DefaultRPCListen     = "tcp://127.0.0.1:26657"
	DefaultTimeoutCommit = time.Second
	DefaultMempoolSize   = 20000

	// fastEmptyBlocksInterval spaces empty blocks in the FastBlocks profile: with
	// timeout_commit 0, empty blocks would otherwise be produced as fast as the CPU allows.
	fastEmptyBlocksInterval = time.Second
)

// Config is what thingnet decides about a CometBFT node; zero values get defaults.
//
// Booleans are taken as given (their zero value is a decision too); DefaultConfig sets
// CreateEmptyBlocks, as CometBFT does by default.
type Config struct {
	Home            string   // node home; CometBFT's config/ and data/ live under it
	Moniker         string   // default: the host name
	P2PListen       string   // "tcp://host:port"; default DefaultP2PListen
	RPCListen       string   // "tcp://host:port" or "unix://path"; default DefaultRPCListen; CometBFT's own RPC stays available
	PersistentPeers []string // "nodeid@host:port"
	ExternalAddress string   // "host:port" advertised to peers; default: the P2P listen address

	// DisablePEX turns off peer exchange, by which nodes learn about further peers
	// and keep them in config/addrbook.json. Persistent peers are dialled either way.
	DisablePEX bool

	// TimeoutCommit is how long a node waits after a commit before the next height.
	// Zero means DefaultTimeoutCommit, unless FastBlocks is set, where zero means zero.
	TimeoutCommit time.Duration
	// FastBlocks is the test and benchmark profile: timeout_commit as given (0 allowed),
	// propose 400ms (+100ms/round), prevote and precommit 100ms (+50ms/round),
	// peer_gossip_sleep_duration 10ms, peer_query_maj23_sleep_duration 250ms,
	// flush_throttle_timeout 10ms, p2p send/recv rates 20 MB/s, and empty blocks at
	// most once a second when EmptyBlocksInterval is zero.
	FastBlocks bool

	CreateEmptyBlocks   bool
	EmptyBlocksInterval time.Duration // create_empty_blocks_interval

	MempoolSize int // transactions; default DefaultMempoolSize

	// AllowDuplicateIP lets several peers share an IP (many nodes on 127.0.0.1); it
	// also turns addr_book_strict off so that private addresses are accepted.
	AllowDuplicateIP bool

	// LogLevel selects which CometBFT records reach the slog logger and at which level:
	//   ""      (default) CometBFT errors at slog Error, its info at slog Debug, its debug dropped
	//   "error" only CometBFT errors, at slog Error
	//   "info"  errors at Error and info at slog Info (verbose: several lines per block)
	//   "debug" everything: errors at Error, info at Info, debug at Debug
	LogLevel string

	// StateSync, if enabled, makes a node with no state restore a snapshot
	// from its peers instead of replaying every block from genesis.
	StateSync StateSync
}

// StateSync is how a new node joins from a snapshot (CometBFT's [statesync]):
// the snapshot's app hash is checked against headers verified by a light
// client from TrustHeight/TrustHash, fetched from RPCServers.
type StateSync struct {
	Enable bool
	// RPCServers are CometBFT RPC addresses ("http://host:26657") of nodes
	// of the network; the light client needs two (one is listed twice, which
	// leaves the light client without an independent witness).
	RPCServers  []string
	TrustHeight int64
	TrustHash   string        // the block hash at TrustHeight, hex
	TrustPeriod time.Duration // default 168h; must be under the unbonding period
	// DiscoveryTime is how long the node gathers snapshots from its peers
	// before choosing one; default 15s, at least 5s.
	DiscoveryTime time.Duration
}

// DefaultConfig returns the configuration of a production node living in home.
func DefaultConfig(home string) Config {
	return Config{
		Home:              home,
		Moniker:           defaultMoniker(),
		P2PListen:         DefaultP2PListen,
		RPCListen:         DefaultRPCListen,
		TimeoutCommit:     DefaultTimeoutCommit,
		CreateEmptyBlocks: true,
		MempoolSize:       DefaultMempoolSize,
	}
}

func defaultMoniker() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "thingnet"
}

// withDefaults returns c with its zero-valued fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Moniker == "" {
		c.Moniker = defaultMoniker()
	}
	if c.P2PListen == "" {
		c.P2PListen = DefaultP2PListen
	}
	if c.RPCListen == "" {
		c.RPCListen = DefaultRPCListen
	}
	if c.TimeoutCommit == 0 && !c.FastBlocks {
		c.TimeoutCommit = DefaultTimeoutCommit
	}
	if c.EmptyBlocksInterval == 0 && c.FastBlocks && c.CreateEmptyBlocks {
		c.EmptyBlocksInterval = fastEmptyBlocksInterval
	}
	if c.MempoolSize == 0 {
		c.MempoolSize = DefaultMempoolSize
	}
	return c
}

// Validate reports every field of c (after defaults) that cannot work, each by name.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("chain: Config.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Home == "" {
		bad("Home", "empty; the node needs a home directory")
	}
	if !isASCIIText(c.Moniker) {
		bad("Moniker", "%q must be printable ASCII", c.Moniker)
	}
	if err := checkListenAddr(c.P2PListen, false); err != nil {
		bad("P2PListen", "%v", err)
	}
	if err := checkListenAddr(c.RPCListen, true); err != nil {
		bad("RPCListen", "%v", err)
	}
	for i, p := range c.PersistentPeers {
		if err := checkPeerAddr(p); err != nil {
			bad(fmt.Sprintf("PersistentPeers[%d]", i), "%v", err)
		}
	}
	if c.ExternalAddress != "" {
		if _, _, err := splitHostPort(strings.TrimPrefix(c.ExternalAddress, "tcp://")); err != nil {
			bad("ExternalAddress", "%v", err)
		}
	}
	if c.TimeoutCommit < 0 {
		bad("TimeoutCommit", "negative (%v)", c.TimeoutCommit)
	}
	if c.EmptyBlocksInterval < 0 {
		bad("EmptyBlocksInterval", "negative (%v)", c.EmptyBlocksInterval)
	}
	if c.MempoolSize < 0 {
		bad("MempoolSize", "negative (%d)", c.MempoolSize)
	}
	if ss := c.StateSync; ss.Enable {
		if len(ss.RPCServers) == 0 {
			bad("StateSync.RPCServers", "empty; name a CometBFT RPC address of the network (http://host:26657), better two")
		}
		if ss.TrustHeight <= 0 {
			bad("StateSync.TrustHeight", "%d; give the height of a block you trust", ss.TrustHeight)
		}
		if b, err := hex.DecodeString(ss.TrustHash); err != nil || len(b) != 32 {
			bad("StateSync.TrustHash", "%q is not a block hash (64 hex digits)", ss.TrustHash)
		}
		if ss.TrustPeriod < 0 {
			bad("StateSync.TrustPeriod", "negative (%v)", ss.TrustPeriod)
		}
		if ss.DiscoveryTime != 0 && ss.DiscoveryTime < 5*time.Second {
			bad("StateSync.DiscoveryTime", "%v; at least 5s", ss.DiscoveryTime)
		}
	}
	switch c.LogLevel {
	case "", "error", "info", "debug":
	default:
		bad("LogLevel", "%q is not one of \"\", \"error\", \"info\", \"debug\"", c.LogLevel)
	}
	return errors.Join(errs...)
}

// cometConfig renders c (with defaults applied) as CometBFT's configuration.
func (c Config) cometConfig() *cmtcfg.Config {
	cc := cmtcfg.DefaultConfig()
	cc.SetRoot(c.Home)
	cc.Moniker = c.Moniker
	// The application is in-process; these only keep config.toml from advertising a socket.
	cc.ProxyApp = ""
	cc.ABCI = "local"
	if c.LogLevel != "" {
		cc.LogLevel = c.LogLevel
	}

	cc.P2P.ListenAddress = c.P2PListen
	cc.P2P.ExternalAddress = c.ExternalAddress
	cc.P2P.PersistentPeers = strings.Join(c.PersistentPeers, ",")
	cc.P2P.AllowDuplicateIP = c.AllowDuplicateIP
	cc.P2P.AddrBookStrict = !c.AllowDuplicateIP
	cc.P2P.PexReactor = !c.DisablePEX

	cc.RPC.ListenAddress = c.RPCListen

	cc.Mempool.Size = c.MempoolSize
	cc.Mempool.CacheSize = max(cc.Mempool.CacheSize, c.MempoolSize)

	if ss := c.StateSync; ss.Enable {
		cc.StateSync.Enable = true
		cc.StateSync.RPCServers = ss.RPCServers
		if len(ss.RPCServers) == 1 {
			cc.StateSync.RPCServers = []string{ss.RPCServers[0], ss.RPCServers[0]}
		}
		cc.StateSync.TrustHeight = ss.TrustHeight
		cc.StateSync.TrustHash = ss.TrustHash
		if ss.TrustPeriod > 0 {
			cc.StateSync.TrustPeriod = ss.TrustPeriod
		}
		if ss.DiscoveryTime > 0 {
			cc.StateSync.DiscoveryTime = ss.DiscoveryTime
		}
	}

	cs := cc.Consensus
	cs.TimeoutCommit = c.TimeoutCommit
	cs.CreateEmptyBlocks = c.CreateEmptyBlocks
	cs.CreateEmptyBlocksInterval = c.EmptyBlocksInterval
	if c.FastBlocks {
		cs.TimeoutPropose = 400 * time.Millisecond
		cs.TimeoutProposeDelta = 100 * time.Millisecond
		cs.TimeoutPrevote = 100 * time.Millisecond
		cs.TimeoutPrevoteDelta = 50 * time.Millisecond
		cs.TimeoutPrecommit = 100 * time.Millisecond
		cs.TimeoutPrecommitDelta = 50 * time.Millisecond
		cs.PeerGossipSleepDuration = 10 * time.Millisecond
		cs.PeerQueryMaj23SleepDuration = 250 * time.Millisecond
		cc.P2P.FlushThrottleTimeout = 10 * time.Millisecond
		cc.P2P.SendRate = 20 << 20
		cc.P2P.RecvRate = 20 << 20
	}
	return cc
}

// checkListenAddr accepts "tcp://host:port" with a non-zero port, and "unix://path" if allowUnix.
func checkListenAddr(addr string, allowUnix bool) error {
	proto, rest, ok := strings.Cut(addr, "://")
	switch {
	case !ok:
		return fmt.Errorf("%q lacks a protocol; write tcp://host:port", addr)
	case proto == "unix" && allowUnix:
		if rest == "" {
			return fmt.Errorf("%q has no socket path", addr)
		}
		return nil
	case proto != "tcp":
		return fmt.Errorf("%q: protocol %q is not supported", addr, proto)
	}
	_, port, err := splitHostPort(rest)
	if err != nil {
		return err
	}
	if port == 0 {
		return fmt.Errorf("%q: port 0 is not supported; peers must know the port", addr)
	}
	return nil
}

// checkPeerAddr accepts "nodeid@host:port" with a 40-hex-digit node id.
func checkPeerAddr(addr string) error {
	id, hostPort, ok := strings.Cut(strings.TrimPrefix(addr, "tcp://"), "@")
	if !ok {
		return fmt.Errorf("%q is not nodeid@host:port", addr)
	}
	if b, err := hex.DecodeString(id); err != nil || len(b) != 20 {
		return fmt.Errorf("%q: node id %q is not 40 hex digits", addr, id)
	}
	if _, port, err := splitHostPort(hostPort); err != nil {
		return err
	} else if port == 0 {
		return fmt.Errorf("%q: port 0", addr)
	}
	return nil
}

func splitHostPort(hostPort string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", hostPort, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port %q is not a number in 0..65535", hostPort, portStr)
	}
	return host, int(port), nil
}

func isASCIIText(s string) bool {
	if strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return false
		}
	}
	return true
}

// Paths inside a home, as CometBFT lays them out by default.
func configDir(home string) string   { return filepath.Join(home, cmtcfg.DefaultConfigDir) }
func dataDir(home string) string     { return filepath.Join(home, cmtcfg.DefaultDataDir) }
func genesisPath(home string) string { return filepath.Join(configDir(home), "genesis.json") }
