package datalog

import (
	"errors"
	"slices"
	"testing"
)

func TestVerifyInclusionRejectsTampering(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, 21)
	const i, size = 6, 21
	root, err := l.RootAt(size)
	if err != nil {
		t.Fatalf("RootAt(%d) = %v", size, err)
	}
	p, err := l.InclusionProof(i, size)
	if err != nil {
		t.Fatalf("InclusionProof(%d, %d) = %v", i, size, err)
	}
	entry := testEntry(i)
	if err := VerifyInclusion(entry, i, size, p, root); err != nil {
		t.Fatalf("VerifyInclusion(untampered) = %v; want nil", err)
	}
	flip := func(h [HashSize]byte, bit int) [HashSize]byte { h[bit/8] ^= 1 << (bit % 8); return h }
	entryFlipped := slices.Clone(entry)
	entryFlipped[0] ^= 1
	proofFlipped := slices.Clone(p)
	proofFlipped[1] = flip(proofFlipped[1], 3)
	proofSwapped := slices.Clone(p)
	proofSwapped[0], proofSwapped[1] = proofSwapped[1], proofSwapped[0]
	leafHash := LeafHash(entry)
	tests := []struct {
		name  string
		entry []byte
		i     uint64
		size  uint64
		proof [][HashSize]byte
		root  [HashSize]byte
	}{
		{"entry byte flipped", entryFlipped, i, size, p, root},
		{"entry truncated", entry[:len(entry)-1], i, size, p, root},
		{"entry extended", append(slices.Clone(entry), 'x'), i, size, p, root},
		{"other entry", testEntry(i + 1), i, size, p, root},
		{"wrong index", entry, i + 1, size, p, root},
		// A tree size is bound only through its root: a proof for size
		// 21 also checks at sizes 17..32 where the proof has the same
		// shape. Sizes with another shape must fail.
		{"larger size", entry, i, 33, p, root},
		{"smaller size", entry, i, 16, p, root},
		{"index beyond size", entry, size, size, p, root},
		{"root bit flipped", entry, i, size, p, flip(root, 77)},
		{"proof hash flipped", entry, i, size, proofFlipped, root},
		{"proof truncated", entry, i, size, p[:len(p)-1], root},
		{"proof extended", entry, i, size, append(slices.Clone(p), root), root},
		{"proof reordered", entry, i, size, proofSwapped, root},
		{"empty proof", entry, i, size, nil, root},
		{"leaf hash as entry", leafHash[:], i, size, p, root},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyInclusion(tc.entry, tc.i, tc.size, tc.proof, tc.root)
			if !errors.Is(err, ErrInvalidProof) {
				t.Errorf("VerifyInclusion(%q, %d, %d, ...) = %v; want error wrapping ErrInvalidProof", tc.entry, tc.i, tc.size, err)
			}
		})
	}
}

func TestVerifyConsistencyRejectsTampering(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, 37)
	const from, to = 11, 37
	r1, err := l.RootAt(from)
	if err != nil {
		t.Fatalf("RootAt(%d) = %v", from, err)
	}
	r2, err := l.RootAt(to)
	if err != nil {
		t.Fatalf("RootAt(%d) = %v", to, err)
	}
	p, err := l.ConsistencyProof(from, to)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d) = %v", from, to, err)
	}
	if err := VerifyConsistency(from, to, r1, r2, p); err != nil {
		t.Fatalf("VerifyConsistency(untampered) = %v; want nil", err)
	}
	r0 := emptyRoot()
	flip := func(h [HashSize]byte) [HashSize]byte { h[31] ^= 0x80; return h }
	with := func(k int, h [HashSize]byte) [][HashSize]byte { q := slices.Clone(p); q[k] = h; return q }
	tests := []struct {
		name     string
		from, to uint64
		r1, r2   [HashSize]byte
		proof    [][HashSize]byte
	}{
		{"old root flipped", from, to, flip(r1), r2, p},
		{"new root flipped", from, to, r1, flip(r2), p},
		{"roots swapped", from, to, r2, r1, p},
		{"proof hash flipped", from, to, r1, r2, with(0, flip(p[0]))},
		{"last proof hash flipped", from, to, r1, r2, with(len(p)-1, flip(p[len(p)-1]))},
		{"proof truncated", from, to, r1, r2, p[:len(p)-1]},
		{"proof extended", from, to, r1, r2, append(slices.Clone(p), r1)},
		{"empty proof", from, to, r1, r2, nil},
		{"wrong old size", from + 1, to, r1, r2, p},
		{"larger new size", from, 65, r1, r2, p},
		{"smaller new size", from, 32, r1, r2, p},
		{"from after to", to, from, r2, r1, p},
		{"equal sizes different roots", to, to, r1, r2, nil},
		{"equal sizes with a proof", to, to, r2, r2, p},
		{"empty tree with wrong root", 0, to, r1, r2, nil},
		{"empty tree with a proof", 0, to, r0, r2, p},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyConsistency(tc.from, tc.to, tc.r1, tc.r2, tc.proof)
			if !errors.Is(err, ErrInvalidProof) {
				t.Errorf("VerifyConsistency(%d, %d, ...) = %v; want error wrapping ErrInvalidProof", tc.from, tc.to, err)
			}
		})
	}
}
