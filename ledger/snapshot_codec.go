// The state sync snapshot format: metadata and the node stream.

package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cosmos/iavl"
)

// SnapshotFormat is the format of the state sync snapshots this ledger
// serves and restores (abci.Snapshot.Format). A snapshot is the IAVL tree
// of one height exported node by node (depth-first, post-order: the order
// iavl.Exporter gives and iavl.Importer takes), each node written as
//
//	height   1 byte (0 = leaf)
//	version  uvarint (1..snapshot height)
//	key      uvarint length, bytes
//	value    uvarint length, bytes (leaves only)
//
// the whole stream cut into chunks of SnapshotChunkBytes (the last one
// shorter). The metadata names each chunk's SHA-256:
//
//	"thingnet-snapshot" 0x01 | uvarint chunk count | count × 32-byte SHA-256
//
// and the snapshot's hash is the SHA-256 of the metadata. The same state
// gives the same bytes on every node, so CometBFT sees one snapshot served
// by many peers and can fetch a chunk from another one.
const SnapshotFormat = 1

const (
	snapshotMagic     = "thingnet-snapshot"
	maxSnapshotChunks = 1 << 16 // 256 GiB at the default chunk size
	maxSnapshotKey    = 64 << 10
	maxSnapshotValue  = 16 << 20
)

// snapshotMeta is a snapshot's metadata: the SHA-256 of each chunk.
type snapshotMeta struct {
	Chunks [][32]byte
}

func (m snapshotMeta) encode() []byte {
	b := append([]byte(snapshotMagic), SnapshotFormat)
	b = binary.AppendUvarint(b, uint64(len(m.Chunks)))
	for _, h := range m.Chunks {
		b = append(b, h[:]...)
	}
	return b
}

// hash is the snapshot's hash (abci.Snapshot.Hash).
func (m snapshotMeta) hash() []byte {
	h := sha256.Sum256(m.encode())
	return h[:]
}

// decodeSnapshotMeta decodes metadata received from a peer.
func decodeSnapshotMeta(b []byte) (snapshotMeta, error) {
	var m snapshotMeta
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		return m, errors.New("snapshot metadata: not a thingnet snapshot (bad magic)")
	}
	b = b[len(snapshotMagic):]
	if len(b) == 0 || b[0] != SnapshotFormat {
		return m, fmt.Errorf("snapshot metadata: format byte missing or not %d", SnapshotFormat)
	}
	n, used := uvarint(b[1:])
	if used <= 0 {
		return m, errors.New("snapshot metadata: bad chunk count")
	}
	if n == 0 || n > maxSnapshotChunks {
		return m, fmt.Errorf("snapshot metadata: %d chunks; want 1..%d", n, maxSnapshotChunks)
	}
	b = b[1+used:]
	if uint64(len(b)) != n*32 {
		return m, fmt.Errorf("snapshot metadata: %d bytes of chunk hashes for %d chunks; want %d", len(b), n, n*32)
	}
	m.Chunks = make([][32]byte, n)
	for i := range m.Chunks {
		copy(m.Chunks[i][:], b[32*i:])
	}
	return m, nil
}

// appendExportNode appends n's encoding to b.
func appendExportNode(b []byte, n *iavl.ExportNode) []byte {
	b = append(b, byte(n.Height))
	b = binary.AppendUvarint(b, uint64(n.Version))
	b = binary.AppendUvarint(b, uint64(len(n.Key)))
	b = append(b, n.Key...)
	if n.Height == 0 {
		b = binary.AppendUvarint(b, uint64(len(n.Value)))
		b = append(b, n.Value...)
	}
	return b
}

// errShortNode: the buffer ends inside a node (the rest is in the next chunk).
var errShortNode = errors.New("node continues in the next chunk")

