package datalog

import (
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// VerifyInclusion checks that entry is leaf i of the tree of the given size
// and root, using an inclusion proof from Log.InclusionProof. Errors wrap
// ErrInvalidProof.
func VerifyInclusion(entry []byte, i, size uint64, p [][HashSize]byte, root [HashSize]byte) error {
	if i >= size {
		return fmt.Errorf("%w: leaf index %d is not below tree size %d", ErrInvalidProof, i, size)
	}
	leaf := LeafHash(entry)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, leaf[:], toSlices(p), root[:]); err != nil {
		return fmt.Errorf("%w: entry %d in tree of size %d: %v", ErrInvalidProof, i, size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree of size from and root fromRoot is a
// prefix of the tree of size to and root toRoot, using a consistency proof
// from Log.ConsistencyProof. The tree of size 0 must have the empty root,
// SHA-256(""). Errors wrap ErrInvalidProof.
func VerifyConsistency(from, to uint64, fromRoot, toRoot [HashSize]byte, p [][HashSize]byte) error {
	if from > to {
		return fmt.Errorf("%w: consistency from tree size %d to smaller size %d", ErrInvalidProof, from, to)
	}
	if from == 0 && fromRoot != emptyRoot() {
		return fmt.Errorf("%w: root of the empty tree is %x, want %x", ErrInvalidProof, fromRoot, emptyRoot())
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, toSlices(p), fromRoot[:], toRoot[:]); err != nil {
		return fmt.Errorf("%w: consistency from tree size %d to %d: %v", ErrInvalidProof, from, to, err)
	}
	return nil
}
