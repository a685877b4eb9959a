package datalog

import (
	"encoding/binary"

	"github.com/transparency-dev/merkle/compact"
)

// Key prefixes of the Pebble store. Integers in keys are big-endian so that
// keys sort in index order.
const (
	prefixEntry   byte = 'e' // 'e' | index (8 bytes) -> entry bytes
	prefixNode    byte = 'n' // 'n' | level (1) | index (8) -> perfect subtree hash
	prefixState   byte = 's' // 's' -> encoded state (see state.go)
	prefixTomb    byte = 't' // 't' | index (8 bytes) -> tombstone of an erased entry (erase.go)
	prefixWAL     byte = 'w' // 'w' -> empty; written to rotate the write-ahead log (erase.go)
	prefixArchive byte = 'a' // 'a' | end (8 bytes) -> first (8 bytes): an archived range (archive.go)
)

// walMarkKey is the key purge writes to rotate the write-ahead log.
func walMarkKey() []byte { return []byte{prefixWAL} }

// entryKey returns the key of entry i.
func entryKey(i uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixEntry
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

// indexOf returns the index of an entry or tombstone key.
func indexOf(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:]) }

// nodeKey returns the key of the perfect subtree node id. Levels are below
// 64 for any tree of at most 2^64-1 leaves, so one byte holds them.
func nodeKey(id compact.NodeID) []byte {
	k := make([]byte, 10)
	k[0] = prefixNode
	k[1] = byte(id.Level)
	binary.BigEndian.PutUint64(k[2:], id.Index)
	return k
}

// stateKey returns the key of the log's state record.
func stateKey() []byte {
	return []byte{prefixState}
}
