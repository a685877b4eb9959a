package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

func orgGenesis(admin *identity.Key, ids ...string) GenesisState {
	var g GenesisState
	for _, id := range ids {
		g.Orgs = append(g.Orgs, GenesisOrg{ID: id, Admins: []string{admin.ID()}})
	}
	return g
}

func TestOrganisations(t *testing.T) {
	alice, bob, carol := mustKey(t, identity.Ed25519), mustKey(t, identity.P256), mustKey(t, identity.Ed25519)
	c := newChain(t, GenesisState{}, "")

	c.must(alice, "", &record.OrgCreate{ID: "acme", Name: "Acme Sensors"})
	c.want(record.CodeConflict, bob, "", &record.OrgCreate{ID: "acme"})
	c.want(record.CodeUnauthorized, bob, "", record.NewOrgAdminAdd("acme", bob.ID()))
	c.must(alice, "", record.NewOrgAdminAdd("acme", bob.ID()))
	c.want(record.CodeConflict, alice, "", record.NewOrgAdminAdd("acme", bob.ID()))
	c.must(bob, "", record.NewOrgAdminRemove("acme", alice.ID()))
	c.want(record.CodeConflict, bob, "", record.NewOrgAdminRemove("acme", bob.ID())) // last admin
	c.want(record.CodeUnauthorized, alice, "", record.NewOrgAdminAdd("acme", carol.ID()))
	c.want(record.CodeNotFound, bob, "", record.NewOrgAdminAdd("nope", carol.ID()))

	o, err := c.view().Org("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Admins) != 1 || o.Admins[0] != bob.ID() || o.Name != "Acme Sensors" {
		t.Errorf("Org(acme) = %+v; want only admin %s", o, bob.ID())
	}
	orgs, err := c.view().AdminOrgs(alice.ID())
	if err != nil || len(orgs) != 0 {
		t.Errorf("AdminOrgs(alice) = %v, %v; want none", orgs, err)
	}
}

func TestDeviceLifecycle(t *testing.T) {
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.P256} {
		t.Run(alg.String(), func(t *testing.T) {
			admin := mustKey(t, identity.Ed25519)
			c := newChain(t, orgGenesis(admin, "acme"), "")
			dev := c.register(admin, "acme", alg)
			peer := c.register(admin, "acme", identity.Ed25519)

			// The device signs for itself: it grants a peer "message" on itself.
			grant := &record.GrantAdd{Grantor: "device:" + dev.ID(), Subject: "device:" + peer.ID(), Action: "message", Resource: "device:" + dev.ID()}
			c.must(dev, "", grant)

			c.must(admin, "", record.NewDeviceStatus(dev.ID(), record.StatusSuspended, "battery swap"))
			c.want(record.CodeInactive, dev, "", grant)
			c.want(record.CodeConflict, admin, "", record.NewDeviceStatus(dev.ID(), record.StatusSuspended, ""))
			c.must(admin, "", record.NewDeviceStatus(dev.ID(), record.StatusActive, ""))
			c.must(dev, "", grant)

			// Rotate: the id stays, the old key is refused, the new one works.
			next := mustKey(t, alg)
			proof, _ := next.Sign(record.RotationMessage(testChain, dev.ID(), next.ID()))
			c.must(dev, "", &record.DeviceRotate{Device: dev.ID(), NewKey: next.ID(), Proof: proof})
			c.want(record.CodeBadSignature, dev, "", grant)
			c.must(next, dev.ID(), grant)

			c.must(admin, "", &record.DeviceUpdate{Device: dev.ID(), Firmware: "1.1.0", Labels: map[string]string{"room": "lab"}})
			c.must(admin, "", record.NewDeviceStatus(dev.ID(), record.StatusRevoked, "stolen"))
			c.want(record.CodeInactive, next, dev.ID(), grant)
			c.want(record.CodeConflict, admin, "", record.NewDeviceStatus(dev.ID(), record.StatusActive, ""))

			d, err := c.view().Device(dev.ID())
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != record.StatusRevoked || d.Key != next.ID() || d.Firmware != "1.1.0" || d.Labels["room"] != "lab" {
				t.Errorf("Device = %+v; want revoked, rotated, firmware 1.1.0, room=lab", d)
			}
			h, err := c.view().History(dev.ID(), 1, 100)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, e := range h {
				kinds = append(kinds, e.Kind)
			}
			want := "device.register device.suspend device.resume device.rotate device.update device.revoke"
			if got := strings.Join(kinds, " "); got != want {
				t.Errorf("history = %s; want %s", got, want)
			}
			if uint64(len(h)) != d.History {
				t.Errorf("history has %d events; record says %d", len(h), d.History)
			}
		})
	}
}

