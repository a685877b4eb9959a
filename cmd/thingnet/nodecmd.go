package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/record"
)

func nodeCmd() *cobra.Command {
	c := &cobra.Command{Use: "node", Short: "Set up and run a node (a gateway; a validator if the genesis says so)"}
	var home string
	var cfg = node.DefaultConfig()
	var peers, trust string
	initc := &cobra.Command{
		Use:   "init",
		Short: "Create a node home: keys, CometBFT config and thingnet.toml",
		Long: `Create a node home. It prints the node id and validator key that the network's
genesis needs (see 'thingnet genesis create' and docs/multihost.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if peers != "" {
				cfg.P2P.PersistentPeers = strings.Split(peers, ",")
			}
			if err := stateSyncFlags(&cfg, trust); err != nil {
				return err
			}
			id, err := node.Init(home, cfg)
			if err != nil {
				return err
			}
			out := map[string]any{
				"home": home, "node_id": id.NodeID,
				"validator_pub_key": base64.StdEncoding.EncodeToString(id.ValidatorPubKey),
				"validator_address": fmt.Sprintf("%X", id.ValidatorAddress),
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialised %s\nnode id:           %s\nvalidator pub key: %s\nnext: put this key in the genesis (`thingnet genesis create --validator %s ...`), copy config/genesis.json to every node, then `thingnet node start --home %s`\n",
				home, id.NodeID, out["validator_pub_key"], out["validator_pub_key"], home)
			return nil
		},
	}
	f := initc.Flags()
	f.StringVar(&home, "home", filepath.Join(defaultHome(), "node"), "node home directory")
	f.StringVar(&cfg.Moniker, "moniker", cfg.Moniker, "node name")
	f.StringVar(&cfg.P2P.Listen, "p2p-listen", cfg.P2P.Listen, "CometBFT p2p listen address")
	f.StringVar(&cfg.P2P.ExternalAddress, "external-address", "", "host:port other nodes reach this one at")
	f.StringVar(&peers, "peers", "", "comma-separated persistent peers, nodeid@host:port")
	f.StringVar(&cfg.RPC.Listen, "rpc-listen", cfg.RPC.Listen, "CometBFT RPC listen address")
	f.StringVar(&cfg.API.Listen, "api-listen", cfg.API.Listen, "thingnet API listen address")
	f.BoolVar(&cfg.Gateway.Enabled, "gateway", false, "make this node a gateway for devices (readings over HTTP, and MQTT with --mqtt-listen)")
	f.StringVar(&cfg.Gateway.Key, "gateway-key", cfg.Gateway.Key, "the gateway's key: a name in <home>/keys or a file")
	f.StringVar(&cfg.MQTT.Listen, "mqtt-listen", "", "MQTT broker listen address, e.g. 0.0.0.0:1883 (needs --gateway)")
	f.StringVar(&cfg.CoAP.Listen, "coap-listen", "", "CoAP (UDP) listen address, e.g. 0.0.0.0:5683 (needs --gateway)")
	f.StringSliceVar(&cfg.Mesh.Listen, "mesh-listen", cfg.Mesh.Listen, "libp2p mesh listen multiaddrs, comma-separated; empty: no mesh (needs --gateway)")
	f.StringSliceVar(&cfg.Mesh.Bootstrap, "mesh-bootstrap", nil, "other gateways' mesh addresses (multiaddrs with /p2p/), comma-separated")
	f.BoolVar(&cfg.Mesh.MDNS, "mesh-mdns", cfg.Mesh.MDNS, "find devices on the local network with mDNS")
	f.BoolVar(&cfg.Consensus.FastBlocks, "fast-blocks", false, "short consensus timeouts (local test networks)")
	f.BoolVar(&cfg.StateSync.Enable, "state-sync", false, "join from a state snapshot served by --peers instead of replaying every block (needs --trust and --rpc-servers)")
	f.StringVar(&trust, "trust", "", "with --state-sync: HEIGHT:HASH of a block you trust (e.g. from `curl http://NODE:26657/commit`)")
	f.StringSliceVar(&cfg.StateSync.RPCServers, "rpc-servers", nil, "with --state-sync: CometBFT RPC addresses of two nodes of the network, http://host:26657, comma-separated")

	var startHome, startLogLevel, startLogFormat string
	start := &cobra.Command{
		Use:   "start",
		Short: "Run the node until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := node.LoadConfig(startHome)
			if err != nil {
				return err
			}
			if _, err := chain.ReadGenesis(startHome); err != nil {
				return fmt.Errorf("%w (create it with `thingnet genesis create --home %s`, or copy the network's genesis.json into %s/config/)", err, startHome, startHome)
			}
			if cmd.Flags().Changed("log-level") {
				c.LogLevel = startLogLevel
			}
			if cmd.Flags().Changed("log-format") {
				c.LogFormat = startLogFormat
			}
			if c.LogFormat == "" {
				c.LogFormat = "text"
			}
			if c.LogLevel == "" {
				c.LogLevel = "info"
			}
			if err := checkLogFlags(c.LogLevel, c.LogFormat); err != nil {
				return fmt.Errorf("%w (set on the command line or as log_level / log_format in %s/thingnet.toml)", err, startHome)
			}
			log := newLogger(c.LogLevel, c.LogFormat)
			n, err := node.Start(startHome, c, log)
			if err != nil {
				return err
			}
			log.Info("node started", "home", startHome, "api", n.APIAddr(), "node_id", n.Chain().NodeID())
			select {
			case <-cmd.Context().Done():
				log.Info("shutting down")
				return n.Close()
			case err := <-n.App().Halted(): // a planned upgrade this binary does not carry
				log.Error("the ledger stopped", "err", err)
				n.Close()
				return fmt.Errorf("node stopped: %w", err)
			}
		},
	}
	start.Flags().StringVar(&startHome, "home", filepath.Join(defaultHome(), "node"), "node home directory")
	start.Flags().StringVar(&startLogLevel, "log-level", "info", "log level: debug, info, warn, error (default: log_level in thingnet.toml)")
	start.Flags().StringVar(&startLogFormat, "log-format", "text", "log format: text or json, one object per line (default: log_format in thingnet.toml)")
	c.AddCommand(initc, start)
	return c
}

