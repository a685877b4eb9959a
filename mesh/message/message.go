package message

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"github.com/fxamacker/cbor/v2"
	"github.com/thingnet/thingnet/identity"
)

// Message kinds: the grant action a sender needs for the receiver (or, for
// KindPublish, for the topic).
const (
	KindMessage = "message"
	KindCommand = "command"
	KindPublish = "publish"
)

// Size limits.
const (
	MaxEnvelope = 64 << 10 // bytes of one signed message
	MaxIDLen    = 256      // device ids and topics
	MaxTypeLen  = 64       // content type
)

// Message is what a device signs. To is the receiving device (direct and
// mailbox messages); Topic is the topic (published messages); exactly one
// is set.
type Message struct {
	Chain string `cbor:"1,keyasint"`
	From  string `cbor:"2,keyasint"`
	To    string `cbor:"3,keyasint,omitempty"`
	Topic string `cbor:"4,keyasint,omitempty"`
	Seq   uint64 `cbor:"5,keyasint"`
	Kind  string `cbor:"6,keyasint"`
	Type  string `cbor:"7,keyasint,omitempty"` // content type of the plaintext, e.g. "text/plain"
	// Suite is 0 for a plaintext Body, else the identity.Suite that sealed
	// it to the receiver (Body = HPKE enc || ciphertext; info = SealInfo).
	Suite uint8  `cbor:"8,keyasint,omitempty"`
	Body  []byte `cbor:"9,keyasint"`
	// Wake asks a mailbox to wake the sleeping receiver for this message;
	// it is honoured only within the sender's quota and the receiver's
	// daily downlink budget.
	Wake bool `cbor:"10,keyasint,omitempty"`
}

// Envelope is a decoded, not yet verified, signed message.
type Envelope struct {
	Message
	Raw  []byte // the COSE_Sign1 bytes as received
	Hash [32]byte
	sign *identity.Sign1
}

var (
	encMode = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err) // static options
		}
		return m
	}()
	decMode = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			IndefLength:       cbor.IndefLengthForbidden,
			TagsMd:            cbor.TagsForbidden,
			ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
			MaxNestedLevels:   8,
			MaxArrayElements:  4096,
			MaxMapPairs:       64,
			UTF8:              cbor.UTF8RejectInvalid,
			IntDec:            cbor.IntDecConvertNone,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

// ErrMalformed reports bytes that are not a well-formed envelope.
var ErrMalformed = errors.New("mesh: malformed")

// SealInfo is the HPKE info that binds a sealed body to its header, so a
// ciphertext cannot be replayed inside another sender's message.
func SealInfo(chain, from, to string, seq uint64) []byte {
	return []byte("thingnet msg v1\x00" + chain + "\x00" + from + "\x00" + to + "\x00" + strconv.FormatUint(seq, 10))
}

// Sign signs m with the sender's key (kid = m.From) after checking it.
func Sign(k *identity.Key, m Message) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	payload, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("mesh: encoding message: %w", err)
	}
	env, err := identity.SignCOSE(k, m.From, payload, nil)
	if err != nil {
		return nil, err
	}
	if len(env) > MaxEnvelope {
		return nil, fmt.Errorf("mesh: message is %d bytes signed, more than %d: send a file instead", len(env), MaxEnvelope)
	}
	return env, nil
}

// Seal builds a message whose body is sealed to the receiver's key with
// its default HPKE suite (or to hybridKey with the ML-KEM-768+X25519 suite
// when it is not nil) and signs it.
func Seal(k *identity.Key, m Message, to identity.PublicKey, hybridKey []byte) ([]byte, error) {
	suite, pub, err := to.EncryptionKey()
	if err != nil {
		return nil, err
	}
	if hybridKey != nil {
		suite, pub = identity.SuiteHybrid, hybridKey
	}
	ct, err := identity.Seal(suite, pub, SealInfo(m.Chain, m.From, m.To, m.Seq), m.Body)
	if err != nil {
		return nil, err
	}
	m.Suite, m.Body = uint8(suite), ct
	return Sign(k, m)
}

// Decode parses a signed message without verifying its signature. Every
// error wraps ErrMalformed and says what is wrong.
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("%w: message is %d bytes, more than %d", ErrMalformed, len(b), MaxEnvelope)
	}
	s, err := identity.DecodeSign1(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	e := &Envelope{Raw: b, Hash: sha256.Sum256(b), sign: s}
	if err := decMode.Unmarshal(s.Payload, &e.Message); err != nil {
		return nil, fmt.Errorf("%w: message payload: %v", ErrMalformed, err)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	if s.KID != e.From {
		return nil, fmt.Errorf("%w: signed by %q but says it is from %q", ErrMalformed, s.KID, e.From)
	}
	return e, nil
}

// Verify checks the signature with the sender's current key.
func (e *Envelope) Verify(pub identity.PublicKey) error { return e.sign.Verify(pub, nil) }

// Signature returns the signed bytes and signature, for batch verification.
func (e *Envelope) Signature() (tbs, sig []byte, err error) {
	tbs, err = e.sign.ToBeSigned(nil)
	return tbs, e.sign.Signature, err
}

func (m *Message) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
	}
	switch {
	case m.Chain == "" || len(m.Chain) > MaxIDLen:
		return bad("chain id must be 1 to %d bytes", MaxIDLen)
	case m.From == "" || len(m.From) > MaxIDLen:
		return bad("sender must be 1 to %d bytes", MaxIDLen)
	case (m.To == "") == (m.Topic == ""):
		return bad("a message names exactly one of a receiver (3) and a topic (4)")
	case len(m.To) > MaxIDLen || len(m.Topic) > MaxIDLen:
		return bad("receiver and topic are at most %d bytes", MaxIDLen)
	case m.Seq == 0:
		return bad("sequence number must be at least 1")
	case len(m.Type) > MaxTypeLen:
		return bad("content type is longer than %d bytes", MaxTypeLen)
	case m.Topic != "" && m.Kind != KindPublish:
		return bad("a topic message has kind %q, not %q", KindPublish, m.Kind)
	case m.To != "" && m.Kind != KindMessage && m.Kind != KindCommand:
		return bad("kind %q is not %q or %q", m.Kind, KindMessage, KindCommand)
	case m.Suite > uint8(identity.SuiteHybrid):
		return bad("unknown HPKE suite %d", m.Suite)
	case m.Suite != 0 && m.Topic != "":
		return bad("a topic message cannot be sealed to one receiver")
	}
	return nil
}

// Open returns the plaintext body: the body itself, or the body opened
// with the receiver's key.
func (e *Envelope) Open(k *identity.Key) ([]byte, error) {
	if e.Suite == 0 {
		return e.Body, nil
	}
	return k.Open(identity.Suite(e.Suite), SealInfo(e.Chain, e.From, e.To, e.Seq), e.Body)
}

// Marshal encodes v in the mesh's deterministic CBOR (RFC 8949 core
// deterministic encoding): messages, receipts and the frames of the mesh
// protocols.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes the mesh's CBOR strictly: no duplicate or unknown
// keys, no indefinite lengths, no tags, bounded nesting and sizes.
func Unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }
