package ledger

import (
	"context"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

func TestOrgCreationByApproval(t *testing.T) {
	c := newChain(t, GenesisState{Governance: &record.Governance{OrgCreation: record.OrgCreationApproval}}, "")
	alice, mallory := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	create := func(id string, creator *identity.Key, by ...*identity.Key) *record.OrgCreate {
		m := &record.OrgCreate{ID: id}
		for _, v := range by {
			sig, _ := v.Sign(record.OrgCreateMessage(testChain, id, creator.ID()))
			m.Approvals = append(m.Approvals, record.Approval{Validator: v.Public().Bytes, Signature: sig})
		}
		return m
	}
	code, log := c.do(alice, "", create("acme", alice))
	if code != record.CodeUnauthorized || !strings.Contains(log, "thingnet org approve") {
		t.Fatalf("no approvals: %v %q; want unauthorized naming the command", code, log)
	}
	c.want(record.CodeUnauthorized, alice, "", create("acme", alice, c.vals[0], c.vals[1]))              // 20 of 40
	c.want(record.CodeBadSignature, mallory, "", create("acme", alice, c.vals[0], c.vals[1], c.vals[2])) // approved for alice, not mallory
	other := create("other", alice, c.vals[0], c.vals[1], c.vals[2])
	other.ID = "acme"
	c.want(record.CodeBadSignature, alice, "", other) // approvals of another organisation
	c.must(alice, "", create("acme", alice, c.vals[0], c.vals[1], c.vals[2]))
	if o, err := c.view().Org("acme"); err != nil || !o.IsAdmin(alice.ID()) {
		t.Fatalf("acme after approval: %+v, %v", o, err)
	}
	if g, _ := c.view().Governance(); g.OrgCreation != record.OrgCreationApproval {
		t.Errorf("governance in state: %+v", g)
	}
}

func TestOrgCreationByDeposit(t *testing.T) {
	alice, bob := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := orgGenesis(alice, "sponsor")
	g.Governance = &record.Governance{OrgCreation: record.OrgCreationDeposit, OrgDeposit: 100}
	g.Balances = []GenesisBalance{{Account: "org:sponsor", Amount: 150}}
	c := newChain(t, g, "")
	c.want(record.CodeUnauthorized, alice, "", &record.OrgCreate{ID: "acme"})                           // no deposit named
	c.want(record.CodeUnauthorized, bob, "", &record.OrgCreate{ID: "acme", DepositFrom: "org:sponsor"}) // bob does not act for sponsor
	c.must(alice, "", &record.OrgCreate{ID: "acme", DepositFrom: "org:sponsor"})
	if bal, _ := c.view().Balance("org:acme"); bal != 100 {
		t.Errorf("acme holds %d credits; want its deposit of 100", bal)
	}
	if bal, _ := c.view().Balance("org:sponsor"); bal != 50 {
		t.Errorf("sponsor holds %d credits; want 50", bal)
	}
	c.want(record.CodeConflict, alice, "", &record.OrgCreate{ID: "acme2", DepositFrom: "org:sponsor"}) // 50 < 100
	if _, err := c.view().Org("acme2"); err == nil {
		t.Error("acme2 exists without its deposit")
	}
}

func TestGenesisGovernanceChecked(t *testing.T) {
	for _, g := range []string{
		`{"governance":{"org_creation":"anyone"}}`,
		`{"governance":{"org_creation":"deposit"}}`,
		`{"governance":{"org_creation":"open","org_deposit":5}}`,
		`{"governance":{"org_creation":"open","block_txs_per_org":-1}}`,
	} {
		if _, err := ParseGenesis([]byte(g)); err == nil || !strings.Contains(err.Error(), "governance") {
			t.Errorf("%s: %v; want a governance error", g, err)
		}
	}
}

func TestAdminRotate(t *testing.T) {
	old, fresh, other := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(old, "acme"), "")
	proof := func(k *identity.Key) []byte {
		sig, _ := k.Sign(record.AdminKeyMessage(testChain, "acme", k.ID()))
		return sig
	}
	c.want(record.CodeBadSignature, old, "", &record.OrgAdminRotate{Org: "acme", New: fresh.ID(), Proof: proof(other)})
	c.want(record.CodeUnauthorized, other, "", &record.OrgAdminRotate{Org: "acme", New: fresh.ID(), Proof: proof(fresh)})
	c.must(old, "", &record.OrgAdminRotate{Org: "acme", New: fresh.ID(), Proof: proof(fresh)})
	o, _ := c.view().Org("acme")
	if o.IsAdmin(old.ID()) || !o.IsAdmin(fresh.ID()) || len(o.Admins) != 1 {
		t.Fatalf("admins after rotation: %v", o.Admins)
	}
	c.want(record.CodeUnauthorized, old, "", registerMsg(t, mustKey(t, identity.Ed25519), "acme")) // the old key is out
	c.register(fresh, "acme", identity.Ed25519)
	if ch, _ := chargeOfSigner(c.view(), old.ID()); ch != "key:"+old.ID() {
		t.Errorf("the old key is charged to %q; want its own budget", ch)
	}
}

