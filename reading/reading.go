package reading

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/thingnet/thingnet/identity"
)

const (
	// MaxEnvelopeSize is the largest envelope, in bytes, that Decode
	// accepts and Sign produces.
	MaxEnvelopeSize = identity.MaxSign1Size

	// MaxBytes is the largest byte-string value of one reading.
	MaxBytes = 64 << 10

	// MaxBatch is the largest number of readings in one envelope.
	MaxBatch = 256

	// MaxContentType is the longest content type, in bytes.
	MaxContentType = 64

	// ExternalAAD is the external data (RFC 9052 external_aad) bound into
	// every reading signature: the Sig_structure is
	// ["Signature1", protected, "thingnet/reading/v1" as bytes, payload].
	// It keeps reading signatures apart from the transactions and tokens a
	// device signs with the same key.
	ExternalAAD = "thingnet/reading/v1"

	// maxTimeMillis is 9999-12-31T23:59:59.999Z in Unix milliseconds:
	// later times cannot be written as RFC 3339 (JSON) and are refused.
	maxTimeMillis = 253402300799999

	// maxExactInt is 2^53: integers of larger magnitude do not all have
	// a float64, and are refused as values.
	maxExactInt = 1 << 53

	maxIDSize = 256 // bytes in a device or gateway id (the COSE kid bound)
	minIDRest = 40  // base58 characters after "did:key:z" in a real key id
)

// Reading is one sensor reading.
type Reading struct {
	// Device is the id of the device the reading is from. Sign and
	// SignAttested take it from their arguments (it may be left empty);
	// Decode sets it.
	Device string
	// Seq is the device's sequence number, 1 or more, strictly increasing
	// over the device's readings: it protects against replays.
	Seq uint64
	// Time is the device's clock at the reading, with millisecond
	// precision (finer precision is truncated), from 1970 to 9999.
	Time time.Time
	// ContentType says what the value is, for example
	// "temperature/celsius": 1 to 64 bytes of printable ASCII, no spaces.
	ContentType string
	// Exactly one of Value, Bytes and Sealed is set. Value is a finite
	// number; Bytes, which may be empty but not nil, at most MaxBytes
	// bytes; Sealed a value (number or bytes) sealed to the data key of
	// the device's organisation (SealReading, Open).
	Value  *float64
	Bytes  []byte
	Sealed *Sealed
}

// Envelope is a decoded reading envelope.
type Envelope struct {
	// Device is the id of the device the readings are from.
	Device string
	// Attester is, for readings the device could not sign itself, the id
	// of the gateway that signed them; it is empty otherwise. The caller
	// must check on the ledger that the device is attested by it.
	Attester string
	// Readings holds one reading, or the readings of a batch in
	// increasing Seq order. Each has Device set.
	Readings []Reading
	// Batch reports the batch form (key 7), even of one reading.
	Batch bool
	// Sign1 is the COSE_Sign1 message; its KID is Signer().
	Sign1 *identity.Sign1
	// Raw is a copy of the envelope's bytes, as signed.
	Raw []byte
}

// Signer returns the id of the key that signed e: the attesting gateway
// for attested readings, the device otherwise.
func (e *Envelope) Signer() string {
	if e.Attester != "" {
		return e.Attester
	}
	return e.Device
}

// Seqs returns the sequence numbers of e's readings, in order.
func (e *Envelope) Seqs() []uint64 {
	s := make([]uint64, len(e.Readings))
	for i, r := range e.Readings {
		s[i] = r.Seq
	}
	return s
}

// Verify checks that e is signed by pub: the current key of the device, or
// of the attesting gateway for attested readings (the caller looks it up on
// the ledger). Failures wrap identity.ErrBadSignature.
func (e *Envelope) Verify(pub identity.PublicKey) error {
	if e == nil || e.Sign1 == nil {
		return invalid("verify: envelope has no COSE_Sign1 message")
	}
	if err := e.Sign1.Verify(pub, []byte(ExternalAAD)); err != nil {
		return fmt.Errorf("reading: %s: %w", e.Signer(), err)
	}
	return nil
}

// ToBeSigned returns the bytes that e's signature covers, to verify many
// envelopes together with identity.Batch:
//
//	batch.Add(pub, tbs, e.Sign1.Signature)
func (e *Envelope) ToBeSigned() ([]byte, error) {
	if e == nil || e.Sign1 == nil {
		return nil, invalid("envelope has no COSE_Sign1 message")
	}
	return e.Sign1.ToBeSigned([]byte(ExternalAAD))
}

// checkID checks the syntax of a device or gateway id: a did:key of at
// most 256 bytes whose key part is base58. It does not decode the key: the
// id must name a device on the ledger anyway, and an id that does not is
// refused there.
func checkID(s string) error {
	rest, ok := strings.CutPrefix(s, "did:key:z")
	if !ok {
		return fmt.Errorf("%q is not a did:key", truncate(s))
	}
	if len(s) > maxIDSize || len(rest) < minIDRest {
		return fmt.Errorf("did:key is %d bytes, want %d to %d", len(s), len("did:key:z")+minIDRest, maxIDSize)
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !isBase58(c) {
			return fmt.Errorf("did:key has %q at offset %d, not a base58 character", c, len("did:key:z")+i)
		}
	}
	return nil
}

func isBase58(c byte) bool {
	return c >= '1' && c <= '9' ||
		c >= 'A' && c <= 'Z' && c != 'I' && c != 'O' ||
		c >= 'a' && c <= 'z' && c != 'l'
}

// checkContentType checks a content type: 1 to 64 bytes of printable
// ASCII other than space (0x21 to 0x7e).
func checkContentType(s string) error {
	if len(s) == 0 || len(s) > MaxContentType {
		return fmt.Errorf("is %d bytes, want 1 to %d", len(s), MaxContentType)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("has byte 0x%02x at offset %d, want printable ASCII without spaces", c, i)
		}
	}
	return nil
}

// checkValue checks a number value: finite.
func checkValue(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("is %v, want a finite number", v)
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
