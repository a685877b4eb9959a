// Package datalog is a gateway's verifiable data log: an append-only, durable
// (Pebble) log of entries whose RFC 6962/9162 Merkle tree root the gateway
// anchors on the ledger, with inclusion and consistency proofs.
//
// The Merkle tree is the one of RFC 6962 section 2.1 (RFC 9162 section 2.1):
// leaves are SHA-256(0x00 || entry), interior nodes SHA-256(0x01 || left ||
// right), and the empty tree's root is SHA-256(""). Hashing, compact ranges
// and proofs come from github.com/transparency-dev/merkle.
//
// # Storage
//
// Everything lives in one Pebble database under [Config.Dir], keyed with a
// one-byte prefix and big-endian integers so that iteration is ordered:
//
//	'e' | index (8 bytes)               -> the entry's bytes
//	'n' | level (1 byte) | index (8)    -> hash of a perfect subtree node
//	's'                                 -> the log's state (size and compact range)
//	't' | index (8 bytes)               -> tombstone of an erased entry
//	'a' | end (8 bytes)                 -> first (8 bytes): an archived range
//
// The hash of every perfect subtree is written once, when it completes, so any
// root, inclusion proof or consistency proof for any past size is O(log n)
// point reads. One [Log.Append] writes its entries, the new perfect-subtree
// hashes and the new state in a single Pebble batch committed with fsync, so
// after a crash the log is exactly as it was after some acknowledged Append.
//
// # Erasure
//
// [Log.Erase] destroys entries' bytes and keeps their leaf hashes, so the
// tree, its roots and every proof stay as they were; a tombstone takes the
// erased entry's place ([Log.Entry] answers an [ErasedError] holding it).
// Erase flushes and compacts the erased range, and the store never
// recycles a write-ahead log, so that no file under Dir keeps the bytes.
//
// # Archiving
//
// [Log.CutSegment] packs a range of entries into a [Segment] (its wire
// format is in segment.go and docs/protocol.md) and [Log.Archive] then
// removes their bytes, keeping leaf and subtree hashes as erasure does;
// [Log.Entry] answers an [ArchivedError] naming the range, and the caller
// reads the entry from the segment, checked with [Log.CheckSegment].
package datalog
