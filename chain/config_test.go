package chain

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig(t.TempDir()).Validate(); err != nil {
		t.Fatal(err)
	}
	// Zero values get defaults: only Home is required.
	if err := (Config{Home: t.TempDir()}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheBadField(t *testing.T) {
	peer := strings.Repeat("ab", 20) + "@127.0.0.1:26656"
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Home", func(c *Config) { c.Home = "" }},
		{"Moniker", func(c *Config) { c.Moniker = "tab\there" }},
		{"P2PListen", func(c *Config) { c.P2PListen = "127.0.0.1:26656" }},
		{"P2PListen", func(c *Config) { c.P2PListen = "tcp://127.0.0.1:0" }},
		{"RPCListen", func(c *Config) { c.RPCListen = "udp://127.0.0.1:1" }},
		{"PersistentPeers[1]", func(c *Config) { c.PersistentPeers = []string{peer, "nodeid@127.0.0.1:1"} }},
		{"ExternalAddress", func(c *Config) { c.ExternalAddress = "example.org" }},
		{"TimeoutCommit", func(c *Config) { c.TimeoutCommit = -time.Second }},
		{"EmptyBlocksInterval", func(c *Config) { c.EmptyBlocksInterval = -1 }},
		{"MempoolSize", func(c *Config) { c.MempoolSize = -1 }},
		{"LogLevel", func(c *Config) { c.LogLevel = "loud" }},
		{"StateSync.RPCServers", func(c *Config) { c.StateSync = goodStateSync(); c.StateSync.RPCServers = nil }},
		{"StateSync.TrustHeight", func(c *Config) { c.StateSync = goodStateSync(); c.StateSync.TrustHeight = 0 }},
		{"StateSync.TrustHash", func(c *Config) { c.StateSync = goodStateSync(); c.StateSync.TrustHash = "abc" }},
		{"StateSync.DiscoveryTime", func(c *Config) { c.StateSync = goodStateSync(); c.StateSync.DiscoveryTime = time.Second }},
	}
	for _, tc := range cases {
		c := DefaultConfig("/tmp/x")
		c.PersistentPeers = []string{peer}
		c.RPCListen = "unix:///tmp/x.sock"
		if err := c.Validate(); err != nil {
			t.Fatalf("base config: %v", err)
		}
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "Config."+tc.field+":") {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
}

func goodStateSync() StateSync {
	return StateSync{Enable: true, RPCServers: []string{"http://127.0.0.1:26657"}, TrustHeight: 10, TrustHash: strings.Repeat("AB", 32)}
}

// TestStateSyncConfig: [statesync] as CometBFT wants it; one RPC server is
// listed twice (CometBFT needs two entries).
func TestStateSyncConfig(t *testing.T) {
	c := Config{Home: "/tmp/x", StateSync: goodStateSync()}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	cc := c.withDefaults().cometConfig()
	if err := cc.ValidateBasic(); err != nil {
		t.Fatal(err)
	}
	ss := cc.StateSync
	if !ss.Enable || len(ss.RPCServers) != 2 || ss.TrustHeight != 10 || ss.TrustPeriod != 168*time.Hour {
		t.Errorf("statesync = %+v", ss)
	}
}

func TestFastBlocksProfile(t *testing.T) {
	c := Config{Home: "/tmp/x", FastBlocks: true, CreateEmptyBlocks: true}.withDefaults()
	cc := c.cometConfig()
	if cc.Consensus.TimeoutCommit != 0 {
		t.Errorf("timeout_commit %v, want 0", cc.Consensus.TimeoutCommit)
	}
	if cc.Consensus.PeerGossipSleepDuration != 10*time.Millisecond || cc.P2P.FlushThrottleTimeout != 10*time.Millisecond {
		t.Errorf("gossip sleep %v, flush throttle %v", cc.Consensus.PeerGossipSleepDuration, cc.P2P.FlushThrottleTimeout)
	}
	if cc.Consensus.CreateEmptyBlocksInterval != fastEmptyBlocksInterval {
		t.Errorf("empty blocks interval %v", cc.Consensus.CreateEmptyBlocksInterval)
	}
	if err := cc.ValidateBasic(); err != nil {
		t.Fatal(err)
	}
	slow := Config{Home: "/tmp/x"}.withDefaults().cometConfig()
	if slow.Consensus.TimeoutCommit != DefaultTimeoutCommit || slow.Mempool.Size != DefaultMempoolSize {
		t.Errorf("defaults: timeout_commit %v, mempool size %d", slow.Consensus.TimeoutCommit, slow.Mempool.Size)
	}
}

func TestInitHomeIsIdempotent(t *testing.T) {
	c := DefaultConfig(t.TempDir())
	c.P2PListen = "tcp://127.0.0.1:1234"
	id1, err := InitHome(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(id1.NodeID) != 40 || len(id1.ValidatorPubKey) != 32 || len(id1.ValidatorAddress) != 20 {
		t.Fatalf("identity %+v", id1)
	}
	keyFile := filepath.Join(c.Home, "config", "priv_validator_key.json")
	key1, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	// config.toml follows the config, not the first write.
	c.P2PListen = "tcp://127.0.0.1:4321"
	id2, err := InitHome(c)
	if err != nil {
		t.Fatal(err)
	}
	if id1.NodeID != id2.NodeID || !bytes.Equal(id1.ValidatorPubKey, id2.ValidatorPubKey) {
		t.Fatalf("identity changed: %+v then %+v", id1, id2)
	}
	key2, _ := os.ReadFile(keyFile)
	if !bytes.Equal(key1, key2) {
		t.Fatal("validator key file rewritten")
	}
	var onDisk struct {
		P2P struct {
			Laddr string `toml:"laddr"`
		} `toml:"p2p"`
	}
	if _, err := toml.DecodeFile(filepath.Join(c.Home, "config", "config.toml"), &onDisk); err != nil {
		t.Fatal(err)
	}
	if onDisk.P2P.Laddr != c.P2PListen {
		t.Fatalf("config.toml p2p.laddr %q, want %q", onDisk.P2P.Laddr, c.P2PListen)
	}

	// A lost state file is recreated; the key stays.
	if err := os.Remove(filepath.Join(c.Home, "data", "priv_validator_state.json")); err != nil {
		t.Fatal(err)
	}
	id3, err := InitHome(c)
	if err != nil || !bytes.Equal(id3.ValidatorPubKey, id1.ValidatorPubKey) {
		t.Fatalf("after losing the state file: %+v, %v", id3, err)
	}
}

func TestInitHomeRejectsCorruptKey(t *testing.T) {
	c := DefaultConfig(t.TempDir())
	if _, err := InitHome(c); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(c.Home, "config", "priv_validator_key.json")
	if err := os.WriteFile(keyFile, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	// privval.LoadFilePV would exit the test binary here.
	if _, err := InitHome(c); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("got %v, want a corrupt-key error", err)
	}
}

func TestGenesisRoundTrip(t *testing.T) {
	home := t.TempDir()
	id, err := InitHome(DefaultConfig(home))
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	g := Genesis{
		ChainID:     "thingnet-test",
		Validators:  []GenesisValidator{{Name: "v0", PubKey: id.ValidatorPubKey, Power: 7}},
		AppState:    json.RawMessage(`{"orgs":[]}`),
		GenesisTime: when,
	}
	if err := WriteGenesis(home, g); err != nil {
		t.Fatal(err)
	}
	doc, err := ReadGenesis(home)
	if err != nil {
		t.Fatal(err)
	}
	var appState bytes.Buffer
	if err := json.Compact(&appState, doc.AppState); err != nil {
		t.Fatal(err)
	}
	if doc.ChainID != g.ChainID || !doc.GenesisTime.Equal(when) || appState.String() != string(g.AppState) {
		t.Fatalf("read back %+v", doc)
	}
	if len(doc.Validators) != 1 || !bytes.Equal(doc.Validators[0].Address, id.ValidatorAddress) || doc.Validators[0].Power != 7 {
		t.Fatalf("validators %+v", doc.Validators)
	}
	if doc.ConsensusParams.Block.MaxBytes != DefaultBlockMaxBytes {
		t.Fatalf("block max bytes %d", doc.ConsensusParams.Block.MaxBytes)
	}

	bad := g
	bad.Validators = []GenesisValidator{{Name: "short", PubKey: []byte{1, 2, 3}, Power: 1}}
	if err := WriteGenesis(home, bad); err == nil || !strings.Contains(err.Error(), "Validators[0]") {
		t.Fatalf("short key: %v", err)
	}
	bad = g
	bad.AppState = json.RawMessage(`{`)
	if err := WriteGenesis(home, bad); err == nil || !strings.Contains(err.Error(), "AppState") {
		t.Fatalf("bad app state: %v", err)
	}
}

func TestFreePortBase(t *testing.T) {
	base, err := FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	if base < portRangeLow || base+40 > portRangeHigh {
		t.Fatalf("base %d outside %d..%d", base, portRangeLow, portRangeHigh)
	}
	if _, err := FreePortBase(0); err == nil {
		t.Fatal("FreePortBase(0) succeeded")
	}
}
