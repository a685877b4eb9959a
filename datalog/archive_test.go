package datalog

import (
	"bytes"
	"errors"
	"testing"
)

// TestArchive archives a range with an erased entry and one kept stored,
// and checks that reads, proofs, Check and reopening see it so.
func TestArchive(t *testing.T) {
	l, dir := openTest(t)
	es := mustAppend(t, l, 10)
	if _, err := l.Erase([]Tomb{{Index: 3, Tombstone: []byte("gone")}}); err != nil {
		t.Fatal(err)
	}
	size, root := l.Root()
	proofBefore, err := l.InclusionProof(2, size)
	if err != nil {
		t.Fatal(err)
	}
	r := ArchivedRange{First: 0, Count: 6}
	seg, err := l.CutSegment("did:key:gw", r, func(i uint64, _ []byte) bool { return i != 4 })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := seg.Entry(3); ok {
		t.Errorf("segment holds erased entry 3; want its leaf hash only")
	}
	if _, ok := seg.Entry(4); ok {
		t.Errorf("segment holds kept entry 4; want its leaf hash only")
	}
	raw, err := seg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeSegment(raw)
	if err != nil {
		t.Fatalf("DecodeSegment = %v", err)
	}
	if err := l.CheckSegment(dec, "did:key:gw", r); err != nil {
		t.Fatalf("CheckSegment = %v", err)
	}
	if dec.LogSize != size || dec.LogRoot != root {
		t.Errorf("segment cut at %d/%x; want %d/%x", dec.LogSize, dec.LogRoot[:4], size, root[:4])
	}

	if _, err := l.Archive(ArchivedRange{First: 1, Count: 2}, func(uint64) bool { return true }); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Archive from 1 with nothing archived = %v; want ErrOutOfRange", err)
	}
	n, err := l.Archive(r, func(i uint64) bool { return i != 4 })
	if err != nil || n != 4 {
		t.Fatalf("Archive = %d, %v; want 4 (6 less the erased and the kept)", n, err)
	}
	if n, err := l.Archive(r, func(uint64) bool { return true }); err != nil || n != 0 {
		t.Errorf("Archive again = %d, %v; want 0, nil", n, err)
	}
	var ae *ArchivedError
	if _, err := l.Entry(2); !errors.As(err, &ae) || ae.Range != r {
		t.Errorf("Entry(2) = %v; want ArchivedError of %v", err, r)
	}
	if _, err := l.Entry(3); !errors.Is(err, ErrErased) {
		t.Errorf("Entry(3) = %v; want ErrErased", err)
	}
	if e, err := l.Entry(4); err != nil || !bytes.Equal(e, es[4]) {
		t.Errorf("Entry(4) = %q, %v; want the kept entry", e, err)
	}
	if e, ok := dec.Entry(2); !ok || !bytes.Equal(e, es[2]) {
		t.Errorf("segment entry 2 = %q; want %q", e, es[2])
	}
	proofAfter, err := l.InclusionProof(2, size)
	if err != nil || len(proofAfter) != len(proofBefore) || proofAfter[0] != proofBefore[0] {
		t.Errorf("inclusion proof after archiving = %v, %v; want the same as before", proofAfter, err)
	}
	// An archived entry can still be erased: its tombstone answers.
	if n, err := l.Erase([]Tomb{{Index: 1, Tombstone: []byte("erased after archiving")}}); err != nil || n != 1 {
		t.Fatalf("Erase(archived 1) = %d, %v", n, err)
	}
	if _, err := l.Entry(1); !errors.Is(err, ErrErased) {
		t.Errorf("Entry(1) after erasure = %v; want ErrErased", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(CheckConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || len(rep.Archived) != 1 || rep.Archived[0] != r {
		t.Errorf("Check = findings %v, archived %v; want none and %v", rep.Findings, rep.Archived, r)
	}
	if got := rep.Roots([]uint64{size})[size]; got != root {
		t.Errorf("Check's root = %x; want %x", got[:4], root[:4])
	}
	l2, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatalf("reopen = %v", err)
	}
	defer l2.Close()
	if last, err := l2.LastArchived(); err != nil || last != r {
		t.Errorf("LastArchived = %v, %v; want %v", last, err, r)
	}
}

// TestDecodeSegmentErrors: malformed segments get a specific error.
func TestDecodeSegmentErrors(t *testing.T) {
	good, err := (&Segment{Gateway: "gw", First: 2, LogSize: 4, Items: []SegmentItem{{Entry: []byte("a")}, {Leaf: [HashSize]byte{1}}}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"magic":      append([]byte("XXXX"), good[4:]...),
		"truncated":  good[:len(good)-1],
		"trailing":   append(bytes.Clone(good), 0),
		"bad kind":   append(bytes.Clone(good[:len(good)-33]), 7),
		"past size":  func() []byte { b := bytes.Clone(good); b[4+1+1+2+8+4+7] = 3; return b }(),
		"no entries": func() []byte { b := bytes.Clone(good); copy(b[4+1+1+2+8:], []byte{0, 0, 0, 0}); return b }(),
	} {
		if _, err := DecodeSegment(b); !errors.Is(err, ErrSegment) {
			t.Errorf("%s: DecodeSegment = %v; want ErrSegment", name, err)
		}
	}
}

// FuzzDecodeSegment: decoding never panics, and what decodes encodes back
// to the same bytes.
func FuzzDecodeSegment(f *testing.F) {
	seg := &Segment{Gateway: "did:key:z6Mk", First: 7, LogSize: 10, Items: []SegmentItem{{Entry: []byte("entry")}, {Leaf: [HashSize]byte{9}}}}
	b, _ := seg.Encode()
	f.Add(b)
	f.Add([]byte("TNLS\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSegment(b)
		if err != nil {
			if !errors.Is(err, ErrSegment) {
				t.Fatalf("DecodeSegment error %v does not wrap ErrSegment", err)
			}
			return
		}
		out, err := s.Encode()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("Encode(DecodeSegment(%x)) = %x, %v; want the input", b, out, err)
		}
	})
}
