package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

func exampleAgreement(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "agreements", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder drives a chainT and keeps every block's txs, to replay them.
type recorder struct {
	c      *chainT
	blocks [][][]byte
	hashes [][]byte
}

func (r *recorder) block(txs ...[]byte) []*abci.ExecTxResult {
	r.c.t.Helper()
	res := r.c.block(txs...)
	r.blocks = append(r.blocks, txs)
	r.hashes = append(r.hashes, r.c.app.tree.Hash())
	return res
}

// do runs m signed by key in its own block and returns code and log.
func (r *recorder) do(key *identity.Key, signer string, m record.Msg) (record.Code, string) {
	r.c.t.Helper()
	if signer == "" {
		signer = key.ID()
	}
	res := r.block(r.c.sign(key, signer, m))[0]
	n, _ := r.c.view().Nonce(signer)
	r.c.nonces[signer] = n
	return record.Code(res.Code), res.Log
}

func (r *recorder) must(key *identity.Key, signer string, m record.Msg) {
	r.c.t.Helper()
	if code, log := r.do(key, signer, m); code != record.CodeOK {
		r.c.t.Fatalf("%s: code %v (%s); want ok", m.Kind(), code, log)
	}
}

func (r *recorder) want(code record.Code, contains string, key *identity.Key, signer string, m record.Msg) {
	r.c.t.Helper()
	got, log := r.do(key, signer, m)
	if got != code || !strings.Contains(log, contains) {
		r.c.t.Fatalf("%s: code %v (%s); want %v containing %q", m.Kind(), got, log, code, contains)
	}
}

func (r *recorder) register(admin *identity.Key, org, class string) *identity.Key {
	r.c.t.Helper()
	dev := mustKey(r.c.t, identity.Ed25519)
	m := registerMsg(r.c.t, dev, org)
	m.Class = class
	r.must(admin, "", m)
	return dev
}

func (r *recorder) empty(n int) {
	for range n {
		r.block()
	}
}

func (r *recorder) balance(acct string) uint64 {
	r.c.t.Helper()
	b, err := r.c.view().Balance(acct)
	if err != nil {
		r.c.t.Fatal(err)
	}
	return b
}

func (r *recorder) agreement(id uint64) *record.Agreement {
	r.c.t.Helper()
	a, err := r.c.view().Agreement(id)
	if err != nil {
		r.c.t.Fatal(err)
	}
	return a
}

func (r *recorder) stateVar(id uint64, name string) any {
	r.c.t.Helper()
	a := r.agreement(id)
	p, err := CompileAgreement(a)
	if err != nil {
		r.c.t.Fatal(err)
	}
	return p.StateMap(a.State)[name]
}

// TestAgreementsOnLedger runs the four example agreements and credits on a
// ledger App, then replays the same blocks on a fresh App and compares the
// app hash after every block.
func TestAgreementsOnLedger(t *testing.T) {
	home, acme := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := GenesisState{Orgs: []GenesisOrg{{ID: "home", Admins: []string{home.ID()}}, {ID: "acme", Admins: []string{acme.ID()}}},
		Balances: []GenesisBalance{{Account: "org:home", Amount: 1000}}}
	valKeys := []*identity.Key{mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)}
	// This node keeps 10 past versions of its state; the replica that
	// replays the blocks below keeps them all.
	r := &recorder{c: newChainConfig(t, g, Config{KeepVersions: 10}, valKeys)}
	r.blocks = append(r.blocks, nil) // block 1 of newChain
	r.hashes = append(r.hashes, r.c.app.tree.Hash())

	// Credits: transfers, overdrafts, governance mints.
	r.must(home, "", &record.CreditTransfer{From: "org:home", To: "org:acme", Amount: 100, Memo: "setup"})
	r.want(record.CodeConflict, "holds 100 credits", acme, "", &record.CreditTransfer{From: "org:acme", To: "org:home", Amount: 101})
	r.want(record.CodeUnauthorized, "", acme, "", &record.CreditTransfer{From: "org:home", To: "org:acme", Amount: 1})
	mint := &record.CreditMint{To: "org:acme", Amount: 50, Seq: 1}
	for _, v := range valKeys[:2] { // 2 of 4: not enough
		sig, _ := v.Sign(record.CreditMintMessage(testChain, 1, "org:acme", 50))
		mint.Approvals = append(mint.Approvals, record.Approval{Validator: v.Public().Bytes, Signature: sig})
	}
	r.want(record.CodeUnauthorized, "more than 2/3", home, "", mint)
	sig, _ := valKeys[2].Sign(record.CreditMintMessage(testChain, 1, "org:acme", 50))
	mint.Approvals = append(mint.Approvals, record.Approval{Validator: valKeys[2].Public().Bytes, Signature: sig})
	r.must(home, "", mint)
	r.want(record.CodeBadNonce, "", home, "", mint) // a replayed mint
	if b := r.balance("org:acme"); b != 150 {
		t.Fatalf("acme holds %d; want 150", b)
	}
	hist, err := r.c.view().Transfers("org:acme", 0, 10)
	if err != nil || len(hist) != 2 || hist[0].Kind != "transfer" || hist[1].Kind != "mint" {
		t.Fatalf("acme's transfers = %+v, %v", hist, err)
	}

	sensor := r.register(home, "home", "sensor")
	gw := r.register(home, "home", record.ClassGateway)
	cooler := r.register(acme, "acme", "actuator")

	// A malformed agreement is refused with its line.
	bad := bytes.Replace(exampleAgreement(t, "thermostat"), []byte("state.commands + 1"), []byte("state.commands + \"1\""), 1)
	r.want(record.CodeInvalid, "line 22, column 40", home, "", &record.AgreementDeploy{Source: bad, Parties: map[string]string{"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:home", "seller": "org:acme"}})
	r.want(record.CodeNotFound, "party seller", home, "", &record.AgreementDeploy{Source: exampleAgreement(t, "thermostat"), Parties: map[string]string{"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:home", "seller": "org:nobody"}})

	// Thermostat: home deploys, acme accepts, then a proven reading commands acme's cooler.
	r.must(home, "", &record.AgreementDeploy{Source: exampleAgreement(t, "thermostat"), Parties: map[string]string{"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:home", "seller": "org:acme"}})
	const thermo = 1
	if a := r.agreement(thermo); a.Status != record.AgreementProposed {
		t.Fatalf("status %s before acme accepts", a.Status)
	}
	r.want(record.CodeConflict, "is proposed", home, "", &record.AgreementCall{ID: thermo, Transition: "retune", Args: map[string]any{"threshold": int64(20)}})
	r.want(record.CodeUnauthorized, "speaks for no party", home, "", &record.AgreementAccept{ID: thermo})
	r.must(acme, "", &record.AgreementAccept{ID: thermo})
	if a := r.agreement(thermo); a.Status != record.AgreementActive {
		t.Fatalf("status %s after acme accepts", a.Status)
	}
	// The sensor's readings: three envelopes in the gateway's log, anchored;
	// the first an entry of layout 1 (the envelope), the others of layout 2
	// (authenticated at height authAt, the sensor registered and active),
	// the third of layout 3 (received at receivedAt).
	authAt, receivedAt := r.c.height, int64(1e12+2500)
	v1, v2, v3 := 35.0, 22.0, 36.0
	e1, _ := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: 1, Time: time.UnixMilli(1e12), ContentType: "temperature/celsius", Value: &v1})
	e2, _ := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: 2, Time: time.UnixMilli(1e12 + 1000), ContentType: "temperature/celsius", Value: &v2})
	e3, _ := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: 3, Time: time.UnixMilli(1e12 + 2000), ContentType: "temperature/celsius", Value: &v3})
	l1, l2, l3 := rfc6962.DefaultHasher.HashLeaf(e1), rfc6962.DefaultHasher.HashLeaf(reading.EntryBytes(authAt, 0, e2)), rfc6962.DefaultHasher.HashLeaf(reading.EntryBytes(authAt, receivedAt, e3))
	l12 := rfc6962.DefaultHasher.HashChildren(l1, l2)
	root := rfc6962.DefaultHasher.HashChildren(l12, l3)
	r.must(gw, "", &record.DataAnchor{Size: 3, Root: root})
	hot := &record.AgreementCall{ID: thermo, Transition: "hot", Reading: &record.ReadingEvidence{Gateway: gw.ID(), Index: 0, Size: 3, Envelope: e1, Inclusion: [][]byte{l2, l3}}}
	// A forged proof is refused.
	forged := *hot.Reading
	forged.Inclusion = [][]byte{l1, l3}
	r.want(record.CodeInvalid, "not entry 0", acme, "", &record.AgreementCall{ID: thermo, Transition: "hot", Reading: &forged})
	// Dry run: effects and cost, nothing committed.
	dr, err := r.c.app.DryRun(acme.ID(), hot)
	if err != nil || !dr.OK || len(dr.Trace) != 1 || dr.Cost == 0 || len(dr.Trace[0].Actions) != 2 {
		t.Fatalf("dry run = %+v, %v", dr, err)
	}
	r.must(acme, "", hot) // anyone may relay a proven reading
	r.want(record.CodeInvalid, "replay", acme, "", hot)
	cmds, err := r.c.view().Commands(cooler.ID(), 0, 10)
	if err != nil || len(cmds) != 1 || string(cmds[0].Payload) != "on" || cmds[0].Agreement != thermo {
		t.Fatalf("cooler's commands = %+v, %v", cmds, err)
	}
	if b := r.balance("org:acme"); b != 152 {
		t.Fatalf("acme holds %d after a paid command; want 152", b)
	}
	cool := &record.ReadingEvidence{Gateway: gw.ID(), Index: 1, Size: 3, Envelope: e2, AuthHeight: authAt, Inclusion: [][]byte{l1, l3}}
	// The authentication height is part of the leaf, and must come before the anchor.
	noHeight, late := *cool, *cool
	noHeight.AuthHeight, late.AuthHeight = 0, 1<<40
	r.want(record.CodeInvalid, "not entry 1", acme, "", &record.AgreementCall{ID: thermo, Transition: "cool", Reading: &noHeight})
	r.want(record.CodeInvalid, "not before its anchor", acme, "", &record.AgreementCall{ID: thermo, Transition: "cool", Reading: &late})
	r.must(acme, "", &record.AgreementCall{ID: thermo, Transition: "cool", Reading: cool})
	if cmds, _ := r.c.view().Commands(cooler.ID(), 1, 10); len(cmds) != 1 || string(cmds[0].Payload) != "off" {
		t.Fatalf("second command = %+v", cmds)
	}
	// The sensor rotates its key, and the states of the authentication and
	// anchor heights are pruned here; the third reading, signed with the
	// old key while it was in force, is still evidence: the ledger reads
	// the key in force at authAt from the sensor's history in its current
	// state, as the replica below, which prunes nothing, does.
	newKey := mustKey(t, identity.Ed25519)
	rp, _ := newKey.Sign(record.RotationMessage(testChain, sensor.ID(), newKey.ID()))
	r.must(sensor, "", &record.DeviceRotate{Device: sensor.ID(), NewKey: newKey.ID(), Proof: rp})
	r.empty(25)
	if _, err := r.c.app.View(authAt); err == nil {
		t.Fatalf("the state of height %d is still kept at height %d", authAt, r.c.height)
	}
	third := &record.ReadingEvidence{Gateway: gw.ID(), Index: 2, Size: 3, Envelope: e3, AuthHeight: authAt, ReceivedAt: receivedAt, Inclusion: [][]byte{l12}}
	r.must(acme, "", &record.AgreementCall{ID: thermo, Transition: "hot", Reading: third})
	if cmds, _ := r.c.view().Commands(cooler.ID(), 2, 10); len(cmds) != 1 || string(cmds[0].Payload) != "on" {
		t.Fatalf("command from a reading older than the pruning horizon = %+v", cmds)
	}
	r.want(record.CodeUnauthorized, "may be called by", acme, "", &record.AgreementCall{ID: thermo, Transition: "retune", Args: map[string]any{"threshold": int64(20)}})
	r.must(home, "", &record.AgreementCall{ID: thermo, Transition: "retune", Args: map[string]any{"threshold": int64(20)}})

	// Charging: the EV's credits go to escrow; refunded at the deadline.
	ev := r.register(home, "home", "vehicle")
	charger := r.register(acme, "acme", "charger")
	r.must(home, "", &record.CreditTransfer{From: "org:home", To: "device:" + ev.ID(), Amount: 100})
	charging := &record.AgreementDeploy{Source: exampleAgreement(t, "charging"), Parties: map[string]string{"ev": "device:" + ev.ID(), "charger": "device:" + charger.ID(), "operator": "org:acme"}}
	r.must(home, "", charging) // home's admin accepts for its EV
	r.must(acme, "", &record.AgreementAccept{ID: 2})
	r.must(ev, "", &record.AgreementCall{ID: 2, Transition: "reserve", Args: map[string]any{"slot": int64(4), "price": int64(30), "blocks": int64(3)}})
	if b := r.balance("device:" + ev.ID()); b != 70 {
		t.Fatalf("EV holds %d after escrow; want 70", b)
	}
	r.empty(3)
	if s := r.stateVar(2, "status"); s != "refunded" {
		t.Fatalf("charging status %v after the deadline; want refunded", s)
	}
	if b := r.balance("device:" + ev.ID()); b != 100 || r.agreement(2).Status != record.AgreementFinished {
		t.Fatalf("EV holds %d after the refund; want 100", b)
	}
	// Delivered in time: paid to the operator.
	r.must(home, "", charging)
	r.must(acme, "", &record.AgreementAccept{ID: 3})
	r.must(ev, "", &record.AgreementCall{ID: 3, Transition: "reserve", Args: map[string]any{"slot": int64(1), "price": int64(25), "blocks": int64(50)}})
	r.want(record.CodeUnauthorized, "", ev, "", &record.AgreementCall{ID: 3, Transition: "delivered", Args: map[string]any{"kwh": int64(9)}})
	acmeBefore := r.balance("org:acme")
	r.must(charger, "", &record.AgreementCall{ID: 3, Transition: "delivered", Args: map[string]any{"kwh": int64(9)}})
	if b := r.balance("org:acme"); b != acmeBefore+25 {
		t.Fatalf("operator holds %d; want %d", b, acmeBefore+25)
	}

	// Quarantine: the gateway reports; the third report suspends the suspect,
	// since home granted the agreement "manage".
	suspect := r.register(home, "home", "camera")
	r.must(home, "", &record.AgreementDeploy{Source: exampleAgreement(t, "quarantine"), Parties: map[string]string{"gateway": "device:" + gw.ID(), "suspect": "device:" + suspect.ID(), "owner": "org:home"}})
	const quar = 4
	if r.agreement(quar).Status != record.AgreementActive {
		t.Fatal("quarantine is not active; home speaks for every party")
	}
	r.must(gw, "", &record.AgreementCall{ID: quar, Transition: "report"})
	r.must(gw, "", &record.AgreementCall{ID: quar, Transition: "report"})
	r.want(record.CodeUnauthorized, "manage", gw, "", &record.AgreementCall{ID: quar, Transition: "report"})
	r.must(home, "", &record.GrantAdd{Grantor: "org:home", Subject: "agreement:4", Action: record.ActionManage, Resource: "device:" + suspect.ID()})
	r.must(gw, "", &record.AgreementCall{ID: quar, Transition: "report"})
	if d, _ := r.c.view().Device(suspect.ID()); d.Status != record.StatusSuspended {
		t.Fatalf("suspect is %s; want suspended", d.Status)
	}
	r.want(record.CodeInactive, "", suspect, "", &record.GrantAdd{Grantor: "device:" + suspect.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + suspect.ID()})
	r.must(home, "", &record.AgreementCall{ID: quar, Transition: "release"})
	if d, _ := r.c.view().Device(suspect.ID()); d.Status != record.StatusActive {
		t.Fatalf("suspect is %s after release; want active", d.Status)
	}

	// Data sharing: acme pays home for read access, which lapses.
	r.must(home, "", &record.AgreementDeploy{Source: exampleAgreement(t, "datasharing"), Parties: map[string]string{"owner": "org:home", "reader": "org:acme", "sensor": "device:" + sensor.ID()}})
	r.must(acme, "", &record.AgreementAccept{ID: 5})
	r.must(acme, "", &record.AgreementCall{ID: 5, Transition: "pay", Args: map[string]any{"days": int64(1)}})
	readers := func() int {
		gs, err := r.c.view().Grants(GrantFilter{Subject: "org:acme", Action: "read"})
		if err != nil {
			t.Fatal(err)
		}
		return len(gs)
	}
	if readers() != 1 {
		t.Fatal("no read grant after payment")
	}
	r.empty(16)
	if readers() != 0 {
		t.Fatal("read grant still in force after the paid period")
	}
	h, err := r.c.view().AgreementHistory(5, 1, 100)
	if err != nil || len(h) < 4 || h[len(h)-1].Trigger != "height" || h[len(h)-1].Transition != "lapse" {
		t.Fatalf("data sharing history = %+v, %v", h, err)
	}

	// Replay every block on a fresh App: the same app hash after each.
	fresh, err := NewApp(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	raw, _ := json.Marshal(g)
	var vals []abci.ValidatorUpdate
	for _, k := range valKeys {
		vals = append(vals, abci.ValidatorUpdate{PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: k.Public().Bytes}}, Power: 10})
	}
	ctx := context.Background()
	if _, err := fresh.InitChain(ctx, &abci.RequestInitChain{ChainId: testChain, AppStateBytes: raw, Validators: vals, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	for i, txs := range r.blocks {
		res, err := fresh.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: int64(i + 1), Txs: txs})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.AppHash, r.hashes[i]) {
			t.Fatalf("block %d: replayed app hash %X; the original was %X", i+1, res.AppHash, r.hashes[i])
		}
		if _, err := fresh.Commit(ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAgreementEventsAndSchedule: another agreement's event fires a
// subscriber; a height transition that fails is recorded, not fatal; more
// height transitions than a block runs are carried over in order.
func TestAgreementEventsAndSchedule(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	g := GenesisState{Orgs: []GenesisOrg{{ID: "a1", Admins: []string{admin.ID()}}, {ID: "b1", Admins: []string{admin.ID()}}}}
	r := &recorder{c: newChain(t, g, "")}
	pinger := `
agreement: pinger
parties: {a: org}
transitions:
  ping:
    on: {call: a}
    do: [{emit: {event: pinged, value: "7"}}]
`
	listener := `
agreement: listener
parties: {a: org, b: org}
state: {seen: int, ticks: int}
transitions:
  heard:
    on: {event: pinged, agreement: 1}
    when: event.value == 7
    do: [{set: {seen: state.seen + event.value}}]
  tick:
    on: {every: 2}
    do:
      - set: {ticks: state.ticks + 1}
      - transfer: {from: a, to: b, amount: "1"}
`
	r.must(admin, "", &record.AgreementDeploy{Source: []byte(pinger), Parties: map[string]string{"a": "org:a1"}})
	r.want(record.CodeNotFound, "agreement 9", admin, "", &record.AgreementDeploy{Source: []byte(strings.Replace(listener, "agreement: 1", "agreement: 9", 1)), Parties: map[string]string{"a": "org:a1", "b": "org:b1"}})
	r.must(admin, "", &record.AgreementDeploy{Source: []byte(listener), Parties: map[string]string{"a": "org:a1", "b": "org:b1"}})
	r.must(admin, "", &record.AgreementCall{ID: 1, Transition: "ping"})
	if v := r.stateVar(2, "seen"); v != int64(7) {
		t.Fatalf("listener saw %v; want 7", v)
	}
	// a1 holds no credits: every tick fails, and says why in the history.
	r.empty(4)
	h, err := r.c.view().AgreementHistory(2, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var failed int
	for _, e := range h {
		if e.Trigger == "height" && strings.Contains(e.Error, "holds 0 credits") {
			failed++
		}
	}
	if failed < 2 || r.stateVar(2, "ticks") != int64(0) {
		t.Fatalf("history %+v: want failed ticks and no state change", h)
	}

	// More due transitions than a block runs: the rest run in the next block.
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
	for range MaxScheduledPerBlock + 44 {
		txs = append(txs, r.c.sign(admin, "", &record.AgreementDeploy{Source: []byte(every), Parties: map[string]string{"a": "org:a1"}}))
	}
	for _, res := range r.block(txs...) {
		if res.Code != 0 {
			t.Fatal(res.Log)
		}
	}
	first, last := uint64(3), uint64(3+MaxScheduledPerBlock+43)
	r.block() // due now: 300 (+ the listener's tick); 256 run
	ran := func(id uint64) int64 { return r.stateVar(id, "n").(int64) }
	if ran(first) != 1 || ran(last) != 0 {
		t.Fatalf("after one block: first ran %d times, last %d; want 1, 0", ran(first), ran(last))
	}
	r.block()
	if ran(last) != 1 {
		t.Fatalf("the carried-over transition ran %d times; want 1", ran(last))
	}
	// Overloaded, the backlog rotates: each block runs the oldest due first.
	r.block()
	if ran(first) != 3 || ran(last) != 1 {
		t.Fatalf("after three blocks: %d and %d; want 3 and 1", ran(first), ran(last))
	}
}
