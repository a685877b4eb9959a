package record

import (
	"encoding/binary"
	"encoding/hex"
	"strings"

	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
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
	PrefixEvidence   = "ve/" // ve/<seq u64 BE> -> Evidence
	prefixValInfo    = "vi/" // vi/<hex address> -> ValidatorInfo
	PrefixValHistory = "vh/" // vh/<hex address>/<seq u64 BE> -> ValidatorEvent
	KeyEvidenceSeq   = "m/evseq"
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
	return binary.BigEndian.AppendUint64([]byte(PrefixEvidence), seq)
}

func ValidatorInfoKey(addr []byte) []byte {
	return []byte(prefixValInfo + strings.ToUpper(hex.EncodeToString(addr)))
}

func ValidatorHistoryKey(addr []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixValHistory+strings.ToUpper(hex.EncodeToString(addr))+"/"), seq)
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