func TestRegisterNeedsProofOfPossession(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme", "other"), "")
	dev := mustKey(t, identity.Ed25519)

	wrongOrg := registerMsg(t, dev, "other") // proof bound to another org
	wrongOrg.Org = "acme"
	c.want(record.CodeInvalid, admin, "", wrongOrg)

	stranger := mustKey(t, identity.Ed25519) // proof by a key that is not the device's
	m := registerMsg(t, dev, "acme")
	m.Proof, _ = stranger.Sign(record.PossessionMessage(testChain, "acme", dev.ID()))
	c.want(record.CodeInvalid, admin, "", m)

	c.must(admin, "", registerMsg(t, dev, "acme"))
	c.want(record.CodeConflict, admin, "", registerMsg(t, dev, "other"))
}

func TestTenancy(t *testing.T) {
	a, b := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	c := newChain(t, GenesisState{Orgs: []GenesisOrg{{ID: "org-a", Admins: []string{a.ID()}}, {ID: "org-b", Admins: []string{b.ID()}}}}, "")
	devA := c.register(a, "org-a", identity.Ed25519)
	devB := c.register(b, "org-b", identity.Ed25519)

	// Nothing of A's can be changed by B's admin or B's devices.
	for _, tc := range []struct {
		key *identity.Key
		m   record.Msg
	}{
		{b, registerMsg(t, mustKey(t, identity.Ed25519), "org-a")},
		{b, record.NewDeviceStatus(devA.ID(), record.StatusSuspended, "")},
		{b, record.NewDeviceStatus(devA.ID(), record.StatusRevoked, "")},
		{b, &record.DeviceUpdate{Device: devA.ID(), Firmware: "evil"}},
		{b, record.NewOrgAdminAdd("org-a", b.ID())},
		{b, &record.GrantAdd{Grantor: "org-a", Subject: "org:org-b", Action: "read", Resource: "device:" + devA.ID()}},
		{b, &record.GrantAdd{Grantor: "org:org-b", Subject: "org:org-b", Action: "read", Resource: "device:" + devA.ID()}},
		{devB, &record.GrantAdd{Grantor: "device:" + devA.ID(), Subject: "device:" + devB.ID(), Action: "message", Resource: "device:" + devA.ID()}},
		{devB, record.NewDeviceStatus(devA.ID(), record.StatusSuspended, "")},
	} {
		if got, log := c.do(tc.key, "", tc.m); got != record.CodeUnauthorized && got != record.CodeInvalid {
			t.Errorf("%s by %s: code %v (%s); want unauthorized", tc.m.Kind(), tc.key.ID(), got, log)
		}
	}

	// With a "manage" grant from A, B's admin may suspend A's device; after revocation no longer.
	c.must(a, "", &record.GrantAdd{Grantor: "org:org-a", Subject: "org:org-b", Action: record.ActionManage, Resource: "device:" + devA.ID()})
	gs, err := c.view().Grants(GrantFilter{Subject: "org:org-b"})
	if err != nil || len(gs) != 1 {
		t.Fatalf("Grants(org-b) = %v, %v; want 1", gs, err)
	}
	c.must(b, "", record.NewDeviceStatus(devA.ID(), record.StatusSuspended, "maintenance by integrator"))
	c.want(record.CodeUnauthorized, b, "", &record.GrantRevoke{ID: gs[0].ID}) // only the grantor revokes
	c.must(a, "", &record.GrantRevoke{ID: gs[0].ID})
	c.want(record.CodeUnauthorized, b, "", record.NewDeviceStatus(devA.ID(), record.StatusActive, ""))
	if gs, _ := c.view().Grants(GrantFilter{Subject: "org:org-b"}); len(gs) != 0 {
		t.Errorf("grants in force after revoke = %v; want none", gs)
	}
}

