package identity

import (
	"crypto/rand"
	"sync"

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
	keys    *ExpandedKeys // nil: every key is decompressed for each signature
}

type batchEntry struct {
	pub      PublicKey
	msg, sig []byte
}

// NewBatch returns an empty batch with room for n signatures.
func NewBatch(n int) *Batch {
	return &Batch{entries: make([]batchEntry, 0, max(n, 0))}
}

// NewBatchWithKeys is NewBatch for a verifier that sees the same keys
// again and again (a gateway's devices): each Ed25519 key is decompressed
// once, kept in keys, and reused by every batch given the same keys. The
// answers are those of NewBatch.
func NewBatchWithKeys(n int, keys *ExpandedKeys) *Batch {
	b := NewBatch(n)
	b.keys = keys
	return b
}

// ExpandedKeys holds the expanded form (voi's ExpandedPublicKey: the
// decompressed point, ~1.5 KiB) of the Ed25519 public keys that batches
// verified: decompressing a key is about a fifth of the cost of a
// signature in a large batch. It holds at most max keys and forgets them
// all when full. It is safe for concurrent use.
type ExpandedKeys struct {
	mu  sync.Mutex
	max int
	m   map[[ed25519PublicKeySize]byte]*voi.ExpandedPublicKey
}

// NewExpandedKeys returns an empty cache of at most size keys (at least 1).
func NewExpandedKeys(size int) *ExpandedKeys {
	return &ExpandedKeys{max: max(size, 1), m: map[[ed25519PublicKeySize]byte]*voi.ExpandedPublicKey{}}
}

// get returns the expanded form of pub (ed25519PublicKeySize bytes), or
// nil if pub is not a point: the caller then takes the path that refuses it.
func (k *ExpandedKeys) get(pub []byte) *voi.ExpandedPublicKey {
	key := [ed25519PublicKeySize]byte(pub)
	k.mu.Lock()
	x, ok := k.m[key]
	k.mu.Unlock()
	if ok {
		return x
	}
	x, err := voi.NewExpandedPublicKey(pub)
	if err != nil {
		return nil
	}
	k.mu.Lock()
	if len(k.m) >= k.max {
		clear(k.m)
	}
	k.m[key] = x
	k.mu.Unlock()
	return x
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
		if b.keys != nil {
			if x := b.keys.get(e.pub.Bytes); x != nil {
				// voi checks an expanded key as it checks a compressed one
				// (the outcomes are computed when expanding).
				bv.AddExpandedWithOptions(x, e.msg, e.sig, opts)
				continue
			}
		}
		bv.AddWithOptions(e.pub.Bytes, e.msg, e.sig, opts)
	}
	return bv
}
