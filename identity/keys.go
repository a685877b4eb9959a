package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/oasisprotocol/curve25519-voi/curve"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Algorithm is a signature algorithm, numbered as in the IANA COSE
// Algorithms registry.
type Algorithm int

// The supported algorithms.
const (
	Ed25519 Algorithm = -8 // COSE alg EdDSA
	P256    Algorithm = -7 // COSE alg ES256 (ECDSA P-256 with SHA-256)
)

const (
	ed25519PublicKeySize = 32
	p256PublicKeySize    = 33 // compressed SEC1 point
	p256ScalarSize       = 32
	signatureSize        = 64 // Ed25519 R||S and P-256 r||s alike
)

// String returns "ed25519" or "p256".
// MarshalText writes the algorithm's name ("ed25519", "p256").
func (a Algorithm) MarshalText() ([]byte, error) {
	if _, err := ParseAlgorithm(a.String()); err != nil {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedAlgorithm, int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads a name that ParseAlgorithm accepts.
func (a *Algorithm) UnmarshalText(b []byte) error {
	v, err := ParseAlgorithm(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

func (a Algorithm) String() string {
	switch a {
	case Ed25519:
		return "ed25519"
	case P256:
		return "p256"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// ParseAlgorithm parses "ed25519" or "p256" (also "es256" and "p-256"),
// ignoring case.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToLower(s) {
	case "ed25519":
		return Ed25519, nil
	case "p256", "p-256", "es256":
		return P256, nil
	}
	return 0, fmt.Errorf("%w: %q (want ed25519 or p256)", ErrUnsupportedAlgorithm, s)
}

// PublicKey is a public key in its compact encoding: for Ed25519 the 32-byte
// RFC 8032 encoding, for P-256 the 33-byte compressed SEC1 point.
type PublicKey struct {
	Alg   Algorithm
	Bytes []byte
}

// NewPublicKey validates b as a public key of alg and returns it with a
// copy of b. Ed25519 keys must be canonically encoded curve points of more
// than small order; P-256 keys must be compressed points on the curve.
func NewPublicKey(alg Algorithm, b []byte) (PublicKey, error) {
	switch alg {
	case Ed25519:
		if err := checkEd25519PublicKey(b); err != nil {
			return PublicKey{}, err
		}
	case P256:
		if _, err := parseP256PublicKey(b); err != nil {
			return PublicKey{}, err
		}
	default:
		return PublicKey{}, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, alg)
	}
	return PublicKey{Alg: alg, Bytes: bytes.Clone(b)}, nil
}

// Equal reports whether k and o are the same key.
func (k PublicKey) Equal(o PublicKey) bool {
	return k.Alg == o.Alg && bytes.Equal(k.Bytes, o.Bytes)
}

// IsZero reports whether k is the zero PublicKey.
func (k PublicKey) IsZero() bool {
	return k.Alg == 0 && len(k.Bytes) == 0
}

// Verify checks sig over msg. It returns an error wrapping ErrBadSignature
// if the signature does not verify, or ErrInvalidKey if k is not a key.
//
// Ed25519 signatures are 64 bytes, verified with the ZIP-215 rule (see
// ed25519VerifyOptions): the cofactored equation, non-canonical encodings
// of A and R accepted as ZIP-215 says, S canonical. It is the rule CometBFT
// uses, and the one under which Batch gives the same answer as Verify for
// every input. Every signature made by crypto/ed25519 verifies; on crafted
// signatures (small-order components, non-canonical encodings) the answer
// can differ from that of crypto/ed25519's cofactorless equation.
//
// P-256 signatures are 64-byte r||s over the SHA-256 digest of msg.
func (k PublicKey) Verify(msg, sig []byte) error {
	switch k.Alg {
	case Ed25519:
		if len(k.Bytes) != ed25519PublicKeySize {
			return fmt.Errorf("%w: ed25519 public key is %d bytes, want %d", ErrInvalidKey, len(k.Bytes), ed25519PublicKeySize)
		}
		if len(sig) != signatureSize {
			return fmt.Errorf("%w: ed25519 signature is %d bytes, want %d", ErrBadSignature, len(sig), signatureSize)
		}
		if !voi.VerifyWithOptions(k.Bytes, msg, sig, ed25519VerifyOptions()) {
			return fmt.Errorf("%w: ed25519 signature does not verify", ErrBadSignature)
		}
		return nil
	case P256:
		pub, err := parseP256PublicKey(k.Bytes)
		if err != nil {
			return err
		}
		if len(sig) != signatureSize {
			return fmt.Errorf("%w: p256 signature is %d bytes, want %d", ErrBadSignature, len(sig), signatureSize)
		}
		digest := sha256.Sum256(msg)
		r := new(big.Int).SetBytes(sig[:p256ScalarSize])
		s := new(big.Int).SetBytes(sig[p256ScalarSize:])
		if !ecdsa.Verify(pub, digest[:], r, s) {
			return fmt.Errorf("%w: p256 signature does not verify", ErrBadSignature)
		}
		return nil
	}
	return fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, k.Alg)
}

// ed25519VerifyOptions returns the Ed25519 verification rule of this
// package, ZIP-215 (https://zips.z.cash/zip-0215): the cofactored equation
// [8][S]B = [8]R + [8][k]A, with k = SHA-512(R || A || M) over the encodings
// as given; A and R may be any encoding that decodes to a curve point,
// including non-canonical ones and points of small order; S must be
// canonical (S < L). Verify and Batch must both use exactly these options:
// ZIP-215 is a rule under which batch and single verification give the
// same answer for every input, and it is the rule CometBFT uses for its
// own Ed25519 signatures.
func ed25519VerifyOptions() *voi.Options {
	return &voi.Options{Verify: voi.VerifyOptionsZIP_215}
}

// CryptoPublicKey returns k as an ed25519.PublicKey or an *ecdsa.PublicKey,
// or nil if k is not a valid key.
func (k PublicKey) CryptoPublicKey() crypto.PublicKey {
	switch k.Alg {
	case Ed25519:
		if len(k.Bytes) != ed25519PublicKeySize {
			return nil
		}
		return ed25519.PublicKey(bytes.Clone(k.Bytes))
	case P256:
		pub, err := parseP256PublicKey(k.Bytes)
		if err != nil {
			return nil
		}
		return pub
	}
	return nil
}

// checkEd25519PublicKey refuses encodings that are not curve points, that
// are not canonical (one key, one id) or whose point has small order (a
// key for which anyone can make signatures: under ZIP-215, any R and S
// with [8]R = [8][S]B verify for every message). Verify itself follows
// ZIP-215 and accepts such keys; it is NewPublicKey and ParseDID that keep
// them out.
func checkEd25519PublicKey(b []byte) error {
	if len(b) != ed25519PublicKeySize {
		return fmt.Errorf("%w: ed25519 public key is %d bytes, want %d", ErrInvalidKey, len(b), ed25519PublicKeySize)
	}
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(b); err != nil {
		return fmt.Errorf("%w: ed25519 public key: %v", ErrInvalidKey, err)
	}
	if !c.IsCanonicalVartime() {
		return fmt.Errorf("%w: ed25519 public key is not canonically encoded", ErrInvalidKey)
	}
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(&c); err != nil {
		return fmt.Errorf("%w: ed25519 public key is not a curve point", ErrInvalidKey)
	}
	if p.IsSmallOrder() {
		return fmt.Errorf("%w: ed25519 public key has small order", ErrInvalidKey)
	}
	return nil
}

// parseP256PublicKey decodes a 33-byte compressed SEC1 point.
func parseP256PublicKey(b []byte) (*ecdsa.PublicKey, error) {
	if len(b) != p256PublicKeySize {
		return nil, fmt.Errorf("%w: p256 public key is %d bytes, want %d (compressed point)", ErrInvalidKey, len(b), p256PublicKeySize)
	}
	// UnmarshalCompressed checks the prefix (2 or 3), x < p and that the
	// point is on the curve.
	x, y := elliptic.UnmarshalCompressed(elliptic.P256(), b)
	if x == nil {
		return nil, fmt.Errorf("%w: p256 public key is not a compressed point on the curve", ErrInvalidKey)
	}
	var u [1 + 2*p256ScalarSize]byte
	u[0] = 4 // uncompressed
	x.FillBytes(u[1 : 1+p256ScalarSize])
	y.FillBytes(u[1+p256ScalarSize:])
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), u[:])
	if err != nil {
		return nil, fmt.Errorf("%w: p256 public key: %v", ErrInvalidKey, err)
	}
	return pub, nil
}

