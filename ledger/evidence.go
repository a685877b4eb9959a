package ledger

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
)

// Byzantine validators. CometBFT verifies evidence of misbehaviour (two
// conflicting votes signed by one validator, or a light-client attack),
// gossips it and commits it in a block; FinalizeBlock hands it to the
// application as RequestFinalizeBlock.Misbehavior. The ledger records each
// piece of evidence against a validator of its set, appends it to the
// validator's history and removes the validator (power 0), before the
// block's txs run, so that the validator's approvals already count for
// nothing in that block's validator.update and credit.mint txs.
//
// Rules (deterministic: only the block's evidence, in block order, and the
// state decide):
//   - evidence against an address that is not in the ledger's validator set
//     (unknown, or already removed, also earlier in the same block) is
//     ignored: nothing is recorded;
//   - the last validator is never removed (a set must not become empty):
//     the evidence is recorded with Removed false and a note;
//   - a removed validator comes back only through validator.update, with the
//     approvals of more than 2/3 of the remaining power.
const (
	prefixEvidence   = "ve/" // ve/<seq u64 BE> -> Evidence
	prefixValInfo    = "vi/" // vi/<hex address> -> ValidatorInfo
	prefixValHistory = "vh/" // vh/<hex address>/<seq u64 BE> -> ValidatorEvent
	keyEvidenceSeq   = "m/evseq"
)

// Evidence types, as recorded.
const (
	EvidenceDuplicateVote     = "duplicate_vote"
	EvidenceLightClientAttack = "light_client_attack"
)

// Validator history kinds.
const (
	ValEventGenesis  = "genesis"
	ValEventUpdate   = KindValidatorUpdate
	ValEventEvidence = "evidence"
)

// EvidenceKey and the functions below return state keys, for proofs.
func EvidenceKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixEvidence), seq)
}
func ValidatorInfoKey(addr []byte) []byte {
	return []byte(prefixValInfo + strings.ToUpper(hex.EncodeToString(addr)))
}
func ValidatorHistoryKey(addr []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixValHistory+strings.ToUpper(hex.EncodeToString(addr))+"/"), seq)
}

// ValidatorAddress is CometBFT's address of an Ed25519 consensus key: the
// first 20 bytes of its SHA-256.
func ValidatorAddress(pub []byte) cmtbytes.HexBytes {
	return cmtbytes.HexBytes(ed25519.PubKey(pub).Address())
}

// Evidence is misbehaviour of a validator, committed by CometBFT in block
// Committed and acted on by the ledger.
type Evidence struct {
	Seq        uint64            `cbor:"1,keyasint" json:"seq"`
	Type       string            `cbor:"2,keyasint" json:"type"` // duplicate_vote or light_client_attack
	Address    cmtbytes.HexBytes `cbor:"3,keyasint" json:"address"`
	PubKey     []byte            `cbor:"4,keyasint" json:"pub_key"`
	Height     int64             `cbor:"5,keyasint" json:"height"` // height of the misbehaviour
	Time       string            `cbor:"6,keyasint" json:"time"`   // time of the block at Height (RFC 3339, UTC)
	Power      int64             `cbor:"7,keyasint" json:"power"`  // the validator's power at Height
	TotalPower int64             `cbor:"8,keyasint" json:"total_power"`
	Committed  int64             `cbor:"9,keyasint" json:"committed"` // height of the block that carried it
	Removed    bool              `cbor:"10,keyasint" json:"removed"`  // the ledger removed the validator
	Note       string            `cbor:"11,keyasint,omitempty" json:"note,omitempty"`
}

// ValidatorInfo is what the ledger knows of a validator, in or out of the
// set: it stays after the validator is removed.
type ValidatorInfo struct {
	Address  cmtbytes.HexBytes `cbor:"1,keyasint" json:"address"`
	PubKey   []byte            `cbor:"2,keyasint" json:"pub_key"`
	Power    int64             `cbor:"3,keyasint" json:"power"`                       // 0: not in the set
	History  uint64            `cbor:"4,keyasint" json:"history"`                     // entries in its history
	Evidence uint64            `cbor:"5,keyasint" json:"evidence"`                    // evidence records against it
	Removed  int64             `cbor:"6,keyasint,omitempty" json:"removed,omitempty"` // height of its last removal for misbehaviour
}

