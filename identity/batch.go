package identity

import (
	"crypto/rand"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Batch verifies many signatures at once: the Ed25519 ones with
// curve25519-voi's batch verifier, the others one by one. The answer for
// each signature is exactly that of PublicKey.Verify.
//
// Because Verify follows crypto/ed25519 (the cofactorless equation), voi
// cannot take its random-linear-combination shortcut: that checks the
// cofactored equation, which accepts signatures crafted with small-order
// components that Verify refuses, and two code paths that disagree on a
// signature would split consensus. voi therefore checks each Ed25519
// signature on its own, so a batch costs about what the signatures cost
// one by one (see BenchmarkVerify); it is the place where a faster,
// cofactored rule could be adopted for Verify and Batch together.
//
// A Batch is not safe for concurrent use, and keeps references to what is
// added until Verify returns: do not modify the slices before then.
type Batch struct {
	entries []batchEntry
}

type batchEntry struct {
	pub      PublicKey
	msg, sig []byte
}

// NewBatch returns an empty batch with room for n signatures.
func NewBatch(n int) *Batch {
	return &Batch{entries: make([]batchEntry, 0, max(n, 0))}
}

// Add adds a signature to check.
func (b *Batch) Add(pub PublicKey, msg, sig []byte) {
	b.entries = append(b.entries, batchEntry{pub: pub, msg: msg, sig: sig})
}

// Verify checks every signature added. valid[i] reports whether the i-th
// one added verifies; allValid whether all do (true for an empty batch).
func (b *Batch) Verify() (allValid bool, valid []bool) {
	valid = make([]bool, len(b.entries))
	var (
		bv  *voi.BatchVerifier
		idx []int // position in b.entries of each entry added to bv
	)
	opts := ed25519VerifyOptions()
	for i, e := range b.entries {
		if e.pub.Alg == Ed25519 && len(e.pub.Bytes) == ed25519PublicKeySize && len(e.sig) == signatureSize {
			if bv == nil {
				// Expanded public keys only pay off for the
				// cofactored batch equation.
				bv = voi.NewBatchVerifierWithCapacity(len(b.entries) - i).ForceNoPublicKeyExpansion()
			}
			bv.AddWithOptions(e.pub.Bytes, e.msg, e.sig, opts)
			idx = append(idx, i)
			continue
		}
		// Other algorithms, and malformed Ed25519 input that Verify
		// refuses without doing any curve arithmetic.
		valid[i] = e.pub.Verify(e.msg, e.sig) == nil
	}
	if bv != nil {
		_, ok := bv.Verify(rand.Reader)
		for j, i := range idx {
			valid[i] = ok[j]
		}
	}
	allValid = true
	for _, v := range valid {
		allValid = allValid && v
	}
	return allValid, valid
}