// stateSyncFlags checks --state-sync, --trust and --rpc-servers together
// and puts the trusted block into c.
func stateSyncFlags(c *node.Config, trust string) error {
	if !c.StateSync.Enable {
		if trust != "" || len(c.StateSync.RPCServers) > 0 {
			return errors.New("--trust and --rpc-servers go with --state-sync")
		}
		return nil
	}
	h, hash, ok := strings.Cut(trust, ":")
	height, err := strconv.ParseInt(h, 10, 64)
	if !ok || err != nil || height <= 0 {
		return fmt.Errorf("--trust %q: want HEIGHT:HASH, the height and hash of a block you trust (`curl http://NODE:26657/commit?height=H` shows both)", trust)
	}
	if len(c.P2P.PersistentPeers) == 0 {
		return errors.New("--state-sync needs --peers: the nodes (nodeid@host:26656) to fetch the snapshot from")
	}
	if len(c.StateSync.RPCServers) == 0 {
		return errors.New("--state-sync needs --rpc-servers: the CometBFT RPC (http://host:26657) of one or better two nodes of the network")
	}
	c.StateSync.TrustHeight, c.StateSync.TrustHash = height, strings.ToUpper(hash)
	return nil
}

func genesisCmd() *cobra.Command {
	c := &cobra.Command{Use: "genesis", Short: "Create a network's genesis file"}
	var home, chainID string
	var vals, orgs, devices []string
	gov := record.Governance{}
	create := &cobra.Command{
		Use:   "create",
		Short: "Write <home>/config/genesis.json from validator keys and initial organisations",
		Example: `  thingnet genesis create --home ~/.thingnet/node --chain-id acme-net \
    --validator BASE64KEY:10:gw-1 --validator BASE64KEY:10:gw-2 \
    --org acme:did:key:z6Mk...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g := chain.Genesis{ChainID: chainID}
			for _, v := range vals {
				gv, err := parseGenesisValidator(v)
				if err != nil {
					return err
				}
				g.Validators = append(g.Validators, gv)
			}
			if len(g.Validators) == 0 {
				return errors.New("at least one --validator KEY[:POWER[:NAME]] is needed (`thingnet node init` prints each node's key)")
			}
			st := ledger.GenesisState{Governance: &gov}
			for _, o := range orgs {
				id, admin, ok := strings.Cut(o, ":")
				if !ok {
					return fmt.Errorf("--org %q: want ID:ADMIN_DID", o)
				}
				st.Orgs = append(st.Orgs, ledger.GenesisOrg{ID: id, Admins: []string{admin}})
			}
			for _, d := range devices {
				parts := strings.Split(d, ":")
				// did:key:z... contains two colons itself.
				if len(parts) < 4 || parts[0] != "did" {
					return fmt.Errorf("--device %q: want DID:ORG[:CLASS]", d)
				}
				gd := ledger.GenesisDevice{ID: strings.Join(parts[:3], ":"), Org: parts[3]}
				if len(parts) > 4 {
					gd.Class = parts[4]
				}
				st.Devices = append(st.Devices, gd)
			}
			raw, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if _, err := ledger.ParseGenesis(raw); err != nil {
				return err
			}
			g.AppState = raw
			if err := chain.WriteGenesis(home, g); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: chain %s, %d validators, %d organisations; copy it to every node's config/ directory\n",
				filepath.Join(home, "config", "genesis.json"), chainID, len(g.Validators), len(st.Orgs))
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&home, "home", filepath.Join(defaultHome(), "node"), "node home directory to write the genesis into")
	f.StringVar(&chainID, "chain-id", "thingnet", "chain id")
	f.StringArrayVar(&vals, "validator", nil, "validator as BASE64_ED25519_KEY[:POWER[:NAME]] (repeat)")
	f.StringArrayVar(&orgs, "org", nil, "initial organisation as ID:ADMIN_DID (repeat)")
	f.StringArrayVar(&devices, "device", nil, "initial device as DID:ORG[:CLASS], e.g. the gateways' keys with class gateway (repeat)")
	f.StringVar(&gov.OrgCreation, "org-creation", record.OrgCreationApproval, "who may create organisations: approval (validators holding more than 2/3 of the power approve each), deposit (--org-deposit credits), or open (anyone; for test networks)")
	f.Uint64Var(&gov.OrgDeposit, "org-deposit", 0, "credits an organisation's creation deposits (with --org-creation deposit)")
	f.IntVar(&gov.BlockTxs, "block-txs-per-org", 1000, "txs charged to one organisation a block may carry (0: unlimited)")
	f.IntVar(&gov.MempoolTxs, "mempool-txs-per-org", 1000, "txs charged to one organisation a node's mempool holds at once (0: unlimited)")
	f.IntVar(&gov.BlockTriggers, "block-triggers-per-org", 64, "agreements' height-triggered transitions charged to one organisation per block (0: unlimited)")
	c.AddCommand(create)
	return c
}

func parseGenesisValidator(s string) (chain.GenesisValidator, error) {
	parts := strings.SplitN(s, ":", 3)
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil || len(key) != 32 {
		return chain.GenesisValidator{}, fmt.Errorf("--validator %q: the key must be a base64 Ed25519 key as `thingnet node init` prints", s)
	}
	if _, err := identity.NewPublicKey(identity.Ed25519, key); err != nil {
		return chain.GenesisValidator{}, fmt.Errorf("--validator %q: %w", s, err)
	}
	v := chain.GenesisValidator{PubKey: key, Power: 10}
	if len(parts) > 1 {
		if v.Power, err = strconv.ParseInt(parts[1], 10, 64); err != nil || v.Power <= 0 {
			return v, fmt.Errorf("--validator %q: power must be a positive number", s)
		}
	}
	if len(parts) > 2 {
		v.Name = parts[2]
	}
	return v, nil
}
