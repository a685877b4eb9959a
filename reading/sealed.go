// Sealed readings: a value sealed by the device to its organisation's data
// key, so that gateways authenticate, store, anchor and prove the reading
// without being able to read it (docs/protocol.md "Sealed values",
// docs/privacy.md).

package reading

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/thingnet/thingnet/identity"
)

const (
	// SealLabel opens the HPKE info (and AEAD associated data) of every
	// sealed value: info = CBOR [SealLabel, chain id, device, seq,
	// key version] (SealInfo).
	SealLabel = "thingnet/sealed/v1"
	// SealExporterContext is the HPKE exporter context of a sealed
	// value's secret.
	SealExporterContext = "thingnet/sealed/v1 key"
	// SealCommitLabel prefixes the secret in its commitment:
	// commit = SHA-256(SealCommitLabel ‖ secret).
	SealCommitLabel = "thingnet/sealed/v1 commit"

	// SecretSize is the size of a sealed value's secret: the
	// ChaCha20-Poly1305 key of that one value, which its disclosure
	// reveals.
	SecretSize = 32
	// CommitSize is the size of the commitment to the secret.
	CommitSize = 32
	// MaxSealedPlaintext is the largest plaintext of a sealed value: a
	// byte string of MaxBytes bytes with its 5-byte CBOR head.
	MaxSealedPlaintext = MaxBytes + 5
	// MinCiphertext and MaxCiphertext bound a sealed value's ciphertext:
	// the plaintext (one CBOR item, 1 byte or more) and a 16-byte tag.
	MinCiphertext = 1 + chacha20poly1305.Overhead
	MaxCiphertext = MaxSealedPlaintext + chacha20poly1305.Overhead
)

// ErrSealed reports a sealed value that does not open: the wrong key or
// secret, a commitment or tag that does not match, or a plaintext that is
// not a value.
var ErrSealed = errors.New("reading: sealed value does not open")

// Sealed is a reading's value sealed to a data key (payload key 9): a map
// of
//
//	1: suite (identity.Suite: 1 X25519, 2 P-256, 3 ML-KEM-768+X25519)
//	2: version of the organisation's data key, 1 or more
//	3: enc, the HPKE encapsulated key (32, 65 or 1,120 bytes by suite)
//	4: commit, SHA-256(SealCommitLabel ‖ secret), 32 bytes
//	5: ciphertext, ChaCha20-Poly1305 with key secret, a zero nonce and
//	   associated data info, of the CBOR encoding of the value: what key 5
//	   (a number) or key 6 (a byte string) would hold
//
// where info is SealInfo(chain id, device, seq, version) and secret the
// 32 bytes exported (context SealExporterContext) from an export-only HPKE
// context (mode_base, the suite's KEM, HKDF-SHA256, AEAD 0xFFFF) set up
// with info to the data key.
type Sealed struct {
	Suite      identity.Suite `cbor:"1,keyasint" json:"suite"`
	Version    uint64         `cbor:"2,keyasint" json:"version"`
	Enc        []byte         `cbor:"3,keyasint" json:"enc"`
	Commit     []byte         `cbor:"4,keyasint" json:"commit"`
	Ciphertext []byte         `cbor:"5,keyasint" json:"ciphertext"`
}

// inSealed is the decoded form: pointers tell a missing key.
type inSealed struct {
	Suite      *uint64 `cbor:"1,keyasint,omitempty"`
	Version    *uint64 `cbor:"2,keyasint,omitempty"`
	Enc        *[]byte `cbor:"3,keyasint,omitempty"`
	Commit     *[]byte `cbor:"4,keyasint,omitempty"`
	Ciphertext *[]byte `cbor:"5,keyasint,omitempty"`
}

var sealedNames = [...]string{1: "suite", 2: "version", 3: "enc", 4: "commit", 5: "ciphertext"}

