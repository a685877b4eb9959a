package datalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"

	"github.com/thingnet/thingnet/internal/pebblelog"
)

// Kinds of Finding, what Check found altered in a log's store.
const (
	FindMissing = "missing" // an entry below the log's size is not stored
	FindExtra   = "extra"   // an entry is stored at or beyond the log's size
	FindEntry   = "entry"   // an entry's leaf hash differs from the leaf hash stored when it was appended
	FindNode    = "node"    // a stored subtree hash differs from the hash of its stored children
	FindState   = "state"   // the state record is unreadable or disagrees with the stored tree
	// FindTombstone: a tombstone stands where the entry is still stored,
	// or beyond the log's size, or CheckConfig.Tombstone refused it.
	FindTombstone = "tombstone"
)

// Finding is one alteration Check found. Index is the entry's index (for
// FindNode, the node's index at Level).
type Finding struct {
	Kind   string
	Index  uint64
	Level  uint
	Detail string
}

// CheckReport is what Check found in a log's store.
type CheckReport struct {
	Size   uint64 // the size its state record claims
	Stored uint64 // entries stored (below and beyond Size)
	// Erased lists the entries below Size that were erased (their
	// tombstone stands in their place), in index order.
	Erased []Erased
	// Archived lists the archived ranges (archive.go), in order: their
	// entries not stored are not missing, their segments hold them.
	Archived []ArchivedRange
	Findings []Finding
	// leaves are the leaf hashes of the entries as stored now (for a missing
	// entry, the stored leaf hash, or zeros): the tree a verifier gets
	// from this store.
	leaves [][HashSize]byte
}

// Leaf returns the leaf hash of entry i as Check found it (for an entry
// not stored, the leaf hash stored when it was appended).
func (r *CheckReport) Leaf(i uint64) ([HashSize]byte, error) {
	if i >= uint64(len(r.leaves)) {
		return [HashSize]byte{}, fmt.Errorf("%w: entry %d of a log of %d checked entries", ErrNotFound, i, len(r.leaves))
	}
	return r.leaves[i], nil
}

// Roots returns the RFC 6962 roots, over the entries as stored now, of the
// trees of the given sizes (each at most Size; others are left out).
func (r *CheckReport) Roots(sizes []uint64) map[uint64][HashSize]byte {
	want := slices.Clone(sizes)
	slices.Sort(want)
	out := make(map[uint64][HashSize]byte, len(want))
	rng := newRangeFactory().NewEmptyRange(0)
	for _, s := range want {
		if s > uint64(len(r.leaves)) {
			break
		}
		for rng.End() < s {
			h := r.leaves[rng.End()]
			if err := rng.Append(h[:], nil); err != nil {
				return out
			}
		}
		if root, err := rootOf(rng); err == nil {
			out[s] = root
		}
	}
	return out
}

// Erased is an erased entry Check found, with its tombstone.
type Erased struct {
	Index     uint64
	Tombstone []byte
}

// CheckConfig configures Check.
type CheckConfig struct {
	Dir string // the log's Pebble directory; opened read-only
	// Entry, if set, checks each stored entry below the size (decoding,
	// signatures) and returns a finding kind and detail, or "" if it is
	// sound.
	Entry func(index uint64, entry []byte) (kind, detail string)
	// Tombstone, if set, checks the tombstone of each erased entry below
	// the size (what it says against the ledger) and returns a finding
	// kind and detail, or "" if the erasure is backed.
	Tombstone func(index uint64, tombstone []byte) (kind, detail string)
}

