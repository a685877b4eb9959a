package datalog

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// RootAt returns the root hash of the tree of the first size entries, for
// any size up to the log's size.
func (l *Log) RootAt(size uint64) ([HashSize]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkSize("root", size); err != nil {
		return [HashSize]byte{}, err
	}
	switch size {
	case l.size:
		return l.root, nil
	case 0:
		return emptyRoot(), nil
	}
	hashes, err := l.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return [HashSize]byte{}, err
	}
	rng, err := l.rf.NewRange(0, size, hashes)
	if err != nil {
		return [HashSize]byte{}, fmt.Errorf("datalog: root at size %d: %w", size, err)
	}
	return rootOf(rng)
}

// InclusionProof returns the proof that entry i is in the tree of the first
// size entries. It needs i < size <= Size().
func (l *Log) InclusionProof(i, size uint64) ([][HashSize]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkSize("inclusion proof", size); err != nil {
		return nil, err
	}
	if i >= size {
		return nil, fmt.Errorf("%w: inclusion proof of entry %d in a tree of size %d", ErrOutOfRange, i, size)
	}
	nodes, err := proof.Inclusion(i, size)
	if err != nil {
		return nil, fmt.Errorf("datalog: inclusion proof of entry %d in a tree of size %d: %w", i, size, err)
	}
	return l.rehash(nodes)
}

// ConsistencyProof returns the proof that the tree of the first from entries
// is a prefix of the tree of the first to entries. It needs from <= to <=
// Size(); the proof is empty when from is 0 or from == to.
func (l *Log) ConsistencyProof(from, to uint64) ([][HashSize]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkSize("consistency proof", to); err != nil {
		return nil, err
	}
	if from > to {
		return nil, fmt.Errorf("%w: consistency proof from size %d to smaller size %d", ErrOutOfRange, from, to)
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("datalog: consistency proof from size %d to %d: %w", from, to, err)
	}
	return l.rehash(nodes)
}

// checkSize checks that the log is open and size is at most its size. The
// caller holds mu for reading.
func (l *Log) checkSize(what string, size uint64) error {
	if l.closed {
		return ErrClosed
	}
	if size > l.size {
		return fmt.Errorf("%w: %s at tree size %d of a log of size %d", ErrOutOfRange, what, size, l.size)
	}
	return nil
}

// rehash reads the hashes of a proof's nodes and turns them into the proof.
func (l *Log) rehash(nodes proof.Nodes) ([][HashSize]byte, error) {
	hashes, err := l.nodes(nodes.IDs)
	if err != nil {
		return nil, err
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("datalog: build proof: %w", err)
	}
	return toHashes(p), nil
}

// nodes reads the stored hashes of perfect subtree nodes. Missing or
// malformed hashes are reported as ErrCorrupt.
func (l *Log) nodes(ids []compact.NodeID) ([][]byte, error) {
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := l.get(nodeKey(id))
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("%w: hash of node (level %d, index %d) is missing", ErrCorrupt, id.Level, id.Index)
		case err != nil:
			return nil, err
		case len(h) != HashSize:
			return nil, fmt.Errorf("%w: hash of node (level %d, index %d) is %d bytes, want %d", ErrCorrupt, id.Level, id.Index, len(h), HashSize)
		}
		hashes[i] = h
	}
	return hashes, nil
}
