package identity

import (
	"bytes"
	"crypto"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"math/big"
	"slices"
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

// smallOrderEncoding is an encoding of a point of small order.
type smallOrderEncoding struct {
	name      string
	hex       string
	canonical bool
}

// smallOrderEncodings are all the encodings of points of small order that
// decode (from "Taming the many EdDSAs"): 8 canonical ones, one for each
// point, and 6 non-canonical ones (y >= p, or x = 0 with the sign bit set),
// which ZIP-215 accepts.
var smallOrderEncodings = []smallOrderEncoding{
	{"identity", edIdentity, true},
	{"order 2", edOrder2, true},
	{"order 4", edOrder4, true},
	{"order 4, x < 0", "0000000000000000000000000000000000000000000000000000000000000080", true},
	{"order 8", edOrder8, true},
	{"order 8, x < 0", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", true},
	{"order 8, -y", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", true},
	{"order 8, -y, x < 0", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", true},
	{"identity, x = -0", "0100000000000000000000000000000000000000000000000000000000000080", false},
	{"order 2, x = -0", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", false},
	{"order 4, y = p", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", false},
	{"order 4, y = p, x < 0", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", false},
	{"identity, y = p + 1", edIdentityNonCanonical, false},
	{"identity, y = p + 1, x = -0", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", false},
}

// TestSmallOrderEncodings checks the test data: every encoding decodes to
// a point of small order, and is canonical as stated.
func TestSmallOrderEncodings(t *testing.T) {
	seen := make(map[string]bool)
	for _, e := range smallOrderEncodings {
		p := edPoint(t, e.hex)
		if !p.IsSmallOrder() {
			t.Errorf("%s: not of small order", e.name)
		}
		canonical := edBytes(p)
		if got := bytes.Equal(canonical, mustHex(t, e.hex)); got != e.canonical {
			t.Errorf("%s: canonical = %v; want %v", e.name, got, e.canonical)
		}
		seen[string(canonical)] = true
	}
	if len(seen) != 8 {
		t.Errorf("%d distinct points; want the 8 points of small order", len(seen))
	}
}

// ed25519Scalar derives a secret scalar from seed, as Ed25519 does.
func ed25519Scalar(t testing.TB, seed []byte) *scalar.Scalar {
	t.Helper()
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	a, err := scalar.NewFromBytesModOrder(h[:32])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// signEd25519Raw returns the signature R || S with S = r + k*a, for
// k = H(R || A || msg) over the encodings rEnc and pub as given. It
// satisfies the cofactored equation if pub encodes [a]B plus a point of
// small order and rEnc encodes [r]B plus a point of small order.
func signEd25519Raw(t testing.TB, a, r *scalar.Scalar, pub, rEnc, msg []byte) []byte {
	t.Helper()
	kh := sha512.New()
	kh.Write(rEnc)
	kh.Write(pub)
	kh.Write(msg)
	k, err := scalar.NewFromBytesModOrderWide(kh.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	var s scalar.Scalar
	s.Mul(k, a)
	s.Add(&s, r)
	sig := make([]byte, 64)
	copy(sig, rEnc)
	if err := s.ToBytes(sig[32:]); err != nil {
		t.Fatal(err)
	}
	return sig
}

// craftEd25519 makes an Ed25519 key and signature the way a malicious
// signer could: the public key is A+tA and the nonce point R+tR, for
// points tA and tR of small order (nil for none). The signature satisfies
// the cofactored verification equation (ZIP-215), and the cofactorless one
// of crypto/ed25519 only if tR = -[k]tA.
func craftEd25519(t testing.TB, seed byte, tA, tR *curve.EdwardsPoint, msg []byte) (pub, sig []byte) {
	t.Helper()
	a := ed25519Scalar(t, []byte{seed})
	var ab [32]byte
	if err := a.ToBytes(ab[:]); err != nil {
		t.Fatal(err)
	}
	rh := sha512.Sum512(append(append([]byte("nonce"), ab[:]...), msg...))
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
	pub = edBytes(&A)
	return pub, signEd25519Raw(t, a, r, pub, edBytes(&R), msg)
}

// ed25519AddL returns sig with L added to S: the same S modulo L, which
// RFC 8032 and ZIP-215 refuse (S must be canonical).
func ed25519AddL(t testing.TB, sig []byte) []byte {
	t.Helper()
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := func(b []byte) []byte { // little-endian <-> big-endian
		r := bytes.Clone(b)
		slices.Reverse(r)
		return r
	}
	s := new(big.Int).SetBytes(le(sig[32:]))
	s.Add(s, l)
	out := bytes.Clone(sig)
	copy(out[32:], le(s.FillBytes(make([]byte, 32))))
	return out
}