// Check reads a log's store offline (no Log may have it open) and reports
// what was altered since its entries were appended: each entry whose bytes
// no longer hash to the leaf hash stored with it, missing and extra
// entries, stored subtree hashes that disagree with their children, and a
// state record that disagrees with the tree. A store altered consistently
// (entries, subtree hashes and state rewritten together) passes these
// checks; only the anchored roots reveal it (CheckReport.Roots).
func Check(c CheckConfig) (*CheckReport, error) {
	if c.Dir == "" {
		return nil, errors.New("datalog: check: CheckConfig.Dir is empty")
	}
	db, err := pebble.Open(c.Dir, &pebble.Options{ReadOnly: true, ErrorIfNotExists: true, Logger: pebblelog.New(nil, "datalog: check")})
	if err != nil {
		return nil, fmt.Errorf("datalog: check: open %s read-only: %w", c.Dir, err)
	}
	defer db.Close()
	get := func(k []byte) ([]byte, bool, error) {
		v, closer, err := db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		out := append([]byte(nil), v...)
		return out, true, closer.Close()
	}
	rep := &CheckReport{}
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }

	raw, ok, err := get(stateKey())
	if err != nil {
		return nil, fmt.Errorf("datalog: check: read state: %w", err)
	}
	var stateHashes [][]byte
	if ok {
		size, hashes, err := decodeState(raw)
		if err != nil {
			add(Finding{Kind: FindState, Detail: err.Error()})
		} else {
			rep.Size, stateHashes = size, hashes
		}
	}

	if err := scanArchived(db, func(r ArchivedRange) bool {
		rep.Archived = append(rep.Archived, r)
		return true
	}); err != nil {
		add(Finding{Kind: FindState, Detail: err.Error()})
	}
	archived := func(i uint64) bool {
		k, found := slices.BinarySearchFunc(rep.Archived, i, func(r ArchivedRange, i uint64) int {
			switch {
			case r.End() <= i:
				return -1
			case r.First > i:
				return 1
			}
			return 0
		})
		return found && k >= 0
	}

	// Entries: stored ones, in index order.
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEntry}, UpperBound: []byte{prefixEntry + 1}})
	if err != nil {
		return nil, fmt.Errorf("datalog: check: %w", err)
	}
	defer it.Close()
	next := uint64(0)
	badNode := map[compact.NodeID]bool{} // subtree hashes found altered
	rep.leaves = make([][HashSize]byte, 0, rep.Size)
	leafAt := func(i uint64) ([HashSize]byte, bool, error) {
		h, ok, err := get(nodeKey(compact.NewNodeID(0, i)))
		if err != nil || !ok || len(h) != HashSize {
			return [HashSize]byte{}, false, err
		}
		return toHash(h), true, nil
	}
	missing := func(upTo uint64) error {
		for ; next < upTo && next < rep.Size; next++ {
			tomb, erased, err := get(tombKey(next))
			if err != nil {
				return err
			}
			switch {
			case erased:
				rep.Erased = append(rep.Erased, Erased{Index: next, Tombstone: tomb})
				if c.Tombstone != nil {
					if kind, detail := c.Tombstone(next, tomb); kind != "" {
						add(Finding{Kind: kind, Index: next, Detail: detail})
					}
				}
			case archived(next):
				// In its segment: the audit checks the segments.
			default:
				add(Finding{Kind: FindMissing, Index: next, Detail: fmt.Sprintf("entry %d of a log of size %d is not stored", next, rep.Size)})
			}
			h, _, err := leafAt(next)
			if err != nil {
				return err
			}
			rep.leaves = append(rep.leaves, h)
		}
		return nil
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 {
			add(Finding{Kind: FindExtra, Detail: fmt.Sprintf("a stored key %x is not an entry key", k)})
			continue
		}
		i := binary.BigEndian.Uint64(k[1:])
		rep.Stored++
		if i >= rep.Size {
			add(Finding{Kind: FindExtra, Index: i, Detail: fmt.Sprintf("entry %d is stored beyond the log's size %d", i, rep.Size)})
			continue
		}
		if err := missing(i); err != nil {
			return nil, err
		}
		if _, both, err := get(tombKey(i)); err != nil {
			return nil, err
		} else if both {
			add(Finding{Kind: FindTombstone, Index: i, Detail: fmt.Sprintf("entry %d is stored and has a tombstone: it was said erased and is not", i)})
		}
		entry := append([]byte(nil), it.Value()...)
		leaf := LeafHash(entry)
		rep.leaves = append(rep.leaves, leaf)
		next = i + 1
		stored, ok, err := leafAt(i)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok:
			add(Finding{Kind: FindNode, Index: i, Detail: fmt.Sprintf("the leaf hash of entry %d is not stored", i)})
			badNode[compact.NewNodeID(0, i)] = true
		case stored != leaf:
			// The entry, or the leaf hash stored beside it? The parent
			// decides: it was computed from the leaf as appended.
			if leafHashAltered(get, i, leaf) {
				add(Finding{Kind: FindNode, Index: i, Detail: fmt.Sprintf("the stored leaf hash of entry %d is %x; the entry and the parent subtree hash agree on %x", i, stored[:8], leaf[:8])})
				badNode[compact.NewNodeID(0, i)] = true
			} else {
				add(Finding{Kind: FindEntry, Index: i, Detail: fmt.Sprintf("entry %d hashes to leaf %x, the log stored %x when it was appended", i, leaf[:8], stored[:8])})
			}
		}
		if c.Entry != nil {
			if kind, detail := c.Entry(i, entry); kind != "" {
				add(Finding{Kind: kind, Index: i, Detail: detail})
			}
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("datalog: check: iterate entries: %w", err)
	}
	if err := missing(rep.Size); err != nil {
		return nil, err
	}
	tit, err := db.NewIter(&pebble.IterOptions{LowerBound: tombKey(rep.Size), UpperBound: []byte{prefixTomb + 1}})
	if err != nil {
		return nil, fmt.Errorf("datalog: check: %w", err)
	}
	for tit.First(); tit.Valid(); tit.Next() {
		if k := tit.Key(); len(k) == 9 {
			add(Finding{Kind: FindTombstone, Index: indexOf(k), Detail: fmt.Sprintf("a tombstone for entry %d stands beyond the log's size %d", indexOf(k), rep.Size)})
		}
	}
	if err := errors.Join(tit.Error(), tit.Close()); err != nil {
		return nil, fmt.Errorf("datalog: check: iterate tombstones: %w", err)
	}

	// Subtree hashes: every stored interior node against its stored children.
	nit, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixNode, 1}, UpperBound: []byte{prefixNode + 1}})
	if err != nil {
		return nil, fmt.Errorf("datalog: check: %w", err)
	}
	defer nit.Close()
	hasher := newRangeFactory().Hash
	// In level order, so that a node whose child was found altered is not
	// reported: its hash is the genuine one, its child's is not.
	for nit.First(); nit.Valid(); nit.Next() {
		k := nit.Key()
		if len(k) != 10 {
			continue
		}
		level, idx := uint(k[1]), binary.BigEndian.Uint64(k[2:])
		l, lok, err := get(nodeKey(compact.NewNodeID(level-1, 2*idx)))
		if err != nil {
			return nil, err
		}
		r, rok, err := get(nodeKey(compact.NewNodeID(level-1, 2*idx+1)))
		if err != nil {
			return nil, err
		}
		if !lok || !rok || len(l) != HashSize || len(r) != HashSize {
			add(Finding{Kind: FindNode, Index: idx, Level: level, Detail: fmt.Sprintf("subtree hash (level %d, index %d) has no children stored", level, idx)})
			continue
		}
		if want := hasher(l, r); !slices.Equal(want, nit.Value()) {
			if badNode[compact.NewNodeID(level-1, 2*idx)] || badNode[compact.NewNodeID(level-1, 2*idx+1)] {
				continue // explained by the altered child: this hash is genuine
			}
			badNode[compact.NewNodeID(level, idx)] = true
			add(Finding{Kind: FindNode, Index: idx, Level: level, Detail: fmt.Sprintf("subtree hash (level %d, index %d) is %x, its children hash to %x", level, idx, nit.Value()[:min(8, len(nit.Value()))], want[:8])})
		}
	}
	if err := nit.Error(); err != nil {
		return nil, fmt.Errorf("datalog: check: iterate subtree hashes: %w", err)
	}

	// The state record's compact range against the stored nodes.
	for n, id := range compact.RangeNodes(0, rep.Size, nil) {
		if n >= len(stateHashes) {
			break
		}
		h, ok, err := get(nodeKey(id))
		if err != nil {
			return nil, err
		}
		if !ok || !slices.Equal(h, stateHashes[n]) {
			add(Finding{Kind: FindState, Index: id.Index, Level: id.Level, Detail: fmt.Sprintf("the state record's hash of subtree (level %d, index %d) differs from the stored one", id.Level, id.Index)})
		}
	}
	slices.SortStableFunc(rep.Findings, func(a, b Finding) int {
		if a.Index != b.Index {
			if a.Index < b.Index {
				return -1
			}
			return 1
		}
		return 0
	})
	return rep, nil
}

// leafHashAltered reports whether the parent subtree hash of leaf i, when
// stored, is the hash of leaf (the entry's hash as stored now) and its
// stored sibling: then the entry is what was appended and its stored leaf
// hash was altered.
func leafHashAltered(get func([]byte) ([]byte, bool, error), i uint64, leaf [HashSize]byte) bool {
	parent, ok, err := get(nodeKey(compact.NewNodeID(1, i/2)))
	if err != nil || !ok {
		return false
	}
	sib, ok, err := get(nodeKey(compact.NewNodeID(0, i^1)))
	if err != nil || !ok {
		return false
	}
	l, r := leaf[:], sib
	if i%2 == 1 {
		l, r = sib, leaf[:]
	}
	return slices.Equal(newRangeFactory().Hash(l, r), parent)
}
