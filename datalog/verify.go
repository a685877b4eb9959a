package datalog

import (
	"fmt"

	"github.com/thingnet/thingnet/proof"
)

// VerifyInclusion checks that entry is leaf i of the tree of the given size
// and root, using an inclusion proof from Log.InclusionProof: the log's
// form of proof.VerifyInclusion, the one verifier. Errors wrap
// ErrInvalidProof.
func VerifyInclusion(entry []byte, i, size uint64, p [][HashSize]byte, root [HashSize]byte) error {
	if err := proof.VerifyInclusion(entry, i, size, toSlices(p), root[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProof, err)
	}
	return nil
}

// VerifyConsistency checks that the tree of size from and root fromRoot is a
// prefix of the tree of size to and root toRoot, using a consistency proof
// from Log.ConsistencyProof (proof.VerifyConsistency). The tree of size 0
// must have the empty root, SHA-256(""). Errors wrap ErrInvalidProof.
func VerifyConsistency(from, to uint64, fromRoot, toRoot [HashSize]byte, p [][HashSize]byte) error {
	if err := proof.VerifyConsistency(from, to, fromRoot[:], toRoot[:], toSlices(p)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProof, err)
	}
	return nil
}
