package datalog

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"
)

// snapshot records what a log answers, to compare across a reopen.
type snapshot struct {
	size  uint64
	roots [][HashSize]byte
	incl  [][][HashSize]byte
	cons  [][][HashSize]byte
}

func takeSnapshot(t *testing.T, l *Log) snapshot {
	t.Helper()
	var s snapshot
	s.size, _ = l.Root()
	for size := uint64(0); size <= s.size; size++ {
		r, err := l.RootAt(size)
		if err != nil {
			t.Fatalf("RootAt(%d) = %v", size, err)
		}
		s.roots = append(s.roots, r)
		if size > 0 {
			p, err := l.InclusionProof(size/2, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d) = %v", size/2, size, err)
			}
			s.incl = append(s.incl, p)
		}
		c, err := l.ConsistencyProof(size, s.size)
		if err != nil {
			t.Fatalf("ConsistencyProof(%d, %d) = %v", size, s.size, err)
		}
		s.cons = append(s.cons, c)
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	eq := func(a, b [][HashSize]byte) bool { return slices.Equal(a, b) }
	return s.size == o.size && slices.Equal(s.roots, o.roots) &&
		slices.EqualFunc(s.incl, o.incl, eq) && slices.EqualFunc(s.cons, o.cons, eq)
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	for _, n := range []int{1, 6, 1, 33, 64, 2} {
		mustAppend(t, l, n)
	}
	before := takeSnapshot(t, l)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close() = %v; want nil", err)
	}

	l, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopen Open(%s) = %v", dir, err)
	}
	defer l.Close()
	if after := takeSnapshot(t, l); !after.equal(before) {
		t.Fatalf("state after reopen differs: size %d, roots %x; want size %d, roots %x", after.size, after.roots, before.size, before.roots)
	}
	for i := range before.size {
		if got, err := l.Entry(i); err != nil || !bytes.Equal(got, testEntry(i)) {
			t.Fatalf("Entry(%d) after reopen = %q, %v; want %q, nil", i, got, err, testEntry(i))
		}
	}
	// Appending continues the same tree.
	mustAppend(t, l, 5)
	oldRoot := before.roots[before.size]
	newSize, newRoot := l.Root()
	p, err := l.ConsistencyProof(before.size, newSize)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d) = %v", before.size, newSize, err)
	}
	if err := VerifyConsistency(before.size, newSize, oldRoot, newRoot, p); err != nil {
		t.Fatalf("VerifyConsistency(%d, %d) after reopen = %v; want nil", before.size, newSize, err)
	}
}

func TestClosedLog(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	mustAppend(t, l, 4)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	checks := map[string]error{}
	_, checks["Append"] = l.Append(testEntries(4, 1))
	_, checks["Entry"] = l.Entry(0)
	_, checks["RootAt"] = l.RootAt(1)
	_, checks["InclusionProof"] = l.InclusionProof(0, 1)
	_, checks["ConsistencyProof"] = l.ConsistencyProof(1, 2)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed log = %v; want ErrClosed", name, err)
		}
	}
	if size, _ := l.Root(); size != 4 {
		t.Errorf("Root() on a closed log = size %d; want 4", size)
	}
}

func TestOpenDetectsCorruption(t *testing.T) {
	tests := []struct {
		name   string
		damage func(b *pebble.Batch) error
	}{
		{"state deleted", func(b *pebble.Batch) error { return b.Delete(stateKey(), nil) }},
		{"state truncated", func(b *pebble.Batch) error { return b.Set(stateKey(), []byte{stateVersion, 0}, nil) }},
		{"state of unknown version", func(b *pebble.Batch) error {
			v := encodeState(0, nil)
			v[0] = stateVersion + 1
			return b.Set(stateKey(), v, nil)
		}},
		{"state size beyond entries", func(b *pebble.Batch) error {
			return b.Set(stateKey(), encodeState(8, [][]byte{bytes.Repeat([]byte{1}, HashSize)}), nil)
		}},
		{"state size below entries", func(b *pebble.Batch) error {
			return b.Set(stateKey(), encodeState(4, [][]byte{bytes.Repeat([]byte{1}, HashSize)}), nil)
		}},
		{"subtree hash deleted", func(b *pebble.Batch) error { return b.Delete(nodeKey(compact.NewNodeID(2, 0)), nil) }},
		{"subtree hash changed", func(b *pebble.Batch) error {
			return b.Set(nodeKey(compact.NewNodeID(2, 0)), bytes.Repeat([]byte{7}, HashSize), nil)
		}},
		{"last entry deleted", func(b *pebble.Batch) error { return b.Delete(entryKey(5), nil) }},
		{"entry beyond size", func(b *pebble.Batch) error { return b.Set(entryKey(6), []byte("x"), nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(Config{Dir: dir, NoSync: true})
			if err != nil {
				t.Fatalf("Open(%s) = %v", dir, err)
			}
			mustAppend(t, l, 6)
			if err := l.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			damageStore(t, dir, tc.damage)
			if l, err := Open(Config{Dir: dir}); !errors.Is(err, ErrCorrupt) {
				if err == nil {
					l.Close()
				}
				t.Fatalf("Open(damaged store) = %v; want error wrapping ErrCorrupt", err)
			}
		})
	}
}

// damageStore applies damage to the Pebble store in dir.
func damageStore(t *testing.T, dir string, damage func(b *pebble.Batch) error) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatalf("pebble.Open(%s) = %v", dir, err)
	}
	defer db.Close()
	b := db.NewBatch()
	if err := damage(b); err != nil {
		t.Fatalf("damage = %v", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatalf("Commit(damage) = %v", err)
	}
}
