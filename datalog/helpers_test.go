package datalog

import (
	"fmt"
	"testing"
)

// openTest opens a log in a fresh temporary directory, without fsync, and
// closes it at the end of the test.
func openTest(t testing.TB) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatalf("Open(%s) = %v; want nil error", dir, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v; want nil", err)
		}
	})
	return l, dir
}

// testEntry returns the deterministic content of entry i in tests.
func testEntry(i uint64) []byte {
	return fmt.Appendf(nil, "entry %d of the test log", i)
}

// testEntries returns the entries [first, first+n).
func testEntries(first uint64, n int) [][]byte {
	es := make([][]byte, n)
	for k := range es {
		es[k] = testEntry(first + uint64(k))
	}
	return es
}

// mustAppend appends testEntries(l.Size(), n) and checks the first index.
func mustAppend(t testing.TB, l *Log, n int) [][]byte {
	t.Helper()
	want := l.Size()
	es := testEntries(want, n)
	first, err := l.Append(es)
	if err != nil || first != want {
		t.Fatalf("Append(%d entries) = %d, %v; want %d, nil", n, first, err, want)
	}
	return es
}

// toArrays converts proofs or roots from the reference tree's form.
func toArrays(bs [][]byte) [][HashSize]byte {
	return toHashes(bs)
}