// compressP256 returns the compressed SEC1 encoding of a P-256 public key.
func compressP256(pub *ecdsa.PublicKey) ([]byte, error) {
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: ecdsa key on curve %s, want P-256", ErrUnsupportedAlgorithm, curveName(pub.Curve))
	}
	u, err := pub.Bytes() // 0x04 || x || y
	if err != nil {
		return nil, fmt.Errorf("%w: p256 public key: %v", ErrInvalidKey, err)
	}
	c := make([]byte, p256PublicKeySize)
	c[0] = 2 | u[len(u)-1]&1
	copy(c[1:], u[1:1+p256ScalarSize])
	return c, nil
}

// curveName names c in error messages.
func curveName(c elliptic.Curve) string {
	if c == nil || c.Params() == nil {
		return "<nil>"
	}
	return c.Params().Name
}

// PublicKeyOf converts a crypto.PublicKey (ed25519.PublicKey or a P-256
// *ecdsa.PublicKey), such as a libp2p peer's key, to a PublicKey.
func PublicKeyOf(pub crypto.PublicKey) (PublicKey, error) { return publicKeyOf(pub) }

// publicKeyOf converts a crypto.PublicKey of a supported kind.
func publicKeyOf(pub crypto.PublicKey) (PublicKey, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return NewPublicKey(Ed25519, p)
	case *ecdsa.PublicKey:
		if p == nil {
			return PublicKey{}, fmt.Errorf("%w: nil ecdsa public key", ErrInvalidKey)
		}
		c, err := compressP256(p)
		if err != nil {
			return PublicKey{}, err
		}
		return NewPublicKey(P256, c)
	}
	return PublicKey{}, fmt.Errorf("%w: public key of type %T", ErrUnsupportedAlgorithm, pub)
}