func TestGrantExpiry(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	dev := c.register(admin, "acme", identity.Ed25519)
	expiry := c.height + 3
	c.must(admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: "org:acme", Action: "read", Resource: "device:" + dev.ID() + "/readings", Expiry: expiry})
	has := func() bool {
		ok, err := c.view().HasGrant("org:acme", "read", []string{"device:" + dev.ID() + "/readings"}, c.height+1)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !has() {
		t.Fatalf("grant not in force at height %d (expiry %d)", c.height+1, expiry)
	}
	for c.height < expiry {
		c.block()
	}
	if has() {
		t.Errorf("grant still in force at height %d after expiry %d", c.height+1, expiry)
	}
}

func TestEnvelopeRejections(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	m := &record.OrgCreate{ID: "new-org"}
	mk := func(chain string, nonce uint64, expiry int64) []byte {
		raw, err := record.NewTx(admin, "", chain, nonce, expiry, m)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := mk(testChain, 1, 100)
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1
	other := mustKey(t, identity.Ed25519)
	impostor, _ := record.NewTx(other, admin.ID(), testChain, 1, 100, m) // claims to be admin
	unknown, _ := identity.SignCOSE(admin, "not-a-did", record.MustMarshal(record.Body{ChainID: testChain, Signer: "not-a-did", Nonce: 1, Expiry: 100, Kind: record.KindOrgCreate, Msg: record.MustMarshal(m)}), nil)
	badKind, _ := identity.SignCOSE(admin, admin.ID(), record.MustMarshal(record.Body{ChainID: testChain, Signer: admin.ID(), Nonce: 1, Expiry: 100, Kind: "org.delete", Msg: record.MustMarshal(m)}), nil)
	huge := bytes.Repeat([]byte{0}, record.MaxTxBytes+1)

	cases := []struct {
		name string
		raw  []byte
		want record.Code
	}{
		{"truncated", good[:len(good)/2], record.CodeMalformed},
		{"empty", nil, record.CodeMalformed},
		{"garbage", []byte("hello"), record.CodeMalformed},
		{"oversized", huge, record.CodeTooLarge},
		{"wrong chain", mk("other-chain", 1, 100), record.CodeWrongChain},
		{"expired", mk(testChain, 1, 1), record.CodeExpired},
		{"bad signature", tampered, record.CodeBadSignature},
		{"impostor", impostor, record.CodeBadSignature},
		{"unknown signer", unknown, record.CodeUnknownSigner},
		{"unknown kind", badKind, record.CodeUnknownKind},
	}
	before := c.app.tree.Hash()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, log := c.check(tc.raw); got != tc.want {
				t.Errorf("CheckTx = %v (%s); want %v", got, log, tc.want)
			} else if log == "" {
				t.Errorf("CheckTx gave no log for %v", got)
			}
			if r := c.block(tc.raw)[0]; record.Code(r.Code) != tc.want {
				t.Errorf("FinalizeBlock = %v (%s); want %v", record.Code(r.Code), r.Log, tc.want)
			}
		})
	}
	if r := c.app.Rejections(); r["malformed"] < 3 || r["bad_signature"] < 2 || r["ok"] != 0 {
		t.Errorf("Rejections() = %v; want the refusals counted by reason", r)
	}
	if after := c.app.tree.Hash(); !bytes.Equal(before, after) {
		t.Errorf("rejected txs changed the app hash")
	}

	// Replay: accepted once, then refused in the mempool and in a block.
	if got, log := c.check(good); got != record.CodeOK {
		t.Fatalf("CheckTx(good) = %v (%s)", got, log)
	}
	if got, _ := c.check(good); got != record.CodeBadNonce {
		t.Errorf("CheckTx(same nonce pending) = %v; want bad_nonce", got)
	}
	if r := c.block(good, good); r[0].Code != 0 || record.Code(r[1].Code) != record.CodeBadNonce {
		t.Errorf("block(good, good) codes = %d, %d; want 0, bad_nonce", r[0].Code, r[1].Code)
	}
	if got, _ := c.check(good); got != record.CodeBadNonce {
		t.Errorf("CheckTx(replay after commit) = %v; want bad_nonce", got)
	}

	// Nonces are sequential: a tx that arrives before its predecessor waits
	// for it (a mempool refuses it, and accepts it when gossiped again).
	next2, next3 := mk(testChain, 2, 100), mk(testChain, 3, 100)
	if got, log := c.check(next3); got != record.CodeBadNonce || !strings.Contains(log, "ahead") {
		t.Errorf("CheckTx(nonce 3 before 2) = %v (%s); want bad_nonce, ahead", got, log)
	}
	if got, _ := c.check(next2); got != record.CodeOK {
		t.Errorf("CheckTx(nonce 2) = %v; want ok", got)
	}
	if got, _ := c.check(next3); got != record.CodeOK {
		t.Errorf("CheckTx(nonce 3 after 2) = %v; want ok", got)
	}
	// In a block, order matters: 3 before 2 is refused, 2 executes (and is
	// refused by execution, since the org exists: its nonce is used all the same).
	if r := c.block(next3, next2); record.Code(r[0].Code) != record.CodeBadNonce || record.Code(r[1].Code) != record.CodeConflict {
		t.Errorf("block(nonce 3, nonce 2) codes = %d, %d; want bad_nonce, conflict", r[0].Code, r[1].Code)
	}
	if n, _ := c.view().Nonce(admin.ID()); n != 2 {
		t.Errorf("nonce after the block = %d; want 2", n)
	}
}