// parseExportNode parses one node from b, returning it and the bytes used.
func parseExportNode(b []byte, maxVersion int64) (*iavl.ExportNode, int, error) {
	if len(b) == 0 {
		return nil, 0, errShortNode
	}
	height := int8(b[0])
	if height < 0 {
		return nil, 0, fmt.Errorf("node height %d is negative", height)
	}
	p := 1
	version, used := uvarint(b[p:])
	switch {
	case used == 0:
		return nil, 0, errShortNode
	case used < 0:
		return nil, 0, errors.New("node version: bad uvarint")
	case version == 0 || version > uint64(maxVersion):
		return nil, 0, fmt.Errorf("node version %d is not in 1..%d", version, maxVersion)
	}
	p += used
	key, used, err := parseBytes(b[p:], maxSnapshotKey, "key")
	if err != nil {
		return nil, 0, err
	}
	p += used
	n := &iavl.ExportNode{Key: key, Version: int64(version), Height: height}
	if height == 0 {
		val, used, err := parseBytes(b[p:], maxSnapshotValue, "value")
		if err != nil {
			return nil, 0, err
		}
		p += used
		n.Value = val
	}
	return n, p, nil
}

// parseBytes parses a uvarint length and that many bytes (a copy, never nil).
func parseBytes(b []byte, limit uint64, what string) ([]byte, int, error) {
	n, used := uvarint(b)
	switch {
	case used == 0:
		return nil, 0, errShortNode
	case used < 0:
		return nil, 0, fmt.Errorf("node %s length: bad uvarint", what)
	case n > limit:
		return nil, 0, fmt.Errorf("node %s of %d bytes is above the limit of %d", what, n, limit)
	case uint64(len(b)-used) < n:
		return nil, 0, errShortNode
	}
	return append([]byte{}, b[used:used+int(n)]...), used + int(n), nil
}

// uvarint is binary.Uvarint refusing non-minimal encodings (used < 0),
// so that every stream has one encoding.
func uvarint(b []byte) (uint64, int) {
	v, used := binary.Uvarint(b)
	if used > 1 && b[used-1] == 0 {
		return 0, -used
	}
	return v, used
}

// nodeDecoder parses the node stream as its chunks arrive; a node may
// straddle chunks.
type nodeDecoder struct {
	rest       []byte
	maxVersion int64
}

// feed parses chunk (after what was left of the previous one) and passes
// each complete node to emit.
func (d *nodeDecoder) feed(chunk []byte, emit func(*iavl.ExportNode) error) error {
	buf := chunk
	if len(d.rest) > 0 {
		buf = append(d.rest, chunk...)
	}
	for {
		n, used, err := parseExportNode(buf, d.maxVersion)
		if errors.Is(err, errShortNode) {
			break
		}
		if err != nil {
			return err
		}
		if err := emit(n); err != nil {
			return err
		}
		buf = buf[used:]
	}
	d.rest = append([]byte(nil), buf...)
	return nil
}

// finish reports bytes left over after the last chunk.
func (d *nodeDecoder) finish() error {
	if len(d.rest) > 0 {
		return fmt.Errorf("snapshot ends inside a node (%d bytes left over)", len(d.rest))
	}
	return nil
}

// chunker cuts the node stream into chunks of size bytes and hashes them.
type chunker struct {
	size   int
	cur    []byte
	hashes [][32]byte
	bytes  int64
	put    func(index int, chunk []byte) error
}

func (c *chunker) write(p []byte) error {
	c.cur = append(c.cur, p...)
	for len(c.cur) >= c.size {
		if err := c.emit(c.cur[:c.size]); err != nil {
			return err
		}
		c.cur = append(c.cur[:0], c.cur[c.size:]...)
	}
	return nil
}

func (c *chunker) close() error {
	if len(c.cur) > 0 || len(c.hashes) == 0 {
		return c.emit(c.cur)
	}
	return nil
}

func (c *chunker) emit(b []byte) error {
	if len(c.hashes) >= maxSnapshotChunks {
		return fmt.Errorf("state needs more than %d snapshot chunks; raise the chunk size", maxSnapshotChunks)
	}
	c.hashes = append(c.hashes, sha256.Sum256(b))
	c.bytes += int64(len(b))
	return c.put(len(c.hashes)-1, bytes.Clone(b))
}
