package datalog

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// randomEntries returns n entries holding random bytes: incompressible,
// so that a search of the store's raw files finds them if they are there.
func randomEntries(n int) [][]byte {
	es := make([][]byte, n)
	for i := range es {
		es[i] = make([]byte, 96)
		rand.Read(es[i])
	}
	return es
}

// filesHolding returns the files under dir whose bytes contain b.
func filesHolding(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while we walk
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		raw, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(raw, b) {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitGone waits (bounded) until no file under dir holds b: Pebble deletes
// obsolete files in the background.
func waitGone(t *testing.T, dir string, b []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files := filesHolding(t, dir, b)
		if len(files) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("erased bytes still in %v", files)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestErase erases entries from a log whose store was flushed and
// compacted with them (so they sit in SSTables and write-ahead logs), and
// checks that: the erased entries answer ErasedError with their
// tombstones, the others are intact, the roots and every proof are
// unchanged, no file of the store holds an erased entry's bytes (while
// the others' are found), and all of it holds after a reopen.
func TestErase(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	es := randomEntries(40)
	for k := 0; k < 40; k += 10 {
		if _, err := l.Append(es[k : k+10]); err != nil {
			t.Fatal(err)
		}
		if k == 20 {
			if err := l.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	size, root := l.Root()
	proofs := map[uint64][][HashSize]byte{}
	for i := range size {
		if proofs[i], err = l.InclusionProof(i, size); err != nil {
			t.Fatal(err)
		}
	}
	erase := []uint64{3, 4, 5, 21, 39} // in the flushed SSTable, the memtable, and the last entry
	var tombs []Tomb
	for _, i := range erase {
		tombs = append(tombs, Tomb{Index: i, Tombstone: []byte{'T', byte(i)}})
	}
	if n, err := l.Erase(tombs); err != nil || n != len(erase) {
		t.Fatalf("Erase = %d, %v; want %d, nil", n, err, len(erase))
	}
	if n, err := l.Erase(tombs[:1]); err != nil || n != 0 {
		t.Fatalf("Erase again = %d, %v; want 0 (idempotent)", n, err)
	}
	if _, err := l.Erase([]Tomb{{Index: size, Tombstone: []byte{1}}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Erase beyond the size = %v; want ErrNotFound", err)
	}
	check := func(l *Log) {
		t.Helper()
		if s, r := l.Root(); s != size || r != root {
			t.Fatalf("root changed by the erasure")
		}
		erased := map[uint64]bool{}
		for _, i := range erase {
			erased[i] = true
		}
		for i := range size {
			e, err := l.Entry(i)
			var ee *ErasedError
			switch {
			case erased[i]:
				if !errors.As(err, &ee) || !errors.Is(err, ErrErased) || ee.Index != i || !bytes.Equal(ee.Tombstone, []byte{'T', byte(i)}) {
					t.Fatalf("Entry(%d) = %x, %v; want the ErasedError with its tombstone", i, e, err)
				}
				if tb, err := l.Tombstone(i); err != nil || tb[1] != byte(i) {
					t.Fatalf("Tombstone(%d) = %x, %v", i, tb, err)
				}
			case err != nil || !bytes.Equal(e, es[i]):
				t.Fatalf("Entry(%d) = %v; want it intact", i, err)
			}
			leaf, err := l.LeafHash(i)
			if err != nil || leaf != LeafHash(es[i]) {
				t.Fatalf("LeafHash(%d) = %v; want the hash of the entry as appended", i, err)
			}
			p, err := l.InclusionProof(i, size)
			if err != nil || len(p) != len(proofs[i]) {
				t.Fatalf("InclusionProof(%d) = %v", i, err)
			}
			for k := range p {
				if p[k] != proofs[i][k] {
					t.Fatalf("the inclusion proof of %d changed", i)
				}
			}
			if err := VerifyInclusion(es[i], i, size, p, root); err != nil {
				t.Fatalf("VerifyInclusion(%d) = %v", i, err)
			}
		}
		var got []uint64
		if err := l.Erased(0, size, func(i uint64, _ []byte) bool { got = append(got, i); return true }); err != nil || len(got) != len(erase) {
			t.Fatalf("Erased = %v, %v; want %v", got, err, erase)
		}
	}
	check(l)
	for _, i := range erase {
		waitGone(t, dir, es[i])
	}
	if files := filesHolding(t, dir, es[10]); len(files) == 0 {
		t.Fatal("an entry that was not erased is in no file: the search cannot see entries")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(Config{Dir: dir}); err != nil {
		t.Fatalf("reopen with the last entry erased: %v", err)
	}
	defer l.Close()
	check(l)
	if _, err := l.Append(randomEntries(2)); err != nil {
		t.Fatal(err)
	}
	for _, i := range erase {
		if files := filesHolding(t, dir, es[i]); len(files) != 0 {
			t.Fatalf("entry %d's bytes are back in %v after a reopen", i, files)
		}
	}
}

// TestCheckErased checks that Check lists erased entries, not as missing,
// passes each tombstone to its hook and reports what the hook refuses,
// and reports a tombstone standing beside its entry.
func TestCheckErased(t *testing.T) {
	l, dir := openTest(t)
	mustAppend(t, l, 12)
	if _, err := l.Erase([]Tomb{{Index: 2, Tombstone: []byte("good")}, {Index: 7, Tombstone: []byte("bad")}}); err != nil {
		t.Fatal(err)
	}
	// A tombstone written beside an entry that is still stored.
	if err := l.db.Set(tombKey(9), []byte("good"), nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(CheckConfig{Dir: dir, Tombstone: func(i uint64, tomb []byte) (string, string) {
		if string(tomb) != "good" {
			return FindTombstone, "unbacked"
		}
		return "", ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Erased) != 2 || rep.Erased[0].Index != 2 || rep.Erased[1].Index != 7 {
		t.Fatalf("Erased = %+v; want entries 2 and 7", rep.Erased)
	}
	if len(rep.Findings) != 2 || rep.Findings[0].Index != 7 || rep.Findings[0].Kind != FindTombstone || rep.Findings[1].Index != 9 || rep.Findings[1].Kind != FindTombstone {
		t.Fatalf("Findings = %+v; want the unbacked tombstone of 7 and the one beside entry 9", rep.Findings)
	}
	roots := rep.Roots([]uint64{12})
	if l2, err := Open(Config{Dir: dir}); err != nil {
		t.Fatal(err)
	} else {
		_, root := l2.Root()
		l2.Close()
		if roots[12] != root {
			t.Fatal("Check's root over a log with erased entries is not the log's root")
		}
	}
}
