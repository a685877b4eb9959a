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
	"io"
	"math/big"
	"testing"

	"github.com/mr-tron/base58"
	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

func TestAlgorithm(t *testing.T) {
	tests := []struct {
		in      string
		want    Algorithm
		wantErr bool
	}{
		{"ed25519", Ed25519, false},
		{"Ed25519", Ed25519, false},
		{"p256", P256, false},
		{"es256", P256, false},
		{"P-256", P256, false},
		{"", 0, true},
		{"eddsa", 0, true},
		{"p384", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseAlgorithm(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrUnsupportedAlgorithm) {
				t.Errorf("ParseAlgorithm(%q) error = %v; want ErrUnsupportedAlgorithm", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, a := range allAlgs() {
		if got, err := ParseAlgorithm(a.String()); err != nil || got != a {
			t.Errorf("ParseAlgorithm(%v.String()) = %v, %v; want %v", a, got, err, a)
		}
	}
	if got := Algorithm(-35).String(); got != "Algorithm(-35)" {
		t.Errorf("Algorithm(-35).String() = %q", got)
	}
}

func TestSignVerify(t *testing.T) {
	for _, alg := range allAlgs() {
		t.Run(alg.String(), func(t *testing.T) {
			k := mustKey(t, alg)
			if k.Alg() != alg || k.Public().Alg != alg {
				t.Fatalf("key alg = %v, public alg = %v; want %v", k.Alg(), k.Public().Alg, alg)
			}
			if k.ID() != k.Public().DID() {
				t.Errorf("ID() = %q; want Public().DID() = %q", k.ID(), k.Public().DID())
			}
			msg := []byte("hello thingnet")
			sig, err := k.Sign(msg)
			if err != nil {
				t.Fatalf("Sign() error = %v", err)
			}
			if len(sig) != 64 {
				t.Fatalf("len(Sign()) = %d; want 64", len(sig))
			}
			pub := k.Public()
			if err := pub.Verify(msg, sig); err != nil {
				t.Fatalf("Verify() error = %v; want nil", err)
			}

			other := mustKey(t, alg).Public()
			badSig := bytes.Clone(sig)
			badSig[10] ^= 0x40
			tests := []struct {
				name     string
				pub      PublicKey
				msg, sig []byte
			}{
				{"tampered message", pub, []byte("hello thingneT"), sig},
				{"tampered signature", pub, msg, badSig},
				{"other key", other, msg, sig},
				{"short signature", pub, msg, sig[:63]},
				{"long signature", pub, msg, append(bytes.Clone(sig), 0)},
				{"nil signature", pub, msg, nil},
			}
			for _, tt := range tests {
				if err := tt.pub.Verify(tt.msg, tt.sig); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s: Verify() error = %v; want ErrBadSignature", tt.name, err)
				}
			}
		})
	}
}

// The signatures must be those of the standard library, in both directions.
func TestStdlibInterop(t *testing.T) {
	msg := []byte("interop")
	for _, alg := range allAlgs() {
		k := mustKey(t, alg)
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		switch pub := k.Public().CryptoPublicKey().(type) {
		case ed25519.PublicKey:
			if !ed25519.Verify(pub, msg, sig) {
				t.Errorf("ed25519.Verify of Key.Sign = false")
			}
			std := ed25519.Sign(k.Signer().(ed25519.PrivateKey), msg)
			if err := k.Public().Verify(msg, std); err != nil {
				t.Errorf("Verify of ed25519.Sign error = %v", err)
			}
		case *ecdsa.PublicKey:
			d := sha256.Sum256(msg)
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if !ecdsa.Verify(pub, d[:], r, s) {
				t.Errorf("ecdsa.Verify of Key.Sign = false")
			}
			der, err := ecdsa.SignASN1(rand.Reader, k.Signer().(*ecdsa.PrivateKey), d[:])
			if err != nil {
				t.Fatal(err)
			}
			raw, err := p256SignatureFromASN1(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Public().Verify(msg, raw); err != nil {
				t.Errorf("Verify of ecdsa.SignASN1 error = %v", err)
			}
		default:
			t.Errorf("%v: CryptoPublicKey() is a %T", alg, pub)
		}
	}
}

// Verify follows ZIP-215 on the inputs that Ed25519 implementations are
// known to disagree on, and Batch gives the same answer on each of them.
func TestEd25519VerifyZIP215(t *testing.T) {
	msg := []byte("edge")
	identitySig := append(mustHex(t, edIdentity), make([]byte, 32)...) // R = identity, S = 0
	craftedPubR, craftedSigR := craftEd25519(t, 1, nil, edPoint(t, edOrder8), msg)
	craftedPubA, craftedSigA := craftEd25519(t, 2, edPoint(t, edOrder4), nil, msg)
	craftedPubAR, craftedSigAR := craftEd25519(t, 4, edPoint(t, edOrder8), edPoint(t, edOrder2), msg)
	validPub, validSig := craftEd25519(t, 3, nil, nil, msg)
	bigS := bytes.Clone(validSig)
	bigS[63] |= 0xf0 // S >= 2^252 + 2^253 > L
	tests := []struct {
		name     string
		pub, sig []byte
		want     bool
	}{
		{"valid", validPub, validSig, true},
		{"S not reduced", validPub, bigS, false},
		{"S + L", validPub, ed25519AddL(t, validSig), false},
		{"identity key, identity R, S = 0", mustHex(t, edIdentity), identitySig, true},
		{"non-canonical identity key", mustHex(t, edIdentityNonCanonical), identitySig, true},
		{"order-2 key", mustHex(t, edOrder2), identitySig, true},
		{"R with a torsion component", craftedPubR, craftedSigR, true},
		{"key with a torsion component", craftedPubA, craftedSigA, true},
		{"key and R with torsion components", craftedPubAR, craftedSigAR, true},
		{"other message", validPub, craftedSigR, false},
	}
	for _, tt := range tests {
		err := PublicKey{Alg: Ed25519, Bytes: tt.pub}.Verify(msg, tt.sig)
		if (err == nil) != tt.want {
			t.Errorf("%s: Verify() error = %v; want valid = %v", tt.name, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify() error = %v; want ErrBadSignature", tt.name, err)
		}
	}
	// crypto/ed25519 (cofactorless) refuses the crafted R, so the case
	// tells ZIP-215 from the rule Verify had before.
	if ed25519.Verify(craftedPubR, msg, craftedSigR) {
		t.Errorf("test is wrong: ed25519.Verify of the crafted R = true")
	}

	// R of small order, in each of its encodings, with an honest key: valid
	// under ZIP-215 (canonical or not), while crypto/ed25519 accepts only
	// the canonical identity.
	seed := []byte("small-order R")
	a := ed25519Scalar(t, seed)
	var A curve.EdwardsPoint
	A.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, a)
	pub := edBytes(&A)
	var cases []batchCase
	for _, tt := range tests {
		cases = append(cases, batchCase{tt.name, PublicKey{Alg: Ed25519, Bytes: tt.pub}, msg, tt.sig})
	}
	for _, e := range smallOrderEncodings {
		rEnc := mustHex(t, e.hex)
		sig := signEd25519Raw(t, a, new(scalar.Scalar), pub, rEnc, msg)
		if err := (PublicKey{Alg: Ed25519, Bytes: pub}).Verify(msg, sig); err != nil {
			t.Errorf("R = %s: Verify() error = %v; want valid", e.name, err)
		}
		if std, want := ed25519.Verify(pub, msg, sig), e.hex == edIdentity; std != want {
			t.Errorf("test is wrong: R = %s: ed25519.Verify = %v; want %v", e.name, std, want)
		}
		// The voi rule without ZIP-215's allowance refuses the
		// non-canonical ones.
		fips := voi.VerifyWithOptions(pub, msg, sig, &voi.Options{Verify: voi.VerifyOptionsFIPS_186_5})
		if fips != e.canonical {
			t.Errorf("test is wrong: R = %s: FIPS 186-5 verify = %v; want %v", e.name, fips, e.canonical)
		}
		cases = append(cases, batchCase{"R = " + e.name, PublicKey{Alg: Ed25519, Bytes: pub}, msg, sig})
		// The same R with S for another message.
		bad := signEd25519Raw(t, a, new(scalar.Scalar), pub, rEnc, []byte("other"))
		cases = append(cases, batchCase{"R = " + e.name + ", other message", PublicKey{Alg: Ed25519, Bytes: pub}, msg, bad})
	}
	checkBatch(t, cases, func(i int) bool { return cases[i].pub.Verify(cases[i].msg, cases[i].sig) == nil })
	var valid []batchCase
	for _, c := range cases {
		if c.pub.Verify(c.msg, c.sig) == nil {
			valid = append(valid, c)
		}
	}
	checkBatchPath(t, valid)
}

// Keys of small order are keys for which anyone can sign anything under
// ZIP-215, which is why NewPublicKey and ParseDID refuse them.
func TestSmallOrderKeys(t *testing.T) {
	r := ed25519Scalar(t, []byte("forger"))
	var R curve.EdwardsPoint
	R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r)
	var sb [32]byte
	if err := r.ToBytes(sb[:]); err != nil {
		t.Fatal(err)
	}
	forged := append(edBytes(&R), sb[:]...) // R = [r]B, S = r, for any message
	for _, e := range smallOrderEncodings {
		b := mustHex(t, e.hex)
		for _, msg := range []string{"pay alice", "pay bob"} {
			if err := (PublicKey{Alg: Ed25519, Bytes: b}).Verify([]byte(msg), forged); err != nil {
				t.Errorf("key %s: forged signature of %q: Verify() error = %v; want valid", e.name, msg, err)
			}
		}
		if k, err := NewPublicKey(Ed25519, b); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("key %s: NewPublicKey() = %v, %v; want ErrInvalidKey", e.name, k, err)
		}
		did := "did:key:z" + base58.Encode(append([]byte{0xed, 0x01}, b...))
		if k, err := ParseDID(did); !errors.Is(err, ErrMalformed) {
			t.Errorf("key %s: ParseDID() = %v, %v; want ErrMalformed", e.name, k, err)
		}
	}
}

// Non-canonical encodings of points of large order (y = p + j for a small
// j) are refused too: each key has one encoding, so one did:key.
func TestNonCanonicalKeys(t *testing.T) {
	found := 0
	for j := range 19 {
		b := bytes.Repeat([]byte{0xff}, 32)
		b[0] = 0xed + byte(j) // p + j, little-endian: p = 2^255 - 19
		b[31] = 0x7f
		var c curve.CompressedEdwardsY
		copy(c[:], b)
		var p curve.EdwardsPoint
		if _, err := p.SetCompressedY(&c); err != nil || p.IsSmallOrder() {
			continue
		}
		found++
		canonical := edBytes(&p)
		if bytes.Equal(canonical, b) {
			t.Fatalf("test is wrong: y = p + %d is canonical", j)
		}
		if _, err := NewPublicKey(Ed25519, canonical); err != nil {
			t.Errorf("y = %d: NewPublicKey(canonical) error = %v", j, err)
		}
		if k, err := NewPublicKey(Ed25519, b); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("y = p + %d: NewPublicKey() = %v, %v; want ErrInvalidKey", j, k, err)
		}
		did := "did:key:z" + base58.Encode(append([]byte{0xed, 0x01}, b...))
		if k, err := ParseDID(did); !errors.Is(err, ErrMalformed) {
			t.Errorf("y = p + %d: ParseDID() = %v, %v; want ErrMalformed", j, k, err)
		}
	}
	if found == 0 {
		t.Fatal("test is wrong: no non-canonical encoding of a point of large order")
	}
}

func TestNewPublicKey(t *testing.T) {
	edKey := mustKey(t, Ed25519).Public().Bytes
	p256Key := mustKey(t, P256).Public().Bytes
	offCurve := p256OffCurve(t)
	badPrefix := bytes.Clone(p256Key)
	badPrefix[0] = 4
	xTooBig := append([]byte{2}, bytes.Repeat([]byte{0xff}, 32)...)
	// A canonical y for which no x exists: y = 2 is not on edwards25519.
	edNotOnCurve := make([]byte, 32)
	edNotOnCurve[0] = 2
	var c curve.CompressedEdwardsY
	copy(c[:], edNotOnCurve)
	if _, err := new(curve.EdwardsPoint).SetCompressedY(&c); err == nil {
		t.Fatalf("test is wrong: y = 2 decompresses")
	}

	tests := []struct {
		name    string
		alg     Algorithm
		b       []byte
		wantErr error
	}{
		{"ed25519", Ed25519, edKey, nil},
		{"p256", P256, p256Key, nil},
		{"ed25519 short", Ed25519, edKey[:31], ErrInvalidKey},
		{"ed25519 long", Ed25519, append(bytes.Clone(edKey), 0), ErrInvalidKey},
		{"ed25519 identity", Ed25519, mustHex(t, edIdentity), ErrInvalidKey},
		{"ed25519 order 2", Ed25519, mustHex(t, edOrder2), ErrInvalidKey},
		{"ed25519 order 4", Ed25519, mustHex(t, edOrder4), ErrInvalidKey},
		{"ed25519 order 8", Ed25519, mustHex(t, edOrder8), ErrInvalidKey},
		{"ed25519 non-canonical", Ed25519, mustHex(t, edIdentityNonCanonical), ErrInvalidKey},
		{"ed25519 not on curve", Ed25519, edNotOnCurve, ErrInvalidKey},
		{"p256 uncompressed prefix", P256, badPrefix, ErrInvalidKey},
		{"p256 not on curve", P256, offCurve, ErrInvalidKey},
		{"p256 x >= p", P256, xTooBig, ErrInvalidKey},
		{"p256 short", P256, p256Key[:32], ErrInvalidKey},
		{"p256 as ed25519", Ed25519, p256Key, ErrInvalidKey},
		{"unknown alg", Algorithm(-35), p256Key, ErrUnsupportedAlgorithm},
	}
	for _, tt := range tests {
		got, err := NewPublicKey(tt.alg, tt.b)
		if tt.wantErr == nil {
			if err != nil || got.Alg != tt.alg || !bytes.Equal(got.Bytes, tt.b) {
				t.Errorf("%s: NewPublicKey() = %v, %v; want the key", tt.name, got, err)
			}
			continue
		}
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: NewPublicKey() error = %v; want %v", tt.name, err, tt.wantErr)
		}
	}

	// NewPublicKey copies its input.
	b := bytes.Clone(edKey)
	pub, err := NewPublicKey(Ed25519, b)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if !bytes.Equal(pub.Bytes, edKey) {
		t.Errorf("NewPublicKey() aliases its input")
	}
}

