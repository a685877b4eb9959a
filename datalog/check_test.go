package datalog

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"

	"github.com/thingnet/thingnet/internal/pebblelog"
)

// buildLog writes a log of n test entries in a fresh directory and closes it.
func buildLog(t *testing.T, n int) (dir string, roots map[uint64][HashSize]byte) {
	t.Helper()
	dir = t.TempDir()
	l, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	roots = map[uint64][HashSize]byte{}
	for l.Size() < uint64(n) {
		mustAppend(t, l, 3)
		s, r := l.Root()
		roots[s] = r
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, roots
}

// tamper opens the store as an attacker with write access would and runs f.
func tamper(t *testing.T, dir string, f func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebblelog.New(nil, "test")})
	if err != nil {
		t.Fatal(err)
	}
	f(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func set(t *testing.T, db *pebble.DB, k, v []byte) {
	t.Helper()
	if err := db.Set(k, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func TestCheckUntouched(t *testing.T) {
	dir, roots := buildLog(t, 30)
	rep, err := Check(CheckConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || rep.Size != 30 || rep.Stored != 30 {
		t.Fatalf("untouched log: size %d, stored %d, findings %+v; want 30, 30, none", rep.Size, rep.Stored, rep.Findings)
	}
	sizes := make([]uint64, 0, len(roots))
	for s := range roots {
		sizes = append(sizes, s)
	}
	got := rep.Roots(sizes)
	for s, want := range roots {
		if got[s] != want {
			t.Errorf("root at size %d: %x, the log said %x", s, got[s], want)
		}
	}
}

func TestCheckFindsAlterations(t *testing.T) {
	dir, roots := buildLog(t, 30)
	tamper(t, dir, func(db *pebble.DB) {
		e := testEntry(7)
		e[3] ^= 0x01 // one flipped bit in entry 7
		set(t, db, entryKey(7), e)
		if err := db.Delete(entryKey(12), pebble.Sync); err != nil { // entry 12 removed
			t.Fatal(err)
		}
		set(t, db, entryKey(31), []byte("an entry slipped in beyond the size"))
		h := make([]byte, HashSize) // a subtree hash overwritten
		set(t, db, nodeKey(compact.NewNodeID(2, 5)), h)
		set(t, db, nodeKey(compact.NewNodeID(0, 20)), h) // a leaf hash overwritten
	})
	var seen []uint64
	rep, err := Check(CheckConfig{Dir: dir, Entry: func(i uint64, e []byte) (string, string) {
		seen = append(seen, i)
		if i == 7 {
			return "payload", "checked by the caller"
		}
		return "", ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"entry 7": true, "payload 7": true, "missing 12": true, "extra 31": true, "node 5@2": true, "node 20@0": true}
	for _, f := range rep.Findings {
		key := f.Kind + " " + itoa(f.Index)
		if f.Kind == FindNode || f.Kind == FindState {
			key += "@" + itoa(uint64(f.Level))
		}
		if !want[key] {
			t.Errorf("unexpected finding %s: %s", key, f.Detail)
		}
		delete(want, key)
	}
	for k := range want {
		t.Errorf("not found: %s", k)
	}
	if len(seen) != 29 {
		t.Errorf("the entry callback saw %d entries; want the 29 stored below the size", len(seen))
	}
	// Roots over the stored entries: anchors up to size 7 still match,
	// every later one differs.
	for s, want := range rep.Roots([]uint64{6, 9, 30}) {
		if (s <= 7) != (roots[s] == want) {
			t.Errorf("root at size %d: matches the original %v", s, roots[s] == want)
		}
	}
}

func TestCheckConsistentRewrite(t *testing.T) {
	// An attacker who rewrites an entry and recomputes the whole tree and
	// state passes the store's own checks; only the roots show it.
	_, roots := buildLog(t, 9)
	es := testEntries(0, 9)
	es[4] = []byte("rewritten")
	l2dir := t.TempDir()
	l2, err := Open(Config{Dir: l2dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Append(es); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	rep, err := Check(CheckConfig{Dir: l2dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("consistent rewrite: findings %+v", rep.Findings)
	}
	if rep.Roots([]uint64{9})[9] == roots[9] {
		t.Fatal("a rewritten log has the anchored root")
	}
}

func TestCheckErrors(t *testing.T) {
	if _, err := Check(CheckConfig{}); err == nil {
		t.Error("Check without a directory succeeded")
	}
	if _, err := Check(CheckConfig{Dir: t.TempDir() + "/none"}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Check of a missing store: %v", err)
	}
}

func itoa(i uint64) string { return strconv.FormatUint(i, 10) }
