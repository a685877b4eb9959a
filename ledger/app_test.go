package ledger

import (
	"context"
	"encoding/json"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

const testChain = "test-chain"

// chainT drives an App block by block, as CometBFT would, without a network.
type chainT struct {
	t      *testing.T
	app    *App
	height int64
	nonces map[string]uint64
	vals   []*identity.Key // validator consensus keys (Ed25519)
}

func newChain(t *testing.T, g GenesisState, dir string) *chainT {
	t.Helper()
	return newChainVals(t, g, dir, nil)
}

// newChainVals starts a chain with the given validator keys (nil: 4 new ones).
func newChainVals(t *testing.T, g GenesisState, dir string, valKeys []*identity.Key) *chainT {
	t.Helper()
	if valKeys == nil {
		for i := 0; i < 4; i++ {
			valKeys = append(valKeys, mustKey(t, identity.Ed25519))
		}
	}
	return newChainConfig(t, g, Config{Dir: dir}, valKeys)
}

// newChainConfig starts a chain on an App of the given configuration.
func newChainConfig(t *testing.T, g GenesisState, cfg Config, valKeys []*identity.Key) *chainT {
	t.Helper()
	if valKeys == nil {
		for i := 0; i < 4; i++ {
			valKeys = append(valKeys, mustKey(t, identity.Ed25519))
		}
	}
	app, err := NewApp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	c := &chainT{t: t, app: app, nonces: map[string]uint64{}}
	raw, _ := json.Marshal(g)
	var vals []abci.ValidatorUpdate
	for _, k := range valKeys {
		c.vals = append(c.vals, k)
		vals = append(vals, abci.ValidatorUpdate{PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: k.Public().Bytes}}, Power: 10})
	}
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: testChain, AppStateBytes: raw, Validators: vals, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	c.block() // block 1: empty, gives CheckTx a committed state
	return c
}

func mustKey(t testing.TB, alg identity.Algorithm) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign builds a tx from key (as signer id, "" = the key's did) with the next nonce.
func (c *chainT) sign(key *identity.Key, signer string, m record.Msg) []byte {
	c.t.Helper()
	if signer == "" {
		signer = key.ID()
	}
	c.nonces[signer]++
	raw, err := record.NewTx(key, signer, testChain, c.nonces[signer], c.height+100, m)
	if err != nil {
		c.t.Fatal(err)
	}
	return raw
}

// block runs one block of raw txs through FinalizeBlock and Commit.
func (c *chainT) block(txs ...[]byte) []*abci.ExecTxResult {
	c.t.Helper()
	c.height++
	res, err := c.app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: c.height, Txs: txs})
	if err != nil {
		c.t.Fatalf("FinalizeBlock(%d): %v", c.height, err)
	}
	if _, err := c.app.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		c.t.Fatalf("Commit(%d): %v", c.height, err)
	}
	return res.TxResults
}

// do signs m with key and runs it in its own block; it returns the result code.
func (c *chainT) do(key *identity.Key, signer string, m record.Msg) (record.Code, string) {
	c.t.Helper()
	if signer == "" {
		signer = key.ID()
	}
	r := c.block(c.sign(key, signer, m))[0]
	// A tx refused before its signature is accepted does not use its nonce.
	n, err := c.view().Nonce(signer)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nonces[signer] = n
	return record.Code(r.Code), r.Log
}

// must runs m and fails the test unless it succeeds.
func (c *chainT) must(key *identity.Key, signer string, m record.Msg) {
	c.t.Helper()
	if code, log := c.do(key, signer, m); code != record.CodeOK {
		c.t.Fatalf("%s by %s: code %v (%s); want ok", m.Kind(), key.ID(), code, log)
	}
}

// want runs m and fails the test unless it is rejected with code.
func (c *chainT) want(code record.Code, key *identity.Key, signer string, m record.Msg) {
	c.t.Helper()
	if got, log := c.do(key, signer, m); got != code {
		c.t.Fatalf("%s by %s: code %v (%s); want %v", m.Kind(), key.ID(), got, log, code)
	}
}

func (c *chainT) check(raw []byte) (record.Code, string) {
	c.t.Helper()
	r, err := c.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw})
	if err != nil {
		c.t.Fatal(err)
	}
	return record.Code(r.Code), r.Log
}

func (c *chainT) view() *State {
	c.t.Helper()
	st, err := c.app.View(0)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// register registers a new device of the given algorithm in org.
func (c *chainT) register(admin *identity.Key, org string, alg identity.Algorithm) *identity.Key {
	c.t.Helper()
	dev := mustKey(c.t, alg)
	c.must(admin, "", registerMsg(c.t, dev, org))
	return dev
}

func registerMsg(t testing.TB, dev *identity.Key, org string) *record.DeviceRegister {
	t.Helper()
	proof, err := dev.Sign(record.PossessionMessage(testChain, org, dev.ID()))
	if err != nil {
		t.Fatal(err)
	}
	return &record.DeviceRegister{Org: org, Device: dev.ID(), Class: "sensor", Firmware: "1.0.0", Proof: proof}
}
