package ledger

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"github.com/thingnet/thingnet/record"
)

// appendValidatorEvent appends ev to pub's history and updates its info
// record (power after the change, counters). It reads through st, which
// must read through buf, so that two entries in one buffer follow each other.
func appendValidatorEvent(st *State, buf *buffer, pub []byte, ev record.ValidatorEvent) error {
	addr := record.ValidatorAddress(pub)
	info, err := st.ValidatorInfo(addr)
	switch {
	case errors.Is(err, ErrNotFound):
		info = &record.ValidatorInfo{Address: addr, PubKey: pub}
	case err != nil:
		return err
	}
	info.PubKey = pub
	info.Power = ev.Power
	info.History++
	ev.Seq = info.History
	if ev.Kind == record.ValEventEvidence {
		info.Evidence++
		if ev.Power == 0 {
			info.Removed = ev.Height
		}
	}
	buf.set(record.ValidatorInfoKey(addr), info)
	buf.set(record.ValidatorHistoryKey(addr, ev.Seq), &ev)
	return nil
}

// genesisValidators starts the history of the genesis validators.
// Their entries have height 0: the state before the first block.
func genesisValidators(buf *buffer, vals []record.Validator) error {
	st := &State{r: buf}
	for _, v := range vals {
		if err := appendValidatorEvent(st, buf, v.PubKey, record.ValidatorEvent{Kind: record.ValEventGenesis, Power: v.Power}); err != nil {
			return err
		}
	}
	return nil
}

func misbehaviorType(t abci.MisbehaviorType) string {
	switch t {
	case abci.MisbehaviorType_DUPLICATE_VOTE:
		return record.EvidenceDuplicateVote
	case abci.MisbehaviorType_LIGHT_CLIENT_ATTACK:
		return record.EvidenceLightClientAttack
	}
	return ""
}

// applyEvidence acts on the block's misbehaviour (see the rules above): it
// writes the records, and returns the validator updates (power 0) and the
// block events ("evidence"). It returns an error only when storage fails.
func (a *App) applyEvidence(height int64, mbs []abci.Misbehavior) ([]abci.ValidatorUpdate, []abci.Event, error) {
	if len(mbs) == 0 {
		return nil, nil, nil
	}
	buf := newBuffer(a.tree)
	st := &State{r: buf, Height: height - 1}
	vals, err := st.Validators()
	if err != nil {
		return nil, nil, err
	}
	byAddr := make(map[string]record.Validator, len(vals)) // lookups only: never iterated
	for _, v := range vals {
		byAddr[string(record.ValidatorAddress(v.PubKey))] = v
	}
	remaining := len(vals)
	last, err := st.u64([]byte(record.KeyEvidenceSeq))
	if err != nil {
		return nil, nil, err
	}
	seq := last
	var updates []abci.ValidatorUpdate
	var events []abci.Event
	for _, mb := range mbs {
		typ := misbehaviorType(mb.Type)
		v, ok := byAddr[string(mb.Validator.Address)]
		if typ == "" || !ok {
			a.log.Warn("evidence ignored: not against a validator of the ledger's set", "height", height,
				"type", mb.Type.String(), "address", cmtbytes.HexBytes(mb.Validator.Address).String(), "at", mb.Height)
			continue
		}
		seq++
		ev := &record.Evidence{Seq: seq, Type: typ, Address: record.ValidatorAddress(v.PubKey), PubKey: v.PubKey, Height: mb.Height,
			Time: mb.Time.UTC().Format(time.RFC3339Nano), Power: mb.Validator.Power, TotalPower: mb.TotalVotingPower, Committed: height}
		power := v.Power
		if remaining <= 1 {
			ev.Note = "not removed: the last validator of the set"
		} else {
			ev.Removed, power = true, 0
			remaining--
			delete(byAddr, string(mb.Validator.Address))
			buf.del(validatorKey(v.PubKey))
			updates = append(updates, abci.ValidatorUpdate{
				PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: v.PubKey}}, Power: 0,
			})
		}
		buf.set(record.EvidenceKey(seq), ev)
		if err := appendValidatorEvent(st, buf, v.PubKey, record.ValidatorEvent{Height: height, Kind: record.ValEventEvidence, Power: power, Evidence: seq, Note: ev.Note}); err != nil {
			return nil, nil, err
		}
		events = append(events, abci.Event{Type: "evidence", Attributes: []abci.EventAttribute{
			{Key: "seq", Value: strconv.FormatUint(seq, 10), Index: true},
			{Key: "type", Value: typ, Index: true},
			{Key: "address", Value: ev.Address.String(), Index: true},
			{Key: "pub_key", Value: fmt.Sprintf("%X", v.PubKey), Index: true},
			{Key: "height", Value: strconv.FormatInt(mb.Height, 10), Index: true},
			{Key: "removed", Value: strconv.FormatBool(ev.Removed), Index: true},
		}})
		a.log.Warn("byzantine validator", "evidence", seq, "type", typ, "address", ev.Address.String(), "at", mb.Height, "removed", ev.Removed)
	}
	if seq > last {
		buf.set([]byte(record.KeyEvidenceSeq), u64bytes(seq))
	}
	if err := buf.flush(); err != nil {
		return nil, nil, err
	}
	return updates, events, nil
}