func (in *inSealed) sealed() (*Sealed, error) {
	for k, ok := range [...]bool{1: in.Suite != nil, 2: in.Version != nil, 3: in.Enc != nil, 4: in.Commit != nil, 5: in.Ciphertext != nil} {
		if k > 0 && !ok {
			return nil, fmt.Errorf("key %d (%s) is missing", k, sealedNames[k])
		}
	}
	if *in.Suite > 0xff {
		return nil, fmt.Errorf("key 1 (suite) %d is not a known HPKE suite", *in.Suite)
	}
	s := &Sealed{Suite: identity.Suite(*in.Suite), Version: *in.Version, Enc: *in.Enc, Commit: *in.Commit, Ciphertext: *in.Ciphertext}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// check checks the bounds of a sealed value.
func (s *Sealed) check() error {
	n := s.Suite.EncSize()
	switch {
	case n == 0:
		return fmt.Errorf("key 1 (suite) %d is not a known HPKE suite (1, 2 or 3)", uint8(s.Suite))
	case s.Version == 0:
		return errors.New("key 2 (version) is 0, want 1 or more")
	case len(s.Enc) != n:
		return fmt.Errorf("key 3 (enc) is %d bytes, want %d for suite %v", len(s.Enc), n, s.Suite)
	case len(s.Commit) != CommitSize:
		return fmt.Errorf("key 4 (commit) is %d bytes, want %d", len(s.Commit), CommitSize)
	case len(s.Ciphertext) < MinCiphertext || len(s.Ciphertext) > MaxCiphertext:
		return fmt.Errorf("key 5 (ciphertext) is %d bytes, want %d to %d", len(s.Ciphertext), MinCiphertext, MaxCiphertext)
	}
	return nil
}

// DataKey is the public half of an organisation's data key, as the ledger
// publishes it (record.DataKey).
type DataKey struct {
	Version uint64
	Suite   identity.Suite
	Key     []byte
}

// SealInfo is the HPKE info and the AEAD associated data of a sealed
// value: the CBOR array [SealLabel, chainID, device, seq, version], in
// deterministic encoding. It binds the sealed value to one reading of one
// device on one chain under one key version: moved to another reading, it
// no longer opens.
func SealInfo(chainID, device string, seq, version uint64) []byte {
	b, err := cdc.enc.Marshal([]any{SealLabel, chainID, device, seq, version})
	if err != nil {
		panic(fmt.Sprintf("reading: encoding seal info: %v", err)) // strings and integers always encode
	}
	return b
}

// Commitment is the commitment to a sealed value's secret.
func Commitment(secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte(SealCommitLabel))
	h.Write(secret)
	return h.Sum(nil)
}

var zeroNonce [chacha20poly1305.NonceSize]byte

// SealReading returns r with its value (Value or Bytes) replaced by the
// value sealed to the data key k for the device's reading r.Seq on chain
// chainID. Errors wrap ErrInvalid, or are HPKE's.
func SealReading(r Reading, chainID, device string, k DataKey) (Reading, error) {
	if r.Sealed != nil {
		return Reading{}, invalid("reading %d is sealed already", r.Seq)
	}
	if r.Device != "" && r.Device != device {
		return Reading{}, invalid("reading is of device %q, not %q", truncate(r.Device), truncate(device))
	}
	if k.Version == 0 {
		return Reading{}, invalid("data key version is 0")
	}
	pt, err := valuePlaintext(r)
	if err != nil {
		return Reading{}, invalid("%v", err)
	}
	info := SealInfo(chainID, device, r.Seq, k.Version)
	enc, secret, err := identity.SealExport(k.Suite, k.Key, info, SealExporterContext, SecretSize)
	if err != nil {
		return Reading{}, err
	}
	aead, err := chacha20poly1305.New(secret)
	if err != nil {
		return Reading{}, err
	}
	out := r
	out.Value, out.Bytes = nil, nil
	out.Sealed = &Sealed{Suite: k.Suite, Version: k.Version, Enc: enc, Commit: Commitment(secret),
		Ciphertext: aead.Seal(nil, zeroNonce[:], pt, info)}
	return out, nil
}

// valuePlaintext is the CBOR item of r's value.
func valuePlaintext(r Reading) ([]byte, error) {
	switch {
	case r.Value != nil && r.Bytes != nil:
		return nil, errors.New("both Value and Bytes are set, want one")
	case r.Value != nil:
		if err := checkValue(*r.Value); err != nil {
			return nil, fmt.Errorf("value %v", err)
		}
		return cdc.enc.Marshal(*r.Value)
	case r.Bytes != nil:
		if len(r.Bytes) > MaxBytes {
			return nil, fmt.Errorf("bytes are %d long, more than %d", len(r.Bytes), MaxBytes)
		}
		return cdc.enc.Marshal(r.Bytes)
	}
	return nil, errors.New("neither Value nor Bytes is set, want one")
}

