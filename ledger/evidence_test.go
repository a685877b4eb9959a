package ledger

import (
	"bytes"
	"context"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// finalize runs one block with misbehaviour and txs through FinalizeBlock
// and Commit, and returns the response.
func (c *chainT) finalize(mbs []abci.Misbehavior, txs ...[]byte) *abci.ResponseFinalizeBlock {
	c.t.Helper()
	c.height++
	res, err := c.app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: c.height, Txs: txs, Misbehavior: mbs})
	if err != nil {
		c.t.Fatalf("FinalizeBlock(%d): %v", c.height, err)
	}
	if _, err := c.app.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		c.t.Fatalf("Commit(%d): %v", c.height, err)
	}
	return res
}

var evidenceTime = time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.UTC)

// duplicateVote is what CometBFT hands the application for a committed
// DuplicateVoteEvidence against val.
func duplicateVote(val *identity.Key, height int64) abci.Misbehavior {
	return abci.Misbehavior{
		Type:      abci.MisbehaviorType_DUPLICATE_VOTE,
		Validator: abci.Validator{Address: record.ValidatorAddress(val.Public().Bytes), Power: 10},
		Height:    height, Time: evidenceTime, TotalVotingPower: 40,
	}
}

func evidenceEvents(res *abci.ResponseFinalizeBlock) []map[string]string {
	var out []map[string]string
	for _, ev := range res.Events {
		if ev.Type != "evidence" {
			continue
		}
		m := map[string]string{}
		for _, a := range ev.Attributes {
			m[a.Key] = a.Value
		}
		out = append(out, m)
	}
	return out
}

func TestEvidenceRemovesValidator(t *testing.T) {
	c := newChain(t, GenesisState{}, "")
	bad := c.vals[3]
	res := c.finalize([]abci.Misbehavior{duplicateVote(bad, 1)})
	if len(res.ValidatorUpdates) != 1 || res.ValidatorUpdates[0].Power != 0 ||
		!bytes.Equal(res.ValidatorUpdates[0].PubKey.GetEd25519(), bad.Public().Bytes) {
		t.Fatalf("validator updates = %v; want %X at power 0", res.ValidatorUpdates, bad.Public().Bytes)
	}
	evs := evidenceEvents(res)
	if len(evs) != 1 || evs[0]["type"] != record.EvidenceDuplicateVote || evs[0]["removed"] != "true" || evs[0]["seq"] != "1" ||
		evs[0]["address"] != record.ValidatorAddress(bad.Public().Bytes).String() {
		t.Errorf("evidence events = %v", evs)
	}
	committed := c.height
	st := c.view()
	vals, err := st.Validators()
	if err != nil || len(vals) != 3 {
		t.Fatalf("validators = %d, %v; want 3", len(vals), err)
	}
	for _, v := range vals {
		if bytes.Equal(v.PubKey, bad.Public().Bytes) {
			t.Errorf("the byzantine validator is still in the ledger's set")
		}
	}
	ev, err := st.Evidence(1)
	if err != nil {
		t.Fatal(err)
	}
	want := record.Evidence{Seq: 1, Type: record.EvidenceDuplicateVote, Address: record.ValidatorAddress(bad.Public().Bytes), PubKey: bad.Public().Bytes,
		Height: 1, Time: "2026-11-25T18:00:00.123456789Z", Power: 10, TotalPower: 40, Committed: committed, Removed: true}
	if !evidenceEqual(ev, &want) {
		t.Errorf("evidence = %+v;\nwant %+v", ev, want)
	}
	addr := record.ValidatorAddress(bad.Public().Bytes)
	info, err := st.ValidatorInfo(addr)
	if err != nil || info.Power != 0 || info.Evidence != 1 || info.History != 2 || info.Removed != committed {
		t.Errorf("validator info = %+v, %v; want power 0, 1 evidence, 2 history entries, removed at %d", info, err, committed)
	}
	hist, err := st.ValidatorHistory(addr, 0, 10)
	if err != nil || len(hist) != 2 || hist[0].Kind != record.ValEventGenesis || hist[0].Power != 10 ||
		hist[1].Kind != record.ValEventEvidence || hist[1].Power != 0 || hist[1].Evidence != 1 || hist[1].Height != committed {
		t.Errorf("history = %+v, %v", hist, err)
	}
	// The records are provable against the app hash.
	for _, key := range [][]byte{record.EvidenceKey(1), record.ValidatorInfoKey(addr), record.ValidatorHistoryKey(addr, 2)} {
		p, err := c.app.Prove(key, 0)
		if err != nil || p.Value == nil {
			t.Fatalf("prove %q: %v (value %x)", key, err, p.Value)
		}
		if err := record.VerifyProof(p.Root, p.Key, p.Value, p.Proof); err != nil {
			t.Errorf("proof of %q: %v", key, err)
		}
	}

	// The app's own set changed: the removed validator's approval no longer
	// counts, and the three others alone hold all the power.
	submitter := mustKey(t, identity.Ed25519)
	newVal := mustKey(t, identity.Ed25519)
	approve := func(seq uint64, by ...*identity.Key) *record.ValidatorUpdate {
		m := &record.ValidatorUpdate{PubKey: newVal.Public().Bytes, Power: 10, Seq: seq}
		for _, v := range by {
			sig, _ := v.Sign(record.ValidatorUpdateMessage(testChain, seq, m.PubKey, 10))
			m.Approvals = append(m.Approvals, record.Approval{Validator: v.Public().Bytes, Signature: sig})
		}
		return m
	}
	c.want(record.CodeUnauthorized, submitter, "", approve(1, c.vals[0], c.vals[1], bad)) // bad is no validator now
	c.want(record.CodeUnauthorized, submitter, "", approve(1, c.vals[0], c.vals[1]))      // 20 of 30
	c.must(submitter, "", approve(1, c.vals[0], c.vals[1], c.vals[2]))
	if vals, _ := c.view().Validators(); len(vals) != 4 {
		t.Errorf("validators after adding one = %d; want 4", len(vals))
	}
	newAddr := record.ValidatorAddress(newVal.Public().Bytes)
	if h, err := c.view().ValidatorHistory(newAddr, 0, 10); err != nil || len(h) != 1 || h[0].Kind != record.ValEventUpdate || len(h[0].Tx) != 32 {
		t.Errorf("history of the added validator = %+v, %v", h, err)
	}
}