func TestSignatureVerifiedOnce(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	raw := c.sign(admin, "", &record.OrgCreate{ID: "seen"})
	if got, log := c.check(raw); got != record.CodeOK {
		t.Fatalf("CheckTx = %v (%s)", got, log)
	}
	before := c.app.Verifications()
	if r := c.block(raw); r[0].Code != 0 {
		t.Fatalf("FinalizeBlock: %s", r[0].Log)
	}
	if got := c.app.Verifications() - before; got != 0 {
		t.Errorf("FinalizeBlock verified %d signatures of a tx CheckTx had verified; want 0", got)
	}
	unseen := c.sign(admin, "", &record.OrgCreate{ID: "unseen"})
	before = c.app.Verifications()
	if r := c.block(unseen); r[0].Code != 0 {
		t.Fatalf("FinalizeBlock: %s", r[0].Log)
	}
	if got := c.app.Verifications() - before; got != 1 {
		t.Errorf("FinalizeBlock verified %d signatures of an unseen tx; want 1", got)
	}

	// A tx CheckTx verified with a device's key, executed after the
	// rotation of that key earlier in its block: the block's batch leaves
	// it out (it is in the cache), and execution refuses it for the key
	// the device has by then.
	dev := c.register(admin, "acme", identity.Ed25519)
	next := mustKey(t, identity.Ed25519)
	proof, _ := next.Sign(record.RotationMessage(testChain, dev.ID(), next.ID()))
	rotate := c.sign(dev, "", &record.DeviceRotate{Device: dev.ID(), NewKey: next.ID(), Proof: proof})
	stale := c.sign(dev, "", &record.GrantAdd{Grantor: "device:" + dev.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + dev.ID() + "/readings"})
	for _, raw := range [][]byte{rotate, stale} {
		if got, log := c.check(raw); got != record.CodeOK {
			t.Fatalf("CheckTx = %v (%s)", got, log)
		}
	}
	r := c.block(rotate, stale)
	if r[0].Code != 0 || record.Code(r[1].Code) != record.CodeBadSignature {
		t.Errorf("rotation then a tx by the old key: codes %d (%s), %d (%s); want ok, bad_signature", r[0].Code, r[0].Log, r[1].Code, r[1].Log)
	}
}

