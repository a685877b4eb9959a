package proof

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// ErrInvalidProof is returned (wrapped) when an RFC 6962 proof does not
// check.
var ErrInvalidProof = errors.New("invalid proof")

// LeafHash is the RFC 6962 leaf hash of a log entry: SHA-256(0x00 ‖ entry).
func LeafHash(entry []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(entry) }

// VerifyInclusion checks that entry is leaf index of the RFC 6962 tree of
// the given size and root (SHA-256; leaf hash LeafHash(entry)), with the
// inclusion path as a log gives it. Hashes must be 32 bytes. Errors wrap
// ErrInvalidProof.
func VerifyInclusion(entry []byte, index, size uint64, path [][]byte, root []byte) error {
	return VerifyLeafInclusion(LeafHash(entry), index, size, path, root)
}

// VerifyLeafInclusion is VerifyInclusion given the entry's leaf hash.
func VerifyLeafInclusion(leaf []byte, index, size uint64, path [][]byte, root []byte) error {
	if index >= size {
		return fmt.Errorf("%w: leaf index %d is not below tree size %d", ErrInvalidProof, index, size)
	}
	if len(root) != rfc6962.DefaultHasher.Size() {
		return fmt.Errorf("%w: the root is %d bytes, not %d", ErrInvalidProof, len(root), rfc6962.DefaultHasher.Size())
	}
	if len(leaf) != rfc6962.DefaultHasher.Size() {
		return fmt.Errorf("%w: the leaf hash is %d bytes, not %d", ErrInvalidProof, len(leaf), rfc6962.DefaultHasher.Size())
	}
	for i, h := range path {
		if len(h) != rfc6962.DefaultHasher.Size() {
			return fmt.Errorf("%w: inclusion hash %d is %d bytes", ErrInvalidProof, i, len(h))
		}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf, path, root); err != nil {
		return fmt.Errorf("%w: entry %d in tree of size %d: %v", ErrInvalidProof, index, size, err)
	}
	return nil
}

// VerifyConsistency checks that the RFC 6962 tree of size from and root
// fromRoot is a prefix of the tree of size to and root toRoot, with a
// consistency proof as a log gives it. The tree of size 0 has the root
// SHA-256(""). Errors wrap ErrInvalidProof.
func VerifyConsistency(from, to uint64, fromRoot, toRoot []byte, path [][]byte) error {
	if from > to {
		return fmt.Errorf("%w: consistency from tree size %d to smaller size %d", ErrInvalidProof, from, to)
	}
	if from == 0 && string(fromRoot) != string(rfc6962.DefaultHasher.EmptyRoot()) {
		return fmt.Errorf("%w: root of the empty tree is %x, want %x", ErrInvalidProof, fromRoot, rfc6962.DefaultHasher.EmptyRoot())
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, path, fromRoot, toRoot); err != nil {
		return fmt.Errorf("%w: consistency from tree size %d to %d: %v", ErrInvalidProof, from, to, err)
	}
	return nil
}
