package message

import (
	"fmt"
	"math/bits"

	"github.com/transparency-dev/merkle/rfc6962"
)

// ExchangeRoot is the RFC 6962 Merkle root over the hashes of the messages
// of an exchange (each the SHA-256 of a signed message, as receipts list
// them), in order: what a party anchors on the ledger (ledger
// ExchangeAnchor) so that any one message can later be proven part of it.
func ExchangeRoot(hashes [][]byte) ([]byte, error) {
	if len(hashes) == 0 {
		return nil, fmt.Errorf("mesh: an exchange has at least one message")
	}
	for i, h := range hashes {
		if len(h) != 32 {
			return nil, fmt.Errorf("mesh: message hash %d is %d bytes, want 32", i, len(h))
		}
	}
	return mth(hashes), nil
}

// ExchangeInclusion is the RFC 6962 inclusion proof of message i of an
// exchange, checkable with the transparency-dev/merkle proof package
// (VerifyInclusion with rfc6962.DefaultHasher, the leaf being the hash).
func ExchangeInclusion(hashes [][]byte, i int) ([][]byte, error) {
	if i < 0 || i >= len(hashes) {
		return nil, fmt.Errorf("mesh: message %d of an exchange of %d", i, len(hashes))
	}
	return path(i, hashes), nil
}

// mth is RFC 6962's Merkle Tree Hash (§2.1).
func mth(d [][]byte) []byte {
	if len(d) == 1 {
		return rfc6962.DefaultHasher.HashLeaf(d[0])
	}
	k := split(len(d))
	return rfc6962.DefaultHasher.HashChildren(mth(d[:k]), mth(d[k:]))
}

// path is RFC 6962's audit path PATH(m, D[n]) (§2.1.1).
func path(m int, d [][]byte) [][]byte {
	if len(d) == 1 {
		return nil
	}
	k := split(len(d))
	if m < k {
		return append(path(m, d[:k]), mth(d[k:]))
	}
	return append(path(m-k, d[k:]), mth(d[:k]))
}

// split is the largest power of two below n (n > 1).
func split(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }
