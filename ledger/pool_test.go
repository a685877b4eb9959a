package ledger

import (
	"bytes"
	"context"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// mempoolT is a chainT with the mempool CometBFT keeps beside it: txs in
// the order the mempool appended them, which need not be the order CheckTx
// admitted them in (pool.go).
type mempoolT struct {
	*chainT
	pool [][]byte
}

// admit is CheckTx of a new tx; the test then places it in the pool.
func (m *mempoolT) admit(tx []byte) {
	m.t.Helper()
	if code, log := m.check(tx); code != record.CodeOK {
		m.t.Fatalf("CheckTx = %v (%s); want admitted", code, log)
	}
}

// propose is PrepareProposal over the pool.
func (m *mempoolT) propose() [][]byte {
	m.t.Helper()
	res, err := m.app.PrepareProposal(context.Background(), &abci.RequestPrepareProposal{Txs: m.pool, MaxTxBytes: 1 << 20, Height: m.height + 1})
	if err != nil {
		m.t.Fatal(err)
	}
	return res.Txs
}

// commit executes txs as a block, removes them from the pool and rechecks
// what is left in the pool's order, as CListMempool.Update does; it
// returns the block's results and the txs the rechecks refused.
func (m *mempoolT) commit(txs [][]byte) (results []*abci.ExecTxResult, refused []string) {
	m.t.Helper()
	results = m.block(txs...)
	left := m.pool[:0]
	for _, tx := range m.pool {
		if !containsTx(txs, tx) {
			left = append(left, tx)
		}
	}
	m.pool = left
	kept := m.pool[:0]
	for _, tx := range m.pool {
		r, err := m.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_Recheck})
		if err != nil {
			m.t.Fatal(err)
		}
		if r.Code != 0 {
			refused = append(refused, r.Log)
			continue
		}
		kept = append(kept, tx)
	}
	m.pool = kept
	return results, refused
}

func containsTx(txs [][]byte, tx []byte) bool {
	for _, t := range txs {
		if bytes.Equal(t, tx) {
			return true
		}
	}
	return false
}

func grantTx(t *testing.T, dev *identity.Key, nonce uint64, expiry int64) []byte {
	t.Helper()
	raw, err := record.NewTx(dev, "", testChain, nonce, expiry, &record.GrantAdd{
		Grantor: "device:" + dev.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + dev.ID() + "/readings",
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestMempoolOrderIsNotNonceOrder: CheckTx admitted a device's nonces 1, 2
// and 3 in order, but the mempool appended 2 first (two goroutines checking
// them one after the other; CometBFT appends after CheckTx returns). The
// rechecks keep all three, and a proposal from that mempool executes them
// in nonce order: every admitted tx commits and succeeds. Before, the
// recheck refused 2 and 3 and the proposal failed 2.
func TestMempoolOrderIsNotNonceOrder(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	m := &mempoolT{chainT: newChain(t, orgGenesis(admin, "acme"), "")}
	dev := m.register(admin, "acme", identity.Ed25519)
	other := m.register(admin, "acme", identity.Ed25519)

	n1, n2, n3 := grantTx(t, dev, 1, m.height+100), grantTx(t, dev, 2, m.height+100), grantTx(t, dev, 3, m.height+100)
	o1 := grantTx(t, other, 1, m.height+100)
	for _, tx := range [][]byte{n1, n2, n3, o1} {
		m.admit(tx)
	}
	m.pool = [][]byte{n2, o1, n1, n3} // the mempool's order

	// A block from another node's mempool holds none of them.
	if _, refused := m.commit(nil); len(refused) > 0 {
		t.Fatalf("rechecks refused %q; want all kept", refused)
	}
	if len(m.pool) != 4 {
		t.Fatalf("%d txs left in the pool; want 4", len(m.pool))
	}

	// A new tx of the device after the rechecks follows all three.
	n4 := grantTx(t, dev, 4, m.height+100)
	m.admit(n4)
	m.pool = append(m.pool, n4)

	proposal := m.propose()
	want := [][]byte{n1, o1, n2, n3, n4} // the device's txs in nonce order, in the places its txs held
	if len(proposal) != len(want) {
		t.Fatalf("proposal of %d txs; want %d", len(proposal), len(want))
	}
	for i := range want {
		if !bytes.Equal(proposal[i], want[i]) {
			t.Fatalf("proposal tx %d is not the expected one; want the device's txs in nonce order", i)
		}
	}
	results, refused := m.commit(proposal)
	for i, r := range results {
		if r.Code != 0 {
			t.Errorf("block tx %d: code %d (%s); want ok", i, r.Code, r.Log)
		}
	}
	if len(refused) > 0 || len(m.pool) > 0 {
		t.Errorf("after the block: %d txs left, rechecks refused %q; want none", len(m.pool), refused)
	}
	if n, err := m.view().Nonce(dev.ID()); err != nil || n != 4 {
		t.Errorf("device nonce = %d, %v; want 4", n, err)
	}
}

// TestMempoolGapIsRefusedAfterABlock: a tx past a real gap (its
// predecessor expired in the mempool) is kept by one recheck, left out of
// proposals, and refused by the recheck after the next block; a tx that
// fills the gap in time keeps it.
func TestMempoolGapIsRefusedAfterABlock(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	m := &mempoolT{chainT: newChain(t, orgGenesis(admin, "acme"), "")}
	dev := m.register(admin, "acme", identity.Ed25519)
	late := m.register(admin, "acme", identity.Ed25519)

	short := grantTx(t, dev, 1, m.height+1) // expires with the next block
	n2, n3 := grantTx(t, dev, 2, m.height+100), grantTx(t, dev, 3, m.height+100)
	l1 := grantTx(t, late, 1, m.height+1)
	l2 := grantTx(t, late, 2, m.height+100)
	for _, tx := range [][]byte{short, n2, n3, l1, l2} {
		m.admit(tx)
	}
	m.pool = [][]byte{short, n2, n3, l1, l2}

	// The next block holds none of them: nonce 1 expires, 2 and 3 (and
	// late's 2) wait past the gap for one block.
	_, refused := m.commit(nil)
	if len(refused) != 2 || len(m.pool) != 3 {
		t.Fatalf("first rechecks refused %q and kept %d; want the two expired refused, 3 kept", refused, len(m.pool))
	}
	if p := m.propose(); len(p) != 0 {
		t.Fatalf("proposal of %d txs past a gap; want none", len(p))
	}
	// late's nonce 1 comes again, in time.
	l1again := grantTx(t, late, 1, m.height+100)
	m.admit(l1again)
	m.pool = append(m.pool, l1again)

	_, refused = m.commit(nil)
	if len(refused) != 2 {
		t.Fatalf("second rechecks refused %q; want the device's 2 and 3", refused)
	}
	results, refused := m.commit(m.propose())
	if len(results) != 2 || results[0].Code != 0 || results[1].Code != 0 || len(refused) > 0 {
		t.Fatalf("late's txs: %v, rechecks refused %q; want both committed", results, refused)
	}
	if n, _ := m.view().Nonce(late.ID()); n != 2 {
		t.Errorf("late's nonce = %d; want 2", n)
	}
	// The device can send its nonce 1 again, then the rest.
	m.admit(grantTx(t, dev, 1, m.height+100))
}
