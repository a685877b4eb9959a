package reading

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// A gateway's data log entry holds one envelope. Three layouts exist:
//
//   - layout 1 (gateways before entry layout 2): the envelope's bytes
//     alone. Its first byte is that of a COSE_Sign1 message: 0xd2 (tag 18)
//     or 0x84 (an untagged array of 4).
//   - layout 2: EntryLayout2 (0x02), then the ledger height at which the
//     gateway authenticated the reading (8 bytes, big-endian, at least 1:
//     the committed state it checked the device against), then the
//     envelope's bytes.
//   - layout 3: EntryLayout3 (0x03), the authentication height as in
//     layout 2, then the time the gateway received the envelope by its
//     own clock (8 bytes, big-endian: Unix milliseconds, at least 1),
//     then the envelope's bytes.
//
// The RFC 6962 leaf is the hash of the whole entry, so the authentication
// height and the receive time are anchored with the envelope: a verifier
// proves the signer's record at that height (active, with the key that
// signed) rather than at the anchor's, so a reading accepted while its
// device was active stays provable after the device is suspended or
// revoked; and the receive time, unlike the device's own, is the
// gateway's word, fixed before the anchor.
const (
	// EntryLayout2 is the first byte of a layout 2 entry.
	EntryLayout2 byte = 0x02
	// EntryLayout3 is the first byte of a layout 3 entry.
	EntryLayout3 byte = 0x03
	// EntryHeaderLen is the length of a layout 2 entry before the envelope.
	EntryHeaderLen = 1 + 8
	// EntryHeaderLen3 is the length of a layout 3 entry before the envelope.
	EntryHeaderLen3 = 1 + 8 + 8
	// MaxEntrySize is the largest entry: a header and the largest envelope.
	MaxEntrySize = EntryHeaderLen3 + MaxEnvelopeSize
)

// Entry is a decoded log entry.
type Entry struct {
	// Layout is 1 (the envelope alone), 2 (with AuthHeight) or 3 (with
	// AuthHeight and ReceivedAt).
	Layout int
	// AuthHeight is the ledger height at which the gateway authenticated
	// the reading; 0 in layout 1, which does not record it.
	AuthHeight int64
	// ReceivedAt is when the gateway received the envelope, Unix
	// milliseconds by its clock; 0 in layouts 1 and 2, which do not
	// record it.
	ReceivedAt int64
	// Envelope is the decoded envelope; Envelope.Raw its bytes.
	Envelope *Envelope
}

// EntryBytes returns the log entry of an envelope authenticated at
// authHeight and received at receivedAt (Unix ms): layout 3, or layout 2
// when receivedAt is 0, or layout 1 (the envelope itself) when both are 0.
// It does not check its arguments. Verifiers rebuild the entry with it to
// compute the leaf hash: it is the one place that lays entries out.
func EntryBytes(authHeight, receivedAt int64, envelope []byte) []byte {
	switch {
	case authHeight == 0 && receivedAt == 0:
		return envelope
	case receivedAt == 0:
		b := make([]byte, EntryHeaderLen, EntryHeaderLen+len(envelope))
		b[0] = EntryLayout2
		binary.BigEndian.PutUint64(b[1:], uint64(authHeight))
		return append(b, envelope...)
	}
	b := make([]byte, EntryHeaderLen3, EntryHeaderLen3+len(envelope))
	b[0] = EntryLayout3
	binary.BigEndian.PutUint64(b[1:], uint64(authHeight))
	binary.BigEndian.PutUint64(b[9:], uint64(receivedAt))
	return append(b, envelope...)
}

// NewEntry is EntryBytes for a gateway storing an envelope it received at
// receivedAt: layout 3. authHeight and receivedAt.UnixMilli() must be at
// least 1.
func NewEntry(authHeight int64, receivedAt time.Time, envelope []byte) ([]byte, error) {
	if authHeight < 1 {
		return nil, invalid("authentication height %d; want at least 1", authHeight)
	}
	ms := receivedAt.UnixMilli()
	if ms < 1 {
		return nil, invalid("receive time %v is not after 1970", receivedAt)
	}
	return EntryBytes(authHeight, ms, envelope), nil
}

// DecodeEntry parses a log entry of any layout and decodes its envelope
// (see Decode). Errors wrap ErrMalformed and say which part is wrong. The
// entry does not share memory with b.
func DecodeEntry(b []byte) (*Entry, error) {
	if len(b) == 0 {
		return nil, malformed("log entry is empty")
	}
	if b[0] != EntryLayout2 && b[0] != EntryLayout3 {
		env, err := Decode(b)
		if err != nil {
			return nil, fmt.Errorf("log entry (layout 1, an envelope): %w", err)
		}
		return &Entry{Layout: 1, Envelope: env}, nil
	}
	layout, hlen := 2, EntryHeaderLen
	if b[0] == EntryLayout3 {
		layout, hlen = 3, EntryHeaderLen3
	}
	if len(b) < hlen {
		return nil, malformed("log entry of layout %d is %d bytes; its header alone is %d", layout, len(b), hlen)
	}
	h := binary.BigEndian.Uint64(b[1:9])
	if h == 0 || h > math.MaxInt64 {
		return nil, malformed("log entry of layout %d: authentication height %d; want 1 to %d", layout, h, int64(math.MaxInt64))
	}
	e := &Entry{Layout: layout, AuthHeight: int64(h)}
	if layout == 3 {
		at := binary.BigEndian.Uint64(b[9:17])
		if at == 0 || at > maxTimeMillis {
			return nil, malformed("log entry of layout 3: receive time %d; want 1 to %d (Unix ms)", at, int64(maxTimeMillis))
		}
		e.ReceivedAt = int64(at)
	}
	env, err := Decode(b[hlen:])
	if err != nil {
		return nil, fmt.Errorf("log entry (layout %d, authenticated at height %d): %w", layout, h, err)
	}
	e.Envelope = env
	return e, nil
}