// mergeValidatorUpdates keeps one update per key, the last one, at the
// place of the key's first update: CometBFT refuses a block's updates that
// name a key twice (evidence and a validator.update, or two
// validator.updates, in one block).
func mergeValidatorUpdates(us []abci.ValidatorUpdate) []abci.ValidatorUpdate {
	if len(us) < 2 {
		return us
	}
	at := make(map[string]int, len(us))
	out := make([]abci.ValidatorUpdate, 0, len(us))
	for _, u := range us {
		k := u.PubKey.String()
		if i, ok := at[k]; ok {
			out[i].Power = u.Power
			continue
		}
		at[k] = len(out)
		out = append(out, u)
	}
	return out
}

// ValidatorInfo returns what the ledger knows of the validator with this
// address, in or out of the set.
func (s *State) ValidatorInfo(addr []byte) (*record.ValidatorInfo, error) {
	var v record.ValidatorInfo
	ok, err := s.get(record.ValidatorInfoKey(addr), &v)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("validator %X: %w", addr, ErrNotFound)
	}
	return &v, nil
}

// ValidatorHistory returns up to limit history entries of a validator,
// from seq from (1-based).
func (s *State) ValidatorHistory(addr []byte, from uint64, limit int) ([]record.ValidatorEvent, error) {
	if from == 0 {
		from = 1
	}
	p := []byte(record.PrefixValHistory + strings.ToUpper(hex.EncodeToString(addr)) + "/")
	var out []record.ValidatorEvent
	err := s.scan(record.ValidatorHistoryKey(addr, from), prefixEnd(p), func(_, v []byte) (bool, error) {
		var e record.ValidatorEvent
		if err := record.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decoding validator history: %w", err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Evidence returns one evidence record.
func (s *State) Evidence(seq uint64) (*record.Evidence, error) {
	var e record.Evidence
	ok, err := s.get(record.EvidenceKey(seq), &e)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("evidence %d: %w", seq, ErrNotFound)
	}
	return &e, nil
}

// EvidenceList lists evidence records in seq order, those above after, at
// most limit.
func (s *State) EvidenceList(after uint64, limit int) ([]record.Evidence, error) {
	if after == ^uint64(0) {
		return nil, nil
	}
	var out []record.Evidence
	err := s.scan(record.EvidenceKey(after+1), prefixEnd([]byte(record.PrefixEvidence)), func(_, v []byte) (bool, error) {
		var e record.Evidence
		if err := record.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decoding evidence: %w", err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}