func TestPublicKeyEqualIsZero(t *testing.T) {
	a, b := mustKey(t, Ed25519), mustKey(t, Ed25519)
	if !a.Public().Equal(a.Public()) || a.Public().Equal(b.Public()) {
		t.Errorf("Equal is wrong")
	}
	if alias := (PublicKey{Alg: P256, Bytes: a.Public().Bytes}); alias.Equal(a.Public()) {
		t.Errorf("keys of different algorithms are Equal")
	}
	if !(PublicKey{}).IsZero() || a.Public().IsZero() {
		t.Errorf("IsZero is wrong")
	}
	if (PublicKey{}).DID() != "" || (PublicKey{}).CryptoPublicKey() != nil {
		t.Errorf("zero PublicKey has a DID or a crypto.PublicKey")
	}
	if err := (PublicKey{}).Verify(nil, make([]byte, 64)); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("zero PublicKey Verify() error = %v; want ErrUnsupportedAlgorithm", err)
	}
	// Public returns a copy.
	p := a.Public()
	p.Bytes[0] ^= 1
	if bytes.Equal(p.Bytes, a.Public().Bytes) {
		t.Errorf("Public() aliases the key")
	}
}

func TestFromSigner(t *testing.T) {
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mismatched := bytes.Clone(edPriv)
	mismatched[40] ^= 1 // public half no longer matches the seed
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p256.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p256Mismatched, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	p256Mismatched.PublicKey = mustKey(t, P256).Signer().(*ecdsa.PrivateKey).PublicKey
	tests := []struct {
		name    string
		s       crypto.Signer
		wantErr error
		opaque  bool
	}{
		{"ed25519", edPriv, nil, false},
		{"p256", p256, nil, false},
		{"opaque ed25519", opaqueSigner{s: edPriv}, nil, true},
		{"opaque p256", opaqueSigner{s: p256}, nil, true},
		{"nil", nil, ErrInvalidKey, false},
		{"short ed25519", edPriv[:63], ErrInvalidKey, false},
		{"mismatched ed25519", ed25519.PrivateKey(mismatched), ErrInvalidKey, false},
		{"mismatched p256", p256Mismatched, ErrInvalidKey, false},
		{"p384", p384, ErrUnsupportedAlgorithm, false},
		{"opaque p384", opaqueSigner{s: p384}, ErrUnsupportedAlgorithm, false},
		{"ecdsa without curve", &ecdsa.PrivateKey{}, ErrUnsupportedAlgorithm, false},
		{"opaque without public key", opaqueSigner{s: nilPublicSigner{}}, ErrUnsupportedAlgorithm, false},
		{"opaque ecdsa without curve", opaqueSigner{s: nilPublicSigner{pub: &ecdsa.PublicKey{}}}, ErrUnsupportedAlgorithm, false},
		{"opaque nil ecdsa", opaqueSigner{s: nilPublicSigner{pub: (*ecdsa.PublicKey)(nil)}}, ErrInvalidKey, false},
	}
	for _, tt := range tests {
		k, err := FromSigner(tt.s)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: FromSigner() error = %v; want %v", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: FromSigner() error = %v", tt.name, err)
			continue
		}
		if !k.Public().Equal(mustPublic(t, tt.s.Public())) {
			t.Errorf("%s: Public() does not match the signer's", tt.name)
		}
		msg := []byte("from signer")
		sig, err := k.Sign(msg)
		if err != nil {
			t.Errorf("%s: Sign() error = %v", tt.name, err)
			continue
		}
		if err := k.Public().Verify(msg, sig); err != nil {
			t.Errorf("%s: Verify() error = %v", tt.name, err)
		}
		_, err = MarshalPrivateKey(k)
		if tt.opaque && !errors.Is(err, ErrNotExportable) {
			t.Errorf("%s: MarshalPrivateKey() error = %v; want ErrNotExportable", tt.name, err)
		}
		if !tt.opaque && err != nil {
			t.Errorf("%s: MarshalPrivateKey() error = %v", tt.name, err)
		}
	}

	// An opaque signer's bad signatures are caught.
	for _, s := range []crypto.Signer{edPriv, p256} {
		k, err := FromSigner(opaqueSigner{s: s, corrupt: true})
		if err != nil {
			t.Fatal(err)
		}
		if sig, err := k.Sign([]byte("x")); !errors.Is(err, ErrBadSignature) {
			t.Errorf("Sign() with a faulty %T signer = %x, %v; want ErrBadSignature", s, sig, err)
		}
	}

	// In-memory keys are copied.
	edCopy := ed25519.PrivateKey(bytes.Clone(edPriv))
	k, err := FromSigner(edCopy)
	if err != nil {
		t.Fatal(err)
	}
	clear(edCopy)
	if sig, err := k.Sign([]byte("x")); err != nil || !ed25519.Verify(edPriv.Public().(ed25519.PublicKey), []byte("x"), sig) {
		t.Errorf("Key depends on the caller's copy of the private key")
	}
}

