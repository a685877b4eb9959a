package reading

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A gateway's data log entry holds one envelope. Two layouts exist:
//
//   - layout 1 (gateways before entry layout 2): the envelope's bytes
//     alone. Its first byte is that of a COSE_Sign1 message: 0xd2 (tag 18)
//     or 0x84 (an untagged array of 4).
//   - layout 2: EntryLayout2 (0x02), then the ledger height at which the
//     gateway authenticated the reading (8 bytes, big-endian, at least 1:
//     the committed state it checked the device against), then the
//     envelope's bytes.
//
// The RFC 6962 leaf is the hash of the whole entry, so the authentication
// height is anchored with the envelope: a verifier proves the signer's
// record at that height (active, with the key that signed) rather than at
// the anchor's, so a reading accepted while its device was active stays
// provable after the device is suspended or revoked.
const (
	// EntryLayout2 is the first byte of a layout 2 entry.
	EntryLayout2 byte = 0x02
	// EntryHeaderLen is the length of a layout 2 entry before the envelope.
	EntryHeaderLen = 1 + 8
	// MaxEntrySize is the largest entry: a header and the largest envelope.
	MaxEntrySize = EntryHeaderLen + MaxEnvelopeSize
)

// Entry is a decoded log entry.
type Entry struct {
	// Layout is 1 (the envelope alone) or 2 (with AuthHeight).
	Layout int
	// AuthHeight is the ledger height at which the gateway authenticated
	// the reading; 0 in layout 1, which does not record it.
	AuthHeight int64
	// Envelope is the decoded envelope; Envelope.Raw its bytes.
	Envelope *Envelope
}

// EntryBytes returns the log entry of an envelope authenticated at
// authHeight: layout 2, or layout 1 (the envelope itself) when authHeight
// is 0. It does not check the envelope. Verifiers rebuild the entry with it
// to compute the leaf hash.
func EntryBytes(authHeight int64, envelope []byte) []byte {
	if authHeight == 0 {
		return envelope
	}
	b := make([]byte, EntryHeaderLen, EntryHeaderLen+len(envelope))
	b[0] = EntryLayout2
	binary.BigEndian.PutUint64(b[1:], uint64(authHeight))
	return append(b, envelope...)
}

// NewEntry is EntryBytes for a gateway storing an envelope: authHeight must
// be at least 1.
func NewEntry(authHeight int64, envelope []byte) ([]byte, error) {
	if authHeight < 1 {
		return nil, invalid("authentication height %d; want at least 1", authHeight)
	}
	return EntryBytes(authHeight, envelope), nil
}

// DecodeEntry parses a log entry of either layout and decodes its envelope
// (see Decode). Errors wrap ErrMalformed and say which part is wrong. The
// entry does not share memory with b.
func DecodeEntry(b []byte) (*Entry, error) {
	if len(b) == 0 {
		return nil, malformed("log entry is empty")
	}
	if b[0] != EntryLayout2 {
		env, err := Decode(b)
		if err != nil {
			return nil, fmt.Errorf("log entry (layout 1, an envelope): %w", err)
		}
		return &Entry{Layout: 1, Envelope: env}, nil
	}
	if len(b) < EntryHeaderLen {
		return nil, malformed("log entry of layout 2 is %d bytes; its header alone is %d", len(b), EntryHeaderLen)
	}
	h := binary.BigEndian.Uint64(b[1:EntryHeaderLen])
	if h == 0 || h > math.MaxInt64 {
		return nil, malformed("log entry of layout 2: authentication height %d; want 1 to %d", h, int64(math.MaxInt64))
	}
	env, err := Decode(b[EntryHeaderLen:])
	if err != nil {
		return nil, fmt.Errorf("log entry (layout 2, authenticated at height %d): %w", h, err)
	}
	return &Entry{Layout: 2, AuthHeight: int64(h), Envelope: env}, nil
}