func evidenceEqual(a, b *record.Evidence) bool {
	return a.Seq == b.Seq && a.Type == b.Type && bytes.Equal(a.Address, b.Address) && bytes.Equal(a.PubKey, b.PubKey) &&
		a.Height == b.Height && a.Time == b.Time && a.Power == b.Power && a.TotalPower == b.TotalPower &&
		a.Committed == b.Committed && a.Removed == b.Removed && a.Note == b.Note
}

// TestEvidenceIgnored: evidence against no validator of the ledger's set
// changes nothing: the state stays that of a replica that saw none.
func TestEvidenceIgnored(t *testing.T) {
	c := newChain(t, GenesisState{}, "")
	twin := newChainVals(t, GenesisState{}, "", c.vals)
	bad := c.vals[2]
	c.finalize([]abci.Misbehavior{duplicateVote(bad, 1)})
	twin.finalize([]abci.Misbehavior{duplicateVote(bad, 1)})
	stranger := mustKey(t, identity.Ed25519)
	unknownType := duplicateVote(c.vals[0], 1)
	unknownType.Type = abci.MisbehaviorType_UNKNOWN
	for _, tc := range []struct {
		name string
		mb   abci.Misbehavior
	}{
		{"already removed", duplicateVote(bad, 2)},
		{"not a validator", duplicateVote(stranger, 2)},
		{"unknown type", unknownType},
		{"malformed address", abci.Misbehavior{Type: abci.MisbehaviorType_DUPLICATE_VOTE, Validator: abci.Validator{Address: []byte{1, 2, 3}}, Height: 1}},
	} {
		res := c.finalize([]abci.Misbehavior{tc.mb})
		if len(res.ValidatorUpdates) != 0 || len(evidenceEvents(res)) != 0 {
			t.Errorf("%s: updates %v, events %v; want none", tc.name, res.ValidatorUpdates, res.Events)
		}
		if want := twin.finalize(nil).AppHash; !bytes.Equal(res.AppHash, want) {
			t.Errorf("%s: app hash %X; a replica without the evidence has %X", tc.name, res.AppHash, want)
		}
	}
	if evs, _ := c.view().EvidenceList(0, 10); len(evs) != 1 {
		t.Errorf("evidence records = %d; want 1", len(evs))
	}
	if vals, _ := c.view().Validators(); len(vals) != 3 {
		t.Errorf("validators = %d; want 3", len(vals))
	}
}