// Key is a private key behind a crypto.Signer, so that a key held in a
// secure element fits as well as one in memory. A Key is immutable and safe
// for concurrent use if its Signer is.
type Key struct {
	signer crypto.Signer
	pub    PublicKey
	id     string
	// opaque is set when the private key is not an in-memory
	// ed25519.PrivateKey or *ecdsa.PrivateKey: it cannot be exported and
	// its signatures are checked before they are returned.
	opaque bool
}

// GenerateKey makes a new random key.
func GenerateKey(alg Algorithm) (*Key, error) {
	switch alg {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("identity: generate ed25519 key: %w", err)
		}
		return FromSigner(priv)
	case P256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("identity: generate p256 key: %w", err)
		}
		return FromSigner(priv)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, alg)
}

// FromSigner wraps s: an ed25519.PrivateKey, an *ecdsa.PrivateKey on P-256,
// or any crypto.Signer whose Public() is an ed25519.PublicKey or a P-256
// *ecdsa.PublicKey. In-memory keys are copied and checked for consistency
// between their private and public halves.
func FromSigner(s crypto.Signer) (*Key, error) {
	opaque := false
	switch priv := s.(type) {
	case nil:
		return nil, fmt.Errorf("%w: nil signer", ErrInvalidKey)
	case ed25519.PrivateKey:
		if len(priv) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%w: ed25519 private key is %d bytes, want %d", ErrInvalidKey, len(priv), ed25519.PrivateKeySize)
		}
		// Signing with a public half that does not belong to the seed
		// leaks the private key, so rebuild the key from its seed.
		fresh := ed25519.NewKeyFromSeed(priv.Seed())
		if !bytes.Equal(fresh.Public().(ed25519.PublicKey), priv.Public().(ed25519.PublicKey)) {
			return nil, fmt.Errorf("%w: ed25519 private key does not match its public half", ErrInvalidKey)
		}
		s = fresh
	case *ecdsa.PrivateKey:
		if priv == nil {
			return nil, fmt.Errorf("%w: nil ecdsa private key", ErrInvalidKey)
		}
		if priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ecdsa key on curve %s, want P-256", ErrUnsupportedAlgorithm, curveName(priv.Curve))
		}
		d, err := priv.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: p256 private key: %v", ErrInvalidKey, err)
		}
		fresh, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		clear(d)
		if err != nil {
			return nil, fmt.Errorf("%w: p256 private key: %v", ErrInvalidKey, err)
		}
		if !fresh.PublicKey.Equal(&priv.PublicKey) {
			return nil, fmt.Errorf("%w: p256 private key does not match its public key", ErrInvalidKey)
		}
		s = fresh
	default:
		opaque = true
	}
	pub, err := publicKeyOf(s.Public())
	if err != nil {
		return nil, err
	}
	return &Key{signer: s, pub: pub, id: pub.DID(), opaque: opaque}, nil
}