// SealedSecret derives the secret of r's sealed value with the data
// private key k (the organisation's, of the version r.Sealed names). r is
// a reading of device r.Device on chain chainID, as Decode returns it. The
// secret opens this one value (OpenSealed) and nothing else: it is what a
// disclosure reveals.
func SealedSecret(k *identity.Key, chainID string, r Reading) ([]byte, error) {
	if r.Sealed == nil {
		return nil, invalid("reading %d is not sealed", r.Seq)
	}
	s := r.Sealed
	info := SealInfo(chainID, r.Device, r.Seq, s.Version)
	secret, err := k.OpenExport(s.Suite, s.Enc, info, SealExporterContext, SecretSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	if !bytes.Equal(Commitment(secret), s.Commit) {
		return nil, fmt.Errorf("%w: reading %d of %s: not sealed to this key (version %d), or to another chain or reading", ErrSealed, r.Seq, truncate(r.Device), s.Version)
	}
	return secret, nil
}

// OpenSealed opens r's sealed value with its secret: it checks the secret
// against the commitment, decrypts and decodes the value, and returns r
// with Value or Bytes set and Sealed nil. It is deterministic (the ledger
// runs it on disclosed readings): only the one plaintext sealed can come
// out, whoever holds the secret.
func OpenSealed(secret []byte, chainID string, r Reading) (Reading, error) {
	if r.Sealed == nil {
		return Reading{}, invalid("reading %d is not sealed", r.Seq)
	}
	s := r.Sealed
	if len(secret) != SecretSize || !bytes.Equal(Commitment(secret), s.Commit) {
		return Reading{}, fmt.Errorf("%w: the secret is not the one reading %d was sealed with", ErrSealed, r.Seq)
	}
	aead, err := chacha20poly1305.New(secret)
	if err != nil {
		return Reading{}, fmt.Errorf("%w: %v", ErrSealed, err)
	}
	pt, err := aead.Open(nil, zeroNonce[:], s.Ciphertext, SealInfo(chainID, r.Device, r.Seq, s.Version))
	if err != nil {
		return Reading{}, fmt.Errorf("%w: reading %d of %s: the ciphertext does not open for this chain, device, seq and version", ErrSealed, r.Seq, truncate(r.Device))
	}
	out := r
	out.Sealed = nil
	if err := decodePlaintext(pt, &out); err != nil {
		return Reading{}, fmt.Errorf("%w: reading %d: the plaintext %v", ErrSealed, r.Seq, err)
	}
	return out, nil
}

// Open opens r's sealed value with the data private key k: SealedSecret
// then OpenSealed.
func Open(k *identity.Key, chainID string, r Reading) (Reading, error) {
	secret, err := SealedSecret(k, chainID, r)
	if err != nil {
		return Reading{}, err
	}
	return OpenSealed(secret, chainID, r)
}

// decodePlaintext decodes a sealed value's plaintext, one CBOR item: a
// byte string (at most MaxBytes) or a number as key 5 holds it.
func decodePlaintext(pt []byte, r *Reading) error {
	if len(pt) == 0 || len(pt) > MaxSealedPlaintext {
		return fmt.Errorf("is %d bytes, want 1 to %d", len(pt), MaxSealedPlaintext)
	}
	var raw cbor.RawMessage
	if err := cdc.dec.Unmarshal(pt, &raw); err != nil {
		return fmt.Errorf("is not one CBOR item: %v", err)
	}
	if raw[0]>>5 == 2 {
		var b []byte
		if err := cdc.dec.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("is not a byte string: %v", err)
		}
		if len(b) > MaxBytes {
			return fmt.Errorf("is %d bytes, more than %d", len(b), MaxBytes)
		}
		if b == nil {
			b = []byte{}
		}
		r.Bytes = b
		return nil
	}
	v, err := decodeValue(raw)
	if err != nil {
		return err
	}
	r.Value = &v
	return nil
}

// count is how many of bs are true.
func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
