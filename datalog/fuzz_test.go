package datalog

import (
	"bytes"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// FuzzDecodeState checks that decoding arbitrary stored state bytes never
// panics, and that whatever decodes is a valid compact range that encodes
// back to the same bytes.
func FuzzDecodeState(f *testing.F) {
	h := bytes.Repeat([]byte{0xab}, HashSize)
	f.Add(encodeState(0, nil))
	f.Add(encodeState(1, [][]byte{h}))
	f.Add(encodeState(6, [][]byte{h, h}))
	f.Add(encodeState(1<<64-1, nil))
	f.Add([]byte{})
	f.Add([]byte{stateVersion})
	f.Add([]byte{stateVersion + 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		size, hashes, err := decodeState(b)
		if err != nil {
			return
		}
		rf := newRangeFactory()
		rng, err := rf.NewRange(0, size, hashes)
		if err != nil {
			t.Fatalf("NewRange(0, %d, %d hashes) of decoded state = %v; want nil", size, len(hashes), err)
		}
		if size > 0 {
			if _, err := rng.GetRootHash(nil); err != nil {
				t.Fatalf("GetRootHash of decoded state = %v; want nil", err)
			}
		}
		if got := encodeState(size, hashes); !bytes.Equal(got, b) {
			t.Fatalf("encodeState(decodeState(%x)) = %x; want the input", b, got)
		}
	})
}

// fuzzTree returns a reference tree of n small entries.
func fuzzTree(n int) (*testonly.Tree, [][]byte) {
	ref := testonly.New(rfc6962.DefaultHasher)
	es := testEntries(0, n)
	ref.AppendData(es...)
	return ref, es
}

// splitHashes cuts b into HashSize-byte hashes, dropping a short tail.
func splitHashes(b []byte) [][HashSize]byte {
	var hs [][HashSize]byte
	for len(b) >= HashSize {
		hs = append(hs, [HashSize]byte(b[:HashSize]))
		b = b[HashSize:]
	}
	return hs
}

func joinHashes(bs [][]byte) []byte {
	return bytes.Join(bs, nil)
}

// FuzzVerifyInclusion checks that VerifyInclusion never panics on arbitrary
// input, and that it only accepts the true entry, index and proof of a tree
// it knows.
func FuzzVerifyInclusion(f *testing.F) {
	const n = 13
	ref, es := fuzzTree(n)
	root := ref.Hash()
	for _, i := range []uint64{0, 5, 12} {
		p, err := ref.InclusionProof(i, n)
		if err != nil {
			f.Fatalf("reference InclusionProof(%d, %d) = %v", i, n, err)
		}
		f.Add(es[i], i, uint64(n), joinHashes(p), root)
	}
	f.Add([]byte{}, uint64(0), uint64(0), []byte{}, []byte{})
	f.Add([]byte("x"), uint64(1<<64-1), uint64(1<<64-1), bytes.Repeat([]byte{1}, 64*HashSize), root)
	f.Fuzz(func(t *testing.T, entry []byte, i, size uint64, proof, rootBytes []byte) {
		var r [HashSize]byte
		copy(r[:], rootBytes)
		p := splitHashes(proof)
		err := VerifyInclusion(entry, i, size, p, r)
		if err != nil || r != toHash(root) || size != n {
			return
		}
		// Accepted against the known root and size: must be the truth.
		want, _ := ref.InclusionProof(i, n)
		if i >= n || !bytes.Equal(entry, es[i]) || !bytes.Equal(joinHashes(toSlices(p)), joinHashes(want)) {
			t.Fatalf("VerifyInclusion(%q, %d, %d, %x) accepted a false claim", entry, i, size, p)
		}
	})
}

// FuzzVerifyConsistency checks that VerifyConsistency never panics on
// arbitrary input, and only accepts true proofs between sizes of a tree it
// knows.
func FuzzVerifyConsistency(f *testing.F) {
	const n = 13
	ref, _ := fuzzTree(n)
	for _, from := range []uint64{0, 1, 4, 7, 13} {
		p, err := ref.ConsistencyProof(from, n)
		if err != nil {
			f.Fatalf("reference ConsistencyProof(%d, %d) = %v", from, n, err)
		}
		f.Add(from, uint64(n), ref.HashAt(from), ref.Hash(), joinHashes(p))
	}
	f.Add(uint64(1<<64-1), uint64(1<<64-1), []byte{}, []byte{}, []byte{})
	f.Add(uint64(5), uint64(1<<64-1), []byte{}, []byte{}, bytes.Repeat([]byte{1}, 70*HashSize))
	f.Fuzz(func(t *testing.T, from, to uint64, r1, r2, proof []byte) {
		var root1, root2 [HashSize]byte
		copy(root1[:], r1)
		copy(root2[:], r2)
		p := splitHashes(proof)
		err := VerifyConsistency(from, to, root1, root2, p)
		if err != nil || to != n || root2 != toHash(ref.Hash()) || from > n {
			return
		}
		// Accepted against the known tree: the old root must be the true
		// one (the proof is then determined).
		if root1 != toHash(ref.HashAt(from)) {
			t.Fatalf("VerifyConsistency(%d, %d, %x, ...) accepted a false old root", from, to, root1)
		}
	})
}

// TestRangeNodesAreStored checks the storage invariant the proofs rely on:
// after appends of any batch sizes, every node of the compact range of every
// size is stored.
func TestRangeNodesAreStored(t *testing.T) {
	l, _ := openTest(t)
	for _, n := range []int{1, 2, 3, 5, 8, 13, 21, 34} {
		mustAppend(t, l, n)
	}
	for size := uint64(1); size <= l.Size(); size++ {
		if _, err := l.nodes(compact.RangeNodes(0, size, nil)); err != nil {
			t.Fatalf("nodes(RangeNodes(0, %d)) = %v; want nil", size, err)
		}
	}
}