// Public returns the public key.
func (k *Key) Public() PublicKey {
	return PublicKey{Alg: k.pub.Alg, Bytes: bytes.Clone(k.pub.Bytes)}
}

// ID returns the key's did:key id, Public().DID().
func (k *Key) ID() string { return k.id }

// Alg returns the key's algorithm.
func (k *Key) Alg() Algorithm { return k.pub.Alg }

// Signer returns the underlying crypto.Signer.
func (k *Key) Signer() crypto.Signer { return k.signer }

// Sign signs msg: Ed25519 signs msg itself and returns 64 bytes; P-256
// signs the SHA-256 digest of msg and returns the 64-byte r||s form.
// Signatures from opaque signers are verified before they are returned, so
// a faulty device cannot hand out bad signatures.
func (k *Key) Sign(msg []byte) ([]byte, error) {
	var sig []byte
	switch k.pub.Alg {
	case Ed25519:
		s, err := k.signer.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("identity: ed25519 sign: %w", err)
		}
		if len(s) != signatureSize {
			return nil, fmt.Errorf("identity: ed25519 signer returned %d bytes, want %d", len(s), signatureSize)
		}
		sig = s
	case P256:
		digest := sha256.Sum256(msg)
		der, err := k.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("identity: p256 sign: %w", err)
		}
		if sig, err = p256SignatureFromASN1(der); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, k.pub.Alg)
	}
	if k.opaque {
		if err := k.pub.Verify(msg, sig); err != nil {
			return nil, fmt.Errorf("identity: signer returned a signature that does not verify: %w", err)
		}
	}
	return sig, nil
}

// p256SignatureFromASN1 converts an ASN.1 ECDSA-Sig-Value to fixed-size r||s.
func p256SignatureFromASN1(der []byte) ([]byte, error) {
	var (
		r, s  big.Int
		inner cryptobyte.String
	)
	in := cryptobyte.String(der)
	if !in.ReadASN1(&inner, cbasn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() {
		return nil, errors.New("identity: p256 signer returned a malformed ASN.1 signature")
	}
	if r.Sign() <= 0 || s.Sign() <= 0 || r.BitLen() > 8*p256ScalarSize || s.BitLen() > 8*p256ScalarSize {
		return nil, errors.New("identity: p256 signer returned r or s out of range")
	}
	sig := make([]byte, signatureSize)
	r.FillBytes(sig[:p256ScalarSize])
	s.FillBytes(sig[p256ScalarSize:])
	return sig, nil
}

// MarshalPrivateKey encodes an in-memory key as PKCS#8 DER. It fails with
// ErrNotExportable for keys behind an opaque crypto.Signer.
func MarshalPrivateKey(k *Key) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil key", ErrInvalidKey)
	}
	switch k.signer.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
		der, err := x509.MarshalPKCS8PrivateKey(k.signer)
		if err != nil {
			return nil, fmt.Errorf("identity: marshal private key: %w", err)
		}
		return der, nil
	}
	return nil, fmt.Errorf("%w: %s key is held by a %T", ErrNotExportable, k.pub.Alg, k.signer)
}

// ParsePrivateKey decodes a PKCS#8 DER Ed25519 or P-256 private key.
func ParsePrivateKey(der []byte) (*Key, error) {
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: pkcs8: %v", ErrInvalidKey, err)
	}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		return FromSigner(p)
	case *ecdsa.PrivateKey:
		return FromSigner(p)
	}
	return nil, fmt.Errorf("%w: pkcs8 key of type %T", ErrUnsupportedAlgorithm, priv)
}