func TestValidatorUpdate(t *testing.T) {
	c := newChain(t, GenesisState{}, "")
	submitter := mustKey(t, identity.Ed25519)
	newVal := mustKey(t, identity.Ed25519)
	approve := func(seq uint64, power int64, by ...*identity.Key) *record.ValidatorUpdate {
		m := &record.ValidatorUpdate{PubKey: newVal.Public().Bytes, Power: power, Seq: seq}
		for _, v := range by {
			sig, _ := v.Sign(record.ValidatorUpdateMessage(testChain, seq, m.PubKey, power))
			m.Approvals = append(m.Approvals, record.Approval{Validator: v.Public().Bytes, Signature: sig})
		}
		return m
	}
	c.want(record.CodeUnauthorized, submitter, "", approve(1, 10, c.vals[0], c.vals[1]))         // 20 of 40
	c.want(record.CodeInvalid, submitter, "", approve(1, 10, c.vals[0], c.vals[0], c.vals[1]))   // repeated
	c.want(record.CodeUnauthorized, submitter, "", approve(1, 10, c.vals[0], c.vals[1], newVal)) // not a validator
	c.want(record.CodeBadNonce, submitter, "", approve(2, 10, c.vals[0], c.vals[1], c.vals[2]))  // wrong seq
	raw := c.sign(submitter, "", approve(1, 10, c.vals[0], c.vals[1], c.vals[2]))
	c.height++
	res, err := c.app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: c.height, Txs: [][]byte{raw}})
	if err != nil {
		t.Fatal(err)
	}
	if res.TxResults[0].Code != 0 || len(res.ValidatorUpdates) != 1 || res.ValidatorUpdates[0].Power != 10 {
		t.Fatalf("validator update: code %d (%s), updates %v", res.TxResults[0].Code, res.TxResults[0].Log, res.ValidatorUpdates)
	}
	c.app.Commit(context.Background(), &abci.RequestCommit{})
	c.want(record.CodeBadNonce, submitter, "", approve(1, 10, c.vals[0], c.vals[1], c.vals[2])) // replayed approvals
	if vals, _ := c.view().Validators(); len(vals) != 5 {
		t.Errorf("validators = %d; want 5", len(vals))
	}
}