func mustPublic(t testing.TB, pub crypto.PublicKey) PublicKey {
	t.Helper()
	p, err := publicKeyOf(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	for _, alg := range allAlgs() {
		k := mustKey(t, alg)
		der, err := MarshalPrivateKey(k)
		if err != nil {
			t.Fatalf("MarshalPrivateKey(%v) error = %v", alg, err)
		}
		k2, err := ParsePrivateKey(der)
		if err != nil {
			t.Fatalf("ParsePrivateKey(%v) error = %v", alg, err)
		}
		if k2.ID() != k.ID() || k2.Alg() != alg {
			t.Errorf("%v: round trip gives %s; want %s", alg, k2.ID(), k.ID())
		}
	}
	if _, err := ParsePrivateKey([]byte("junk")); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("ParsePrivateKey(junk) error = %v; want ErrInvalidKey", err)
	}
	if _, err := MarshalPrivateKey(nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("MarshalPrivateKey(nil) error = %v; want ErrInvalidKey", err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePrivateKey(der); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("ParsePrivateKey(p384) error = %v; want ErrUnsupportedAlgorithm", err)
	}
}

func TestP256SignatureFromASN1(t *testing.T) {
	k := mustKey(t, P256)
	d := sha256.Sum256([]byte("asn1"))
	der, err := ecdsa.SignASN1(rand.Reader, k.Signer().(*ecdsa.PrivateKey), d[:])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		der  []byte
		ok   bool
	}{
		{"valid", der, true},
		{"trailing data", append(bytes.Clone(der), 0), false},
		{"truncated", der[:len(der)-1], false},
		{"empty", nil, false},
		{"zero r", []byte{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01}, false},
		{"negative s", []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0xff}, false},
		{"r too long", append([]byte{0x30, 0x26, 0x02, 0x21, 0x01}, append(make([]byte, 32), 0x02, 0x01, 0x01)...), false},
	}
	for _, tt := range tests {
		sig, err := p256SignatureFromASN1(tt.der)
		if (err == nil) != tt.ok {
			t.Errorf("%s: p256SignatureFromASN1() = %x, %v; want ok = %v", tt.name, sig, err, tt.ok)
		}
	}
}

// p256OffCurve returns a compressed encoding of an x that is not the
// x-coordinate of a P-256 point (about half of all x are not).
func p256OffCurve(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 33)
	b[0] = 2
	for x := 1; x < 256; x++ {
		b[32] = byte(x)
		if px, _ := elliptic.UnmarshalCompressed(elliptic.P256(), b); px == nil {
			return b
		}
	}
	t.Fatal("no x off the curve")
	return nil
}

// nilPublicSigner is a signer with a broken public key.
type nilPublicSigner struct{ pub crypto.PublicKey }

func (s nilPublicSigner) Public() crypto.PublicKey { return s.pub }

func (nilPublicSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("cannot sign")
}
