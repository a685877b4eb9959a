package record

import (
	"errors"
	"fmt"

	ics23 "github.com/cosmos/ics23/go"
)

// Proof is a value (or its absence) at a height, with an ICS-23 proof
// against the app hash of that height's state, which CometBFT puts in the
// header of block Height+1.
type Proof struct {
	Height int64  `json:"height"`
	Key    []byte `json:"key"`
	Value  []byte `json:"value,omitempty"` // nil: the proof shows the key is absent
	Root   []byte `json:"root"`            // app hash of the state after block Height
	Proof  []byte `json:"proof"`           // protobuf-encoded ics23.CommitmentProof
}

// ErrBadProof is returned when a proof does not check against a root.
var ErrBadProof = errors.New("proof does not verify")

// VerifyProof checks a proof against an app hash taken from a trusted
// header: the value's inclusion, or with value nil, the key's absence.
func VerifyProof(root, key, value, proof []byte) error {
	var cp ics23.CommitmentProof
	if err := cp.Unmarshal(proof); err != nil {
		return fmt.Errorf("%w: decoding: %v", ErrBadProof, err)
	}
	var ok bool
	if value != nil {
		ok = ics23.VerifyMembership(ics23.IavlSpec, root, &cp, key, value)
	} else {
		ok = ics23.VerifyNonMembership(ics23.IavlSpec, root, &cp, key)
	}
	if !ok {
		return fmt.Errorf("%w: key %q against root %X", ErrBadProof, key, root)
	}
	return nil
}
