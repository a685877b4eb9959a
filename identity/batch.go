package identity

import (
	"crypto/rand"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Batch verifies many signatures at once: the Ed25519 ones with
// curve25519-voi's batch verifier, the others one by one. The answer for
// each signature is that of PublicKey.Verify.
//
// Ed25519 signatures are checked with the ZIP-215 rule, as by Verify: the
// cofactored equation [8][S]B = [8]R + [8][k]A, with A and R accepted in
// any encoding ZIP-215 accepts and S required to be canonical (S < L).
// Under that rule the random linear combination that voi checks for the
// whole batch holds if and only if every signature verifies on its own
// (up to a 2^-128 chance over the batch's random coefficients), so a node
// that batch-verifies and a node that verifies one by one cannot disagree.
// If the combination fails, voi verifies each signature of the batch on its
// own to find the bad ones, so a batch is fast only when all its
// signatures are valid.
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
	var idx []int // positions in b.entries of the Ed25519 signatures
	for i, e := range b.entries {
		if e.batchable() {
			idx = append(idx, i)
			continue
		}
		// Other algorithms, and malformed Ed25519 input that Verify
		// refuses without doing any curve arithmetic.
		valid[i] = e.pub.Verify(e.msg, e.sig) == nil
	}
	if len(idx) > 0 {
		_, ok := b.ed25519Verifier(idx).Verify(rand.Reader)
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

// batchable reports whether e goes to voi's batch verifier: an Ed25519 key
// and signature of the right sizes.
func (e *batchEntry) batchable() bool {
	return e.pub.Alg == Ed25519 && len(e.pub.Bytes) == ed25519PublicKeySize && len(e.sig) == signatureSize
}

// ed25519Verifier returns a voi batch verifier holding the entries at idx,
// all batchable, with the options of Verify.
//
// Public keys are not expanded: the expanded form (a table of multiples of
// -A) pays off only when a key is used several times, and building it for
// keys that are used once made batches of 16 to 93 signatures about 5%
// slower (voi does not use it for 94 signatures or more).
func (b *Batch) ed25519Verifier(idx []int) *voi.BatchVerifier {
	bv := voi.NewBatchVerifierWithCapacity(len(idx)).ForceNoPublicKeyExpansion()
	opts := ed25519VerifyOptions()
	for _, i := range idx {
		e := &b.entries[i]
		bv.AddWithOptions(e.pub.Bytes, e.msg, e.sig, opts)
	}
	return bv
}