// TestEvidenceKeepsLastValidator: evidence against every validator of a
// 2-validator set in one block removes the first and only records the
// second, so that the set never becomes empty.
func TestEvidenceKeepsLastValidator(t *testing.T) {
	keys := []*identity.Key{mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)}
	c := newChainVals(t, GenesisState{}, "", keys)
	res := c.finalize([]abci.Misbehavior{duplicateVote(keys[1], 1), duplicateVote(keys[0], 1)})
	if len(res.ValidatorUpdates) != 1 || !bytes.Equal(res.ValidatorUpdates[0].PubKey.GetEd25519(), keys[1].Public().Bytes) {
		t.Fatalf("validator updates = %v; want only the first accused removed", res.ValidatorUpdates)
	}
	vals, _ := c.view().Validators()
	if len(vals) != 1 || !bytes.Equal(vals[0].PubKey, keys[0].Public().Bytes) {
		t.Fatalf("validators = %+v; want the last one kept", vals)
	}
	evs, err := c.view().EvidenceList(0, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("evidence = %+v, %v; want 2 records", evs, err)
	}
	if !evs[0].Removed || evs[1].Removed || evs[1].Note == "" {
		t.Errorf("evidence = %+v; want the first removed, the second recorded with a note", evs)
	}
	info, _ := c.view().ValidatorInfo(record.ValidatorAddress(keys[0].Public().Bytes))
	if info == nil || info.Power != 10 || info.Evidence != 1 || info.Removed != 0 {
		t.Errorf("kept validator = %+v; want power 10, 1 evidence, not removed", info)
	}
	// Later evidence against the last validator is recorded, never acted on.
	res = c.finalize([]abci.Misbehavior{duplicateVote(keys[0], 2)})
	if len(res.ValidatorUpdates) != 0 {
		t.Errorf("updates = %v; want none", res.ValidatorUpdates)
	}
	if evs, _ := c.view().EvidenceList(2, 10); len(evs) != 1 || evs[0].Seq != 3 || evs[0].Removed {
		t.Errorf("evidence after 2 = %+v; want seq 3, not removed", evs)
	}
}

// TestEvidenceAndUpdateInOneBlock: evidence and a validator.update of the
// same key in one block give CometBFT one update for the key (it refuses
// duplicates), the tx's, which runs after the evidence.
func TestEvidenceAndUpdateInOneBlock(t *testing.T) {
	c := newChain(t, GenesisState{}, "")
	bad := c.vals[3]
	submitter := mustKey(t, identity.Ed25519)
	m := &record.ValidatorUpdate{PubKey: bad.Public().Bytes, Power: 5, Seq: 1}
	for _, v := range c.vals[:3] {
		sig, _ := v.Sign(record.ValidatorUpdateMessage(testChain, 1, m.PubKey, 5))
		m.Approvals = append(m.Approvals, record.Approval{Validator: v.Public().Bytes, Signature: sig})
	}
	res := c.finalize([]abci.Misbehavior{duplicateVote(bad, 1)}, c.sign(submitter, "", m))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("validator.update: code %d (%s)", res.TxResults[0].Code, res.TxResults[0].Log)
	}
	if len(res.ValidatorUpdates) != 1 || res.ValidatorUpdates[0].Power != 5 {
		t.Fatalf("validator updates = %v; want one, power 5", res.ValidatorUpdates)
	}
	hist, _ := c.view().ValidatorHistory(record.ValidatorAddress(bad.Public().Bytes), 0, 10)
	if len(hist) != 3 || hist[1].Kind != record.ValEventEvidence || hist[2].Kind != record.ValEventUpdate || hist[2].Power != 5 {
		t.Errorf("history = %+v; want genesis, evidence, validator.update", hist)
	}
}

func TestMergeValidatorUpdates(t *testing.T) {
	k := func(b byte) abci.ValidatorUpdate {
		return abci.Ed25519ValidatorUpdate(bytes.Repeat([]byte{b}, 32), int64(b))
	}
	a0, b1, a2, c3 := k(1), k(2), k(1), k(3)
	a2.Power = 0
	got := mergeValidatorUpdates([]abci.ValidatorUpdate{a0, b1, a2, c3})
	if len(got) != 3 || got[0].PubKey.Compare(a0.PubKey) != 0 || got[0].Power != 0 || got[1].Power != 2 || got[2].Power != 3 {
		t.Errorf("merged = %v", got)
	}
}

