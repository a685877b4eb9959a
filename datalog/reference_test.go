package datalog

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// buildWithReference appends n entries to l in random batches, checking the
// root after each against the library's in-memory reference tree, which it
// returns.
func buildWithReference(t *testing.T, l *Log, n int, maxBatch int, rng *rand.Rand) *testonly.Tree {
	t.Helper()
	ref := testonly.New(rfc6962.DefaultHasher)
	for int(l.Size()) < n {
		k := min(1+rng.IntN(maxBatch), n-int(l.Size()))
		ref.AppendData(mustAppend(t, l, k)...)
		size, root := l.Root()
		if size != ref.Size() || root != toHash(ref.Hash()) {
			t.Fatalf("Root() = %d, %x; want %d, %x", size, root, ref.Size(), ref.Hash())
		}
	}
	return ref
}

func TestRootsAndProofsMatchReference(t *testing.T) {
	const n = 300     // every root up to n
	const pairs = 130 // every (i, size) and (from, to) up to this size
	l, _ := openTest(t)
	rng := rand.New(rand.NewPCG(1, 2))
	ref := buildWithReference(t, l, n, 17, rng)

	for size := uint64(0); size <= n; size++ {
		got, err := l.RootAt(size)
		if want := toHash(ref.HashAt(size)); err != nil || got != want {
			t.Fatalf("RootAt(%d) = %x, %v; want %x, nil", size, got, err, want)
		}
	}
	for size := uint64(1); size <= pairs; size++ {
		root := toHash(ref.HashAt(size))
		for i := uint64(0); i < size; i++ {
			checkInclusion(t, l, ref, i, size, root)
		}
	}
	for to := uint64(0); to <= pairs; to++ {
		for from := uint64(0); from <= to; from++ {
			checkConsistency(t, l, ref, from, to)
		}
	}
	// Random pairs over the whole log.
	for range 2000 {
		size := 1 + rng.Uint64N(n)
		checkInclusion(t, l, ref, rng.Uint64N(size), size, toHash(ref.HashAt(size)))
		from := rng.Uint64N(size + 1)
		checkConsistency(t, l, ref, from, size)
	}
}

func TestRandomLargeSizes(t *testing.T) {
	l, _ := openTest(t)
	rng := rand.New(rand.NewPCG(3, 4))
	ref := buildWithReference(t, l, 3000+rng.IntN(3000), 700, rng)
	n := ref.Size()
	for range 1000 {
		size := 1 + rng.Uint64N(n)
		root := toHash(ref.HashAt(size))
		got, err := l.RootAt(size)
		if err != nil || got != root {
			t.Fatalf("RootAt(%d) = %x, %v; want %x, nil", size, got, err, root)
		}
		checkInclusion(t, l, ref, rng.Uint64N(size), size, root)
		checkConsistency(t, l, ref, rng.Uint64N(size+1), size)
	}
}

// checkInclusion checks InclusionProof(i, size) against the reference tree
// and that it verifies.
func checkInclusion(t *testing.T, l *Log, ref *testonly.Tree, i, size uint64, root [HashSize]byte) {
	t.Helper()
	got, err := l.InclusionProof(i, size)
	if err != nil {
		t.Fatalf("InclusionProof(%d, %d) = %v; want nil error", i, size, err)
	}
	want, err := ref.InclusionProof(i, size)
	if err != nil {
		t.Fatalf("reference InclusionProof(%d, %d) = %v", i, size, err)
	}
	if !slices.Equal(got, toArrays(want)) {
		t.Fatalf("InclusionProof(%d, %d) = %x; want %x", i, size, got, want)
	}
	if err := VerifyInclusion(testEntry(i), i, size, got, root); err != nil {
		t.Fatalf("VerifyInclusion(entry %d, size %d) = %v; want nil", i, size, err)
	}
}

// checkConsistency checks ConsistencyProof(from, to) against the reference
// tree and that it verifies.
func checkConsistency(t *testing.T, l *Log, ref *testonly.Tree, from, to uint64) {
	t.Helper()
	got, err := l.ConsistencyProof(from, to)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d) = %v; want nil error", from, to, err)
	}
	want, err := ref.ConsistencyProof(from, to)
	if err != nil {
		t.Fatalf("reference ConsistencyProof(%d, %d) = %v", from, to, err)
	}
	if !slices.Equal(got, toArrays(want)) {
		t.Fatalf("ConsistencyProof(%d, %d) = %x; want %x", from, to, got, want)
	}
	r1, r2 := toHash(ref.HashAt(from)), toHash(ref.HashAt(to))
	if err := VerifyConsistency(from, to, r1, r2, got); err != nil {
		t.Fatalf("VerifyConsistency(%d, %d) = %v; want nil", from, to, err)
	}
}

// TestKnownVectors checks the hashing and verification against the RFC 6962
// test vectors (from Certificate Transparency) shipped with the library.
func TestKnownVectors(t *testing.T) {
	leaves := testonly.LeafInputs()
	for i, leaf := range leaves {
		if got, want := LeafHash(leaf), toHash(testonly.NodeHashes()[0][i]); got != want {
			t.Errorf("LeafHash(%x) = %x; want %x", leaf, got, want)
		}
	}
	if got, want := emptyRoot(), toHash(testonly.EmptyRootHash()); got != want {
		t.Errorf("emptyRoot() = %x; want %x", got, want)
	}
	// A literal check, independent of the library's constants.
	if h, want := LeafHash([]byte{0x00}), "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"; hex.EncodeToString(h[:]) != want {
		t.Errorf("LeafHash(00) = %x; want %s", h, want)
	}
	// The vectors' first leaf is empty, which Append refuses, so build the
	// proofs with the reference tree and check that VerifyInclusion and
	// VerifyConsistency accept them against the published roots.
	ref := testonly.New(rfc6962.DefaultHasher)
	ref.AppendData(leaves...)
	roots := testonly.RootHashes()
	for size := uint64(1); size < uint64(len(roots)); size++ {
		root := toHash(roots[size])
		for i := uint64(0); i < size; i++ {
			p, err := ref.InclusionProof(i, size)
			if err != nil {
				t.Fatalf("reference InclusionProof(%d, %d) = %v", i, size, err)
			}
			if err := VerifyInclusion(leaves[i], i, size, toArrays(p), root); err != nil {
				t.Errorf("VerifyInclusion(leaf %d, size %d) = %v; want nil", i, size, err)
			}
		}
		for from := uint64(0); from <= size; from++ {
			p, err := ref.ConsistencyProof(from, size)
			if err != nil {
				t.Fatalf("reference ConsistencyProof(%d, %d) = %v", from, size, err)
			}
			if err := VerifyConsistency(from, size, toHash(roots[from]), root, toArrays(p)); err != nil {
				t.Errorf("VerifyConsistency(%d, %d) = %v; want nil", from, size, err)
			}
		}
	}
	// The log itself over the nonempty vectors: entries 1..7 as leaves
	// 0..6 must give the reference tree of those leaves.
	l, _ := openTest(t)
	if _, err := l.Append(leaves[1:]); err != nil {
		t.Fatalf("Append(vectors) = %v; want nil", err)
	}
	ref2 := testonly.New(rfc6962.DefaultHasher)
	ref2.AppendData(leaves[1:]...)
	for size := uint64(0); size <= uint64(len(leaves)-1); size++ {
		got, err := l.RootAt(size)
		if want := ref2.HashAt(size); err != nil || !bytes.Equal(got[:], want) {
			t.Errorf("RootAt(%d) = %x, %v; want %x, nil", size, got, err, want)
		}
	}
}