// ValidatorEvent is one entry of a validator's history.
type ValidatorEvent struct {
	Seq      uint64 `cbor:"1,keyasint" json:"seq"`
	Height   int64  `cbor:"2,keyasint" json:"height"`
	Kind     string `cbor:"3,keyasint" json:"kind"`                         // genesis, validator.update or evidence
	Power    int64  `cbor:"4,keyasint" json:"power"`                        // power after the change
	Tx       []byte `cbor:"5,keyasint,omitempty" json:"tx,omitempty"`       // validator.update: the tx's hash
	Evidence uint64 `cbor:"6,keyasint,omitempty" json:"evidence,omitempty"` // evidence: its seq
	Note     string `cbor:"7,keyasint,omitempty" json:"note,omitempty"`
}

// appendValidatorEvent appends ev to pub's history and updates its info
// record (power after the change, counters). It reads through st, which
// must read through buf, so that two entries in one buffer follow each other.
func appendValidatorEvent(st *State, buf *buffer, pub []byte, ev ValidatorEvent) error {
	addr := ValidatorAddress(pub)
	info, err := st.ValidatorInfo(addr)
	switch {
	case errors.Is(err, ErrNotFound):
		info = &ValidatorInfo{Address: addr, PubKey: pub}
	case err != nil:
		return err
	}
	info.PubKey = pub
	info.Power = ev.Power
	info.History++
	ev.Seq = info.History
	if ev.Kind == ValEventEvidence {
		info.Evidence++
		if ev.Power == 0 {
			info.Removed = ev.Height
		}
	}
	buf.set(ValidatorInfoKey(addr), info)
	buf.set(ValidatorHistoryKey(addr, ev.Seq), &ev)
	return nil
}

// genesisValidators starts the history of the genesis validators.
// Their entries have height 0: the state before the first block.
func genesisValidators(buf *buffer, vals []Validator) error {
	st := &State{r: buf}
	for _, v := range vals {
		if err := appendValidatorEvent(st, buf, v.PubKey, ValidatorEvent{Kind: ValEventGenesis, Power: v.Power}); err != nil {
			return err
		}
	}
	return nil
}

func misbehaviorType(t abci.MisbehaviorType) string {
	switch t {
	case abci.MisbehaviorType_DUPLICATE_VOTE:
		return EvidenceDuplicateVote
	case abci.MisbehaviorType_LIGHT_CLIENT_ATTACK:
		return EvidenceLightClientAttack
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
	byAddr := make(map[string]Validator, len(vals)) // lookups only: never iterated
	for _, v := range vals {
		byAddr[string(ValidatorAddress(v.PubKey))] = v
	}
	remaining := len(vals)
	last, err := st.u64([]byte(keyEvidenceSeq))
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
		ev := &Evidence{Seq: seq, Type: typ, Address: ValidatorAddress(v.PubKey), PubKey: v.PubKey, Height: mb.Height,
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
		buf.set(EvidenceKey(seq), ev)
		if err := appendValidatorEvent(st, buf, v.PubKey, ValidatorEvent{Height: height, Kind: ValEventEvidence, Power: power, Evidence: seq, Note: ev.Note}); err != nil {
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
		buf.set([]byte(keyEvidenceSeq), u64bytes(seq))
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
func (s *State) ValidatorInfo(addr []byte) (*ValidatorInfo, error) {
	var v ValidatorInfo
	ok, err := s.get(ValidatorInfoKey(addr), &v)
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
func (s *State) ValidatorHistory(addr []byte, from uint64, limit int) ([]ValidatorEvent, error) {
	if from == 0 {
		from = 1
	}
	p := []byte(prefixValHistory + strings.ToUpper(hex.EncodeToString(addr)) + "/")
	var out []ValidatorEvent
	err := s.scan(ValidatorHistoryKey(addr, from), prefixEnd(p), func(_, v []byte) (bool, error) {
		var e ValidatorEvent
		if err := Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decoding validator history: %w", err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Evidence returns one evidence record.
func (s *State) Evidence(seq uint64) (*Evidence, error) {
	var e Evidence
	ok, err := s.get(EvidenceKey(seq), &e)
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
func (s *State) EvidenceList(after uint64, limit int) ([]Evidence, error) {
	if after == ^uint64(0) {
		return nil, nil
	}
	var out []Evidence
	err := s.scan(EvidenceKey(after+1), prefixEnd([]byte(prefixEvidence)), func(_, v []byte) (bool, error) {
		var e Evidence
		if err := Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decoding evidence: %w", err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}
