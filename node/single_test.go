package node

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// testConfig is a node's configuration for a test: its ports free on
// loopback, fast blocks, no peer exchange (CometBFT writes addrbook.json
// after Stop returns when it is on).
func testConfig(t *testing.T) Config {
	t.Helper()
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.P2P.Listen = fmt.Sprintf("tcp://127.0.0.1:%d", base)
	c.RPC.Listen = fmt.Sprintf("tcp://127.0.0.1:%d", base+1)
	c.API.Listen = fmt.Sprintf("127.0.0.1:%d", base+2)
	c.Consensus.FastBlocks = true
	c.P2P.PEX = false
	return c
}

// singleNode is a node that is its chain's only validator, its home
// initialised as an operator would: `node init`, then a genesis naming it
// and the organisation "acme" with admin as its admin, and, if the
// configuration enables the gateway, the gateway's key saved in the
// node's keystore and registered in the genesis as acme's gateway.
type singleNode struct {
	home      string
	admin, gw *identity.Key // gw: nil without a gateway
}

// initSingleNode initialises home for c as the only validator of chainID.
func initSingleNode(t *testing.T, home, chainID string, c Config) singleNode {
	t.Helper()
	id, err := Init(home, c)
	if err != nil {
		t.Fatal(err)
	}
	s := singleNode{home: home, admin: mustKey(t)}
	gs := ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{s.admin.ID()}}}}
	if c.Gateway.Enabled {
		s.gw = mustKey(t)
		if _, err := (identity.Keystore{Dir: filepath.Join(home, "keys")}).Save(c.Gateway.Key, s.gw, nil); err != nil {
			t.Fatal(err)
		}
		gs.Devices = []ledger.GenesisDevice{{ID: s.gw.ID(), Org: "acme", Class: record.ClassGateway}}
	}
	st, err := json.Marshal(gs)
	if err != nil {
		t.Fatal(err)
	}
	if err := chain.WriteGenesis(home, chain.Genesis{ChainID: chainID, Validators: []chain.GenesisValidator{{PubKey: id.ValidatorPubKey, Power: 10}}, AppState: st}); err != nil {
		t.Fatal(err)
	}
	return s
}

// startSingleNode starts the node of home with c, closed at the test's
// end, and waits for its first block.
func startSingleNode(t *testing.T, home string, c Config) *Node {
	t.Helper()
	n, err := Start(home, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	waitFirstBlock(t, n)
	return n
}

// waitFirstBlock waits for n's first block, for at most a minute.
func waitFirstBlock(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for n.App().Height() < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("no block in a minute")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func mustKey(t *testing.T) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
