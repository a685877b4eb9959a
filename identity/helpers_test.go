package identity

import (
	"crypto"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// allAlgs returns the supported algorithms.
func allAlgs() []Algorithm { return []Algorithm{Ed25519, P256} }

// mustKey generates a key or fails the test.
func mustKey(t testing.TB, alg Algorithm) *Key {
	t.Helper()
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatalf("GenerateKey(%v) error = %v", alg, err)
	}
	return k
}

// mustHex decodes hex or fails the test.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex.DecodeString(%q) error = %v", s, err)
	}
	return b
}

// opaqueSigner hides the concrete type of a crypto.Signer, as a secure
// element would. If corrupt is set, it flips a bit of every signature.
type opaqueSigner struct {
	s       crypto.Signer
	corrupt bool
}

func (o opaqueSigner) Public() crypto.PublicKey { return o.s.Public() }

func (o opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := o.s.Sign(r, digest, opts)
	if err == nil && o.corrupt {
		sig[len(sig)-1] ^= 1
	}
	return sig, err
}

// Encodings of points of small order (from "Taming the many EdDSAs").
const (
	edIdentity = "0100000000000000000000000000000000000000000000000000000000000000" // order 1
	edOrder2   = "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f" // (0, -1)
	edOrder4   = "0000000000000000000000000000000000000000000000000000000000000000" // (sqrt(-1), 0)
	edOrder8   = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
	// edIdentityNonCanonical is y = p + 1, a non-canonical encoding of
	// the identity.
	edIdentityNonCanonical = "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
)

// edPoint decompresses a point or fails the test.
func edPoint(t testing.TB, hexPoint string) *curve.EdwardsPoint {
	t.Helper()
	c, err := curve.NewCompressedEdwardsYFromBytes(mustHex(t, hexPoint))
	if err != nil {
		t.Fatal(err)
	}
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(c); err != nil {
		t.Fatalf("point %s does not decompress: %v", hexPoint, err)
	}
	return &p
}

func edBytes(p *curve.EdwardsPoint) []byte {
	var c curve.CompressedEdwardsY
	c.SetEdwardsPoint(p)
	return c[:]
}

// craftEd25519 makes an Ed25519 key and signature the way a malicious
// signer could: the public key is A+tA and the nonce point R+tR, for
// points tA and tR of small order (nil for none). The signature satisfies
// the cofactored verification equation, and the cofactorless one of
// crypto/ed25519 only if tR = -[k]tA.
func craftEd25519(t testing.TB, seed byte, tA, tR *curve.EdwardsPoint, msg []byte) (pub, sig []byte) {
	t.Helper()
	h := sha512.Sum512([]byte{seed})
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	a, err := scalar.NewFromBytesModOrder(h[:32])
	if err != nil {
		t.Fatal(err)
	}
	rh := sha512.Sum512(append([]byte("nonce"), append(h[32:], msg...)...))
	r, err := scalar.NewFromBytesModOrderWide(rh[:])
	if err != nil {
		t.Fatal(err)
	}
	var A, R curve.EdwardsPoint
	A.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, a)
	R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r)
	if tA != nil {
		A.Add(&A, tA)
	}
	if tR != nil {
		R.Add(&R, tR)
	}
	pub, rb := edBytes(&A), edBytes(&R)
	kh := sha512.New()
	kh.Write(rb)
	kh.Write(pub)
	kh.Write(msg)
	k, err := scalar.NewFromBytesModOrderWide(kh.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	var s scalar.Scalar
	s.Mul(k, a)
	s.Add(&s, r)
	sig = make([]byte, 64)
	copy(sig, rb)
	if err := s.ToBytes(sig[32:]); err != nil {
		t.Fatal(err)
	}
	return pub, sig
}