func TestProofs(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	dev := c.register(admin, "acme", identity.Ed25519)
	c.block()

	p, err := c.app.Prove(record.DeviceKey(dev.ID()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := record.VerifyProof(p.Root, p.Key, p.Value, p.Proof); err != nil {
		t.Errorf("inclusion proof: %v", err)
	}
	var d record.Device
	if err := record.Unmarshal(p.Value, &d); err != nil || d.ID != dev.ID() {
		t.Errorf("proved value = %+v, %v; want device %s", d, err, dev.ID())
	}
	tampered := bytes.Clone(p.Value)
	tampered[len(tampered)-1] ^= 1
	if err := record.VerifyProof(p.Root, p.Key, tampered, p.Proof); !errors.Is(err, record.ErrBadProof) {
		t.Errorf("tampered value: err = %v; want ErrBadProof", err)
	}
	if err := record.VerifyProof(p.Root, p.Key, nil, p.Proof); err == nil {
		t.Errorf("inclusion proof accepted as absence proof")
	}

	ghost := mustKey(t, identity.Ed25519)
	a, err := c.app.Prove(record.DeviceKey(ghost.ID()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Value != nil {
		t.Fatalf("ghost device has a value")
	}
	if err := record.VerifyProof(a.Root, a.Key, nil, a.Proof); err != nil {
		t.Errorf("absence proof: %v", err)
	}
	// The root is the app hash CometBFT will carry in the next header.
	info, _ := c.app.Info(context.Background(), &abci.RequestInfo{})
	if !bytes.Equal(info.LastBlockAppHash, p.Root) {
		t.Errorf("proof root %X != app hash %X", p.Root, info.LastBlockAppHash)
	}
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), dir)
	dev := c.register(admin, "acme", identity.Ed25519)
	info1, _ := c.app.Info(context.Background(), &abci.RequestInfo{})
	c.app.Close()

	app, err := NewApp(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	info2, _ := app.Info(context.Background(), &abci.RequestInfo{})
	if info2.LastBlockHeight != info1.LastBlockHeight || !bytes.Equal(info2.LastBlockAppHash, info1.LastBlockAppHash) {
		t.Errorf("after restart: height %d hash %X; want %d %X", info2.LastBlockHeight, info2.LastBlockAppHash, info1.LastBlockHeight, info1.LastBlockAppHash)
	}
	st, _ := app.View(0)
	if _, err := st.Device(dev.ID()); err != nil {
		t.Errorf("device lost across restart: %v", err)
	}
	if app.ChainID() != testChain {
		t.Errorf("ChainID after restart = %q; want %q", app.ChainID(), testChain)
	}
}

// TestDeterminism replays the same blocks on a second app and compares app hashes.
func TestDeterminism(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	g := orgGenesis(admin, "acme")
	a := newChain(t, g, "")
	b := newChainVals(t, g, "", a.vals)
	var blocks [][][]byte
	dev := mustKey(t, identity.Ed25519)
	blocks = append(blocks, [][]byte{a.sign(admin, "", registerMsg(t, dev, "acme"))})
	blocks = append(blocks, [][]byte{
		a.sign(admin, "", &record.DeviceUpdate{Device: dev.ID(), Labels: map[string]string{"z": "1", "a": "2", "m": "3", "k": "4"}}),
		a.sign(admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: "device:" + dev.ID(), Action: "read", Resource: "org:acme/weather"}),
		a.sign(dev, "", &record.GrantAdd{Grantor: "device:" + dev.ID(), Subject: "org:acme", Action: "command", Resource: "device:" + dev.ID()}),
	})
	for _, txs := range blocks {
		a.block(txs...)
		b.block(txs...)
	}
	if ha, hb := a.app.tree.Hash(), b.app.tree.Hash(); !bytes.Equal(ha, hb) {
		t.Errorf("replicas diverged: app hash %X vs %X", ha, hb)
	}
}

func TestGenesisDevices(t *testing.T) {
	admin, gw := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := orgGenesis(admin, "acme")
	g.Devices = []GenesisDevice{{ID: gw.ID(), Org: "acme", Class: record.ClassGateway}}
	c := newChain(t, g, "")
	d, err := c.view().Device(gw.ID())
	if err != nil || d.Class != record.ClassGateway || d.Status != record.StatusActive || d.History != 1 {
		t.Fatalf("genesis device = %+v, %v", d, err)
	}
	if o, _ := c.view().Org("acme"); o.Devices != 1 {
		t.Errorf("org devices = %d; want 1", o.Devices)
	}
	c.must(gw, "", &record.DataAnchor{Size: 1, Root: make([]byte, 32)})

	for _, bad := range []GenesisState{
		{Orgs: g.Orgs, Devices: []GenesisDevice{{ID: gw.ID(), Org: "nope"}}},
		{Orgs: g.Orgs, Devices: []GenesisDevice{{ID: gw.ID(), Org: "acme"}, {ID: gw.ID(), Org: "acme"}}},
		{Orgs: g.Orgs, Devices: []GenesisDevice{{ID: "did:key:zbad", Org: "acme"}}},
	} {
		raw, _ := json.Marshal(bad)
		if _, err := ParseGenesis(raw); err == nil {
			t.Errorf("ParseGenesis(%s) accepted", raw)
		}
	}
}
