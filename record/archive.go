package record

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Log archiving (docs/operations.md, "Archiving"): a gateway packs a run of
// old entries of its data log into a segment, publishes it through the
// file service and records it on the ledger, signed with its node key;
// once at least the configured number of other nodes record a pin of the
// segment (file.pin), it drops the entries' bytes. The record is what a
// reader checks a fetched segment against.
const (
	KindLogArchive = "log.archive"

	PrefixLogArchive = "la/" // la/<gateway did>/<end u64 BE> -> LogArchive

	// MaxArchiveEntries bounds the entries of one segment.
	MaxArchiveEntries = 1 << 16
)

// LogArchiveKey is the state key of a gateway's archived range ending
// (exclusive) at end.
func LogArchiveKey(gateway string, end uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixLogArchive+gateway+"/"), end)
}

// LogArchiveMsg records that the signing gateway archived its log's
// entries [First, First+Count) in the segment CID (SHA-256 Digest of its
// bytes, Size bytes). Ranges follow each other from entry 0, and lie
// within the gateway's anchored log.
type LogArchiveMsg struct {
	First  uint64 `cbor:"1,keyasint"`
	Count  uint64 `cbor:"2,keyasint"`
	CID    string `cbor:"3,keyasint"`
	Digest []byte `cbor:"4,keyasint"`
	Size   uint64 `cbor:"5,keyasint"`
	// Recut replaces the segment of exactly this recorded range by CID:
	// the gateway cut it again without the values of entries erased after
	// it was archived (docs/operations.md, "Erasure after archiving").
	Recut bool `cbor:"6,keyasint,omitempty"`
}

func (*LogArchiveMsg) Kind() string { return KindLogArchive }

func (m *LogArchiveMsg) ValidateBasic() error {
	switch {
	case m.Count == 0 || m.Count > MaxArchiveEntries:
		return fmt.Errorf("an archived range holds 1 to %d entries, not %d", MaxArchiveEntries, m.Count)
	case m.First+m.Count < m.First:
		return errors.New("the archived range overflows")
	case len(m.Digest) != 32:
		return fmt.Errorf("the segment digest is SHA-256 (32 bytes), not %d bytes", len(m.Digest))
	case m.Size == 0:
		return errors.New("the segment size must be 1 or more")
	}
	return validateCID(m.CID)
}

// LogArchive is a gateway's archived range as the ledger holds it.
type LogArchive struct {
	Gateway string `cbor:"1,keyasint" json:"gateway"`
	First   uint64 `cbor:"2,keyasint" json:"first"`
	Count   uint64 `cbor:"3,keyasint" json:"count"`
	CID     string `cbor:"4,keyasint" json:"cid"`
	Digest  []byte `cbor:"5,keyasint" json:"digest"`
	Size    uint64 `cbor:"6,keyasint" json:"size"`
	Height  int64  `cbor:"7,keyasint" json:"height"`
	// Replaced are the CIDs of the earlier segments of this range, oldest
	// first (at most MaxReplacedSegments, the latest kept): pinners drop
	// them, so erased values do not outlive a re-cut at the nodes that
	// follow the ledger.
	Replaced []string `cbor:"8,keyasint,omitempty" json:"replaced,omitempty"`
}

// MaxReplacedSegments bounds LogArchive.Replaced.
const MaxReplacedSegments = 16

// End is the index after the range's last entry.
func (a *LogArchive) End() uint64 { return a.First + a.Count }