func TestBlockBudget(t *testing.T) {
	a, b := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := orgGenesis(a, "flood")
	g.Orgs = append(g.Orgs, GenesisOrg{ID: "calm", Admins: []string{b.ID()}})
	g.Governance = &record.Governance{OrgCreation: record.OrgCreationOpen, BlockTxs: 3, MempoolTxs: 5}
	c := newChain(t, g, "")
	dev := c.register(a, "flood", identity.Ed25519) // charged to flood too
	// The anchor's signer has no tx in flood's: a tx of dev's after one the
	// budget leaves out would be left out for its nonce (pool.go).
	gw := c.register(a, "flood", identity.Ed25519)
	var txs [][]byte
	for i := range 6 {
		k, signer := a, ""
		if i%2 == 1 {
			k, signer = dev, dev.ID()
		}
		txs = append(txs, c.sign(k, signer, &record.DeviceUpdate{Device: dev.ID(), Firmware: "1." + string(rune('0'+i))}))
	}
	calm := c.sign(b, "", &record.OrgCreate{ID: "calm2"})
	anchor := c.sign(gw, gw.ID(), &record.DataAnchor{Size: 1, Root: make([]byte, 32)})
	all := append(append(append([][]byte{}, txs...), calm), anchor)

	// CheckTx: five of flood's six fit its share of the mempool.
	// PreCheckTx verifies none of what CheckTx refuses for the budget.
	var codes []record.Code
	for i, raw := range all {
		before := c.app.Verifications()
		c.app.PreCheckTx(raw)
		if verified := c.app.Verifications() - before; i == 5 && verified != 0 {
			t.Errorf("PreCheckTx verified flood's sixth tx, over its mempool budget")
		}
		code, _ := c.check(raw)
		codes = append(codes, code)
	}
	for i, code := range codes[:5] {
		if code != record.CodeOK {
			t.Errorf("flood tx %d: %v; want admitted", i, code)
		}
	}
	if codes[5] != record.CodeOverBudget {
		t.Errorf("flood's sixth tx: %v; want over_budget", codes[5])
	}
	if codes[6] != record.CodeOK {
		t.Errorf("calm's tx: %v; want admitted beside the flood", codes[6])
	}

	// The proposer takes three of flood's txs, calm's and the anchor (not charged).
	prep, err := c.app.PrepareProposal(context.Background(), &abci.RequestPrepareProposal{Txs: all, MaxTxBytes: 1 << 20, Height: c.height + 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(prep.Txs) != 5 || string(prep.Txs[3]) != string(calm) || string(prep.Txs[4]) != string(anchor) {
		t.Fatalf("proposal holds %d txs; want flood's first three, calm's and the anchor", len(prep.Txs))
	}
	ok, err := c.app.ProcessProposal(context.Background(), &abci.RequestProcessProposal{Txs: prep.Txs, Height: c.height + 1})
	if err != nil || ok.Status != abci.ResponseProcessProposal_ACCEPT {
		t.Fatalf("the budgeted proposal: %v, %v; want accepted", ok.Status, err)
	}
	bad, err := c.app.ProcessProposal(context.Background(), &abci.RequestProcessProposal{Txs: all[:4], Height: c.height + 1})
	if err != nil || bad.Status != abci.ResponseProcessProposal_REJECT {
		t.Fatalf("a proposal with four of flood's txs: %v, %v; want rejected", bad.Status, err)
	}
}

// TestTriggerBudget: an organisation's height-triggered transitions beyond
// its share of a block wait for the next blocks; another organisation's
// run in every block beside them.
func TestTriggerBudget(t *testing.T) {
	flood, calm := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := GenesisState{Orgs: []GenesisOrg{{ID: "flood", Admins: []string{flood.ID()}}, {ID: "calm", Admins: []string{calm.ID()}}},
		Governance: &record.Governance{OrgCreation: record.OrgCreationOpen, BlockTriggers: 4}}
	r := &recorder{c: newChain(t, g, "")}
	every := `
agreement: counter
parties: {a: org}
state: {n: int}
transitions:
  inc:
    on: {every: 1}
    do: [{set: {n: state.n + 1}}]
`
	var txs [][]byte
	for range 10 {
		txs = append(txs, r.c.sign(flood, "", &record.AgreementDeploy{Source: []byte(every), Parties: map[string]string{"a": "org:flood"}}))
	}
	txs = append(txs, r.c.sign(calm, "", &record.AgreementDeploy{Source: []byte(every), Parties: map[string]string{"a": "org:calm"}}))
	for _, res := range r.block(txs...) {
		if res.Code != 0 {
			t.Fatal(res.Log)
		}
	}
	ran := func(id uint64) int64 { return r.stateVar(id, "n").(int64) }
	calmID := uint64(11)
	for b := 1; b <= 3; b++ {
		r.block()
		var total int64
		for id := uint64(1); id <= 10; id++ {
			total += ran(id)
		}
		if total != int64(4*b) {
			t.Fatalf("after %d blocks flood's transitions ran %d times; want %d (4 a block)", b, total, 4*b)
		}
		if ran(calmID) != int64(b) {
			t.Fatalf("after %d blocks calm's transition ran %d times; want %d", b, ran(calmID), b)
		}
	}
}
