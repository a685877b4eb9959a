package datalog

import (
	"crypto/sha256"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size in bytes of every hash in the log (SHA-256).
const HashSize = sha256.Size

// LeafHash returns the RFC 6962 leaf hash of entry: SHA-256(0x00 || entry).
func LeafHash(entry []byte) [HashSize]byte {
	return toHash(rfc6962.DefaultHasher.HashLeaf(entry))
}

// emptyRoot is the root of the empty tree: SHA-256("").
func emptyRoot() [HashSize]byte {
	return sha256.Sum256(nil)
}

// newRangeFactory returns a compact range factory hashing with RFC 6962.
func newRangeFactory() *compact.RangeFactory {
	return &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
}

// toHash copies a hash returned by the merkle library into an array. b must
// be HashSize bytes long (the library's SHA-256 hasher guarantees it).
func toHash(b []byte) [HashSize]byte {
	var h [HashSize]byte
	copy(h[:], b)
	return h
}

// toHashes converts a proof from the merkle library's form.
func toHashes(bs [][]byte) [][HashSize]byte {
	hs := make([][HashSize]byte, len(bs))
	for i, b := range bs {
		hs[i] = toHash(b)
	}
	return hs
}

// toSlices converts a proof to the merkle library's form.
func toSlices(hs [][HashSize]byte) [][]byte {
	bs := make([][]byte, len(hs))
	for i := range hs {
		bs[i] = hs[i][:]
	}
	return bs
}
