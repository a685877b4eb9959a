package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// concurrentApp is one App driven the way CometBFT drives a
// chain.ConcurrentApp: PreCheckTx outside any lock, CheckTx under the
// mempool connection's lock, FinalizeBlock on the consensus connection
// without it, Commit and the rechecks with the mempool locked (CometBFT's
// BlockExecutor.Commit), and queries beside all of them.
type concurrentApp struct {
	t      *testing.T
	app    *App
	mu     sync.Mutex // the mempool connection's lock (and the mempool's)
	pool   [][]byte
	blocks [][][]byte // the txs of each block executed, for a replay
	hashes [][]byte   // each block's app hash
}

func newTestApp(t *testing.T, g GenesisState, vals []*identity.Key) *App {
	t.Helper()
	app, err := NewApp(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	raw, _ := json.Marshal(g)
	var vu []abci.ValidatorUpdate
	for _, k := range vals {
		vu = append(vu, abci.ValidatorUpdate{PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: k.Public().Bytes}}, Power: 10})
	}
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: testChain, AppStateBytes: raw, Validators: vu, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	return app
}

// submit is what the mempool does with a new tx; it reports acceptance.
func (c *concurrentApp) submit(tx []byte) bool {
	c.app.PreCheckTx(tx)
	c.mu.Lock()
	defer c.mu.Unlock()
	res, err := c.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New})
	if err != nil {
		c.t.Error(err)
		return false
	}
	if res.Code != 0 {
		c.t.Errorf("CheckTx: code %d (%s); want accepted", res.Code, res.Log)
		return false
	}
	c.pool = append(c.pool, tx)
	return true
}

// block reaps the pool, executes the txs and commits, rechecking what is
// left; it returns how many txs succeeded.
func (c *concurrentApp) block() int {
	ctx := context.Background()
	c.mu.Lock()
	txs := c.pool[:len(c.pool):len(c.pool)]
	c.mu.Unlock()
	height := int64(len(c.blocks) + 1)
	res, err := c.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: height, Txs: txs})
	if err != nil {
		c.t.Fatalf("FinalizeBlock(%d): %v", height, err)
	}
	ok := 0
	for i, r := range res.TxResults {
		if r.Code != 0 {
			c.t.Errorf("block %d tx %d: code %d (%s)", height, i, r.Code, r.Log)
			continue
		}
		ok++
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.app.Commit(ctx, &abci.RequestCommit{}); err != nil {
		c.t.Fatalf("Commit(%d): %v", height, err)
	}
	c.blocks = append(c.blocks, txs)
	c.hashes = append(c.hashes, res.AppHash)
	c.pool = c.pool[len(txs):]
	for _, tx := range c.pool {
		r, err := c.app.CheckTx(ctx, &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_Recheck})
		if err != nil || r.Code != 0 {
			c.t.Errorf("recheck after block %d: %v, code %d (%s)", height, err, r.Code, r.Log)
		}
	}
	return ok
}

// TestConcurrentConnections runs CheckTx (with PreCheckTx), queries and
// block execution at the same time, as CometBFT does with one lock per ABCI
// connection (run it with -race): every tx commits, and replaying the same
// blocks one call at a time on a second App gives the same app hash at
// every height.
func TestConcurrentConnections(t *testing.T) {
	const devices, perDevice, submitters = 8, 12, 4
	admin := mustKey(t, identity.Ed25519)
	g := orgGenesis(admin, "acme")
	vals := []*identity.Key{mustKey(t, identity.Ed25519)}
	c := &concurrentApp{t: t, app: newTestApp(t, g, vals)}
	c.block() // a committed state for CheckTx

	devs := make([]*identity.Key, devices)
	for i := range devs {
		devs[i] = mustKey(t, identity.Ed25519)
		tx, err := record.NewTx(admin, "", testChain, uint64(i+1), 1000, registerMsg(t, devs[i], "acme"))
		if err != nil {
			t.Fatal(err)
		}
		c.submit(tx)
	}
	c.block()

	flood := make([][][]byte, devices) // per device, in nonce order
	for i, d := range devs {
		for n := range perDevice {
			// No expiry in reach: on a starved machine the block loop
			// below runs many empty blocks before the submitters run.
			tx, err := record.NewTx(d, "", testChain, uint64(n+1), 1<<40, &record.GrantAdd{
				Grantor: "device:" + d.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + d.ID() + "/readings",
			})
			if err != nil {
				t.Fatal(err)
			}
			flood[i] = append(flood[i], tx)
		}
	}

	stop := make(chan struct{})
	var readers, subs sync.WaitGroup
	readers.Go(func() { // the query connection and the API's readers
		for {
			select {
			case <-stop:
				return
			default:
			}
			info, err := c.app.Info(context.Background(), &abci.RequestInfo{})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := c.app.Query(context.Background(), &abci.RequestQuery{Path: "/nonce", Data: []byte(devs[0].ID()), Height: info.LastBlockHeight}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for s := range submitters {
		subs.Go(func() {
			for i := s; i < devices; i += submitters {
				for _, tx := range flood[i] {
					c.submit(tx)
				}
			}
		})
	}
	subsDone := make(chan struct{})
	go func() { subs.Wait(); close(subsDone) }()
	committed := 0
	for committed < devices*perDevice && !t.Failed() {
		committed += c.block()
		select {
		case <-subsDone:
		default:
			continue
		}
		c.mu.Lock()
		empty := len(c.pool) == 0
		c.mu.Unlock()
		if empty && committed < devices*perDevice {
			t.Fatalf("%d of %d txs committed and the mempool is empty", committed, devices*perDevice)
		}
	}
	close(stop)
	readers.Wait()
	<-subsDone

	// The same blocks, one call at a time, on a fresh App.
	ref := newTestApp(t, g, vals)
	for i, txs := range c.blocks {
		res, err := ref.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: int64(i + 1), Txs: txs})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.AppHash, c.hashes[i]) {
			t.Fatalf("block %d: app hash %X replayed; %X with concurrent connections", i+1, res.AppHash, c.hashes[i])
		}
		if _, err := ref.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d txs in %d blocks; %d signature verifications", committed, len(c.blocks), c.app.Verifications())
}

// TestPreCheckTxDecidesNothing: PreCheckTx only fills the signature cache.
// A tx CheckTx refuses for its envelope (chain, expiry, a used nonce or one
// ahead) costs no verification there, and a bad signature is still refused
// by CheckTx.
func TestPreCheckTxDecidesNothing(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	dev := c.register(admin, "acme", identity.Ed25519)
	grant := &record.GrantAdd{Grantor: "device:" + dev.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + dev.ID() + "/readings"}

	refusedCheap := map[string][]byte{}
	refusedCheap["used nonce"], _ = record.NewTx(dev, "", testChain, 0, c.height+100, grant)
	refusedCheap["other chain"], _ = record.NewTx(dev, "", "other", 1, c.height+100, grant)
	refusedCheap["expired"], _ = record.NewTx(dev, "", testChain, 1, c.height, grant)
	refusedCheap["nonce ahead"], _ = record.NewTx(dev, "", testChain, 2, c.height+100, grant)
	refusedCheap["not a tx"] = []byte("junk")
	for name, tx := range refusedCheap {
		before := c.app.Verifications()
		c.app.PreCheckTx(tx)
		if got := c.app.Verifications(); got != before {
			t.Errorf("PreCheckTx(%s) verified %d signatures; want none", name, got-before)
		}
		if code, _ := c.check(tx); code == record.CodeOK {
			t.Errorf("CheckTx(%s) accepted it", name)
		}
	}

	stranger := mustKey(t, identity.Ed25519)
	forged, err := record.NewTx(stranger, dev.ID(), testChain, 1, c.height+100, grant)
	if err != nil {
		t.Fatal(err)
	}
	c.app.PreCheckTx(forged)
	if code, log := c.check(forged); code != record.CodeBadSignature {
		t.Errorf("CheckTx(forged) after PreCheckTx = %v (%s); want %v", code, log, record.CodeBadSignature)
	}

	good := c.sign(dev, "", grant)
	c.app.PreCheckTx(good)
	before := c.app.Verifications()
	if code, log := c.check(good); code != record.CodeOK {
		t.Fatalf("CheckTx(good) = %v (%s); want ok", code, log)
	}
	if got := c.app.Verifications(); got != before {
		t.Errorf("CheckTx verified %d signatures after PreCheckTx; want none (cached)", got-before)
	}
}

// TestCheckTxSeesEachCommit: CheckTx remembers a signer's reads of the
// committed version (signerMemo) only until the next commit, so a
// suspension, a resumption and a key rotation apply to the very next
// CheckTx after the block that made them.
func TestCheckTxSeesEachCommit(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	dev := c.register(admin, "acme", identity.Ed25519)
	grant := &record.GrantAdd{Grantor: "device:" + dev.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + dev.ID() + "/readings"}
	tx := func(key *identity.Key) []byte {
		raw, err := record.NewTx(key, dev.ID(), testChain, 1, c.height+100, grant)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if code, log := c.check(tx(dev)); code != record.CodeOK {
		t.Fatalf("CheckTx = %v (%s); want ok", code, log)
	}
	c.must(admin, "", record.NewDeviceStatus(dev.ID(), record.StatusSuspended, ""))
	if code, _ := c.check(tx(dev)); code != record.CodeInactive {
		t.Fatalf("CheckTx after the suspension = %v; want %v", code, record.CodeInactive)
	}
	c.must(admin, "", record.NewDeviceStatus(dev.ID(), record.StatusActive, ""))
	next := mustKey(t, identity.Ed25519)
	proof, _ := next.Sign(record.RotationMessage(testChain, dev.ID(), next.ID()))
	c.must(dev, "", &record.DeviceRotate{Device: dev.ID(), NewKey: next.ID(), Proof: proof})
	old, _ := record.NewTx(dev, dev.ID(), testChain, 2, c.height+100, grant)
	c.app.PreCheckTx(old)
	if code, _ := c.check(old); code != record.CodeBadSignature {
		t.Fatalf("CheckTx by the rotated-out key = %v; want %v", code, record.CodeBadSignature)
	}
	rotated, _ := record.NewTx(next, dev.ID(), testChain, 2, c.height+100, grant)
	c.app.PreCheckTx(rotated)
	if code, log := c.check(rotated); code != record.CodeOK {
		t.Fatalf("CheckTx by the new key = %v (%s); want ok", code, log)
	}
}