// TestEvidenceDeterminism replays blocks with evidence (and a restart of
// one replica in the middle) on two apps and compares app hashes.
func TestEvidenceDeterminism(t *testing.T) {
	dir := t.TempDir()
	a := newChain(t, GenesisState{}, "")
	b := newChainVals(t, GenesisState{}, dir, a.vals)
	blocks := [][]abci.Misbehavior{
		{duplicateVote(a.vals[1], 1), duplicateVote(a.vals[3], 1)},
		nil,
		{{Type: abci.MisbehaviorType_LIGHT_CLIENT_ATTACK, Validator: abci.Validator{Address: record.ValidatorAddress(a.vals[0].Public().Bytes), Power: 10}, Height: 2, Time: evidenceTime, TotalVotingPower: 40}},
		{duplicateVote(a.vals[2], 3), duplicateVote(a.vals[1], 3)},
	}
	for i, mbs := range blocks {
		ra, rb := a.finalize(mbs), b.finalize(mbs)
		if !bytes.Equal(ra.AppHash, rb.AppHash) || len(ra.ValidatorUpdates) != len(rb.ValidatorUpdates) {
			t.Fatalf("block %d: replicas diverged: %X vs %X", i, ra.AppHash, rb.AppHash)
		}
		if i == 1 { // restart b from its directory
			b.app.Close()
			app, err := NewApp(Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { app.Close() })
			b.app = app
		}
	}
	// 4 validators: vals[1], vals[3] removed, then vals[0]; vals[2] is the last
	// one, kept; the second evidence against vals[1] is ignored.
	evs, _ := b.view().EvidenceList(0, 10)
	vals, _ := b.view().Validators()
	if len(evs) != 4 || len(vals) != 1 || !bytes.Equal(vals[0].PubKey, a.vals[2].Public().Bytes) || evs[2].Type != record.EvidenceLightClientAttack {
		t.Errorf("evidence %+v, validators %+v", evs, vals)
	}
}

// FuzzEvidence feeds blocks of arbitrary misbehaviour (accused among the
// validators, strangers and malformed addresses; any type, height, power)
// to a 3-validator ledger: FinalizeBlock never fails, the set never
// becomes empty, each update removes a validator that was in the set, once,
// and a replica fed the same blocks computes the same app hashes.
func FuzzEvidence(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 2, 1})
	f.Add([]byte{0, 1, 0, 1, 0, 1, 1, 2, 2, 1, 3, 2})
	f.Add([]byte{5, 0, 255, 3, 4, 1})
	keys := []*identity.Key{mustKey(f, identity.Ed25519), mustKey(f, identity.Ed25519), mustKey(f, identity.Ed25519)}
	stranger := mustKey(f, identity.Ed25519)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64 {
			return
		}
		a := newChainVals(t, GenesisState{}, "", keys)
		b := newChainVals(t, GenesisState{}, "", keys)
		var mbs []abci.Misbehavior
		flush := func() {
			before, _ := a.view().Validators()
			in := map[string]bool{}
			for _, v := range before {
				in[string(v.PubKey)] = true
			}
			ra, rb := a.finalize(mbs), b.finalize(mbs)
			if !bytes.Equal(ra.AppHash, rb.AppHash) {
				t.Fatalf("replicas diverged at %d", a.height)
			}
			seen := map[string]bool{}
			for _, u := range ra.ValidatorUpdates {
				k := string(u.PubKey.GetEd25519())
				if u.Power != 0 || !in[k] || seen[k] {
					t.Fatalf("update %v: power must be 0, of a validator in the set, once", u)
				}
				seen[k] = true
			}
			after, _ := a.view().Validators()
			if len(after) == 0 || len(after) != len(before)-len(seen) {
				t.Fatalf("validators %d -> %d with %d removals", len(before), len(after), len(seen))
			}
			mbs = nil
		}
		for i := 0; i+1 < len(in); i += 2 {
			var addr []byte
			switch k := in[i] % 6; {
			case k < 3:
				addr = record.ValidatorAddress(keys[k].Public().Bytes)
			case k == 3:
				addr = record.ValidatorAddress(stranger.Public().Bytes)
			case k == 4:
				addr = []byte{in[i+1]}
			}
			if in[i]%6 == 5 {
				flush()
				continue
			}
			mbs = append(mbs, abci.Misbehavior{Type: abci.MisbehaviorType(in[i+1] % 4), Validator: abci.Validator{Address: addr, Power: int64(in[i+1])},
				Height: int64(in[i+1]), Time: evidenceTime.Add(time.Duration(in[i+1]) * time.Second), TotalVotingPower: 30})
		}
		flush()
	})
}
