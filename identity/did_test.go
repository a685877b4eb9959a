package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/mr-tron/base58"
)

// Test vectors of the W3C did:key spec (w3c-ccg/did-method-key,
// test-vectors/ed25519-x25519.json and nist-curves.json).
func TestDIDVectorsEd25519(t *testing.T) {
	tests := []struct {
		seed, did, publicKeyBase58 string
	}{
		{"0000000000000000000000000000000000000000000000000000000000000000", "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS"},
		{"0000000000000000000000000000000000000000000000000000000000000001", "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG", "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt"},
		{"0000000000000000000000000000000000000000000000000000000000000002", "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf", "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH"},
		{"0000000000000000000000000000000000000000000000000000000000000003", "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ", "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2"},
		{"0000000000000000000000000000000000000000000000000000000000000004", "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL", "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x"},
	}
	for _, tt := range tests {
		k, err := FromSigner(ed25519.NewKeyFromSeed(mustHex(t, tt.seed)))
		if err != nil {
			t.Fatal(err)
		}
		if got := k.ID(); got != tt.did {
			t.Errorf("ID() of seed %s = %s; want %s", tt.seed, got, tt.did)
		}
		pub, err := ParseDID(tt.did)
		if err != nil {
			t.Fatalf("ParseDID(%s) error = %v", tt.did, err)
		}
		if got := base58.Encode(pub.Bytes); pub.Alg != Ed25519 || got != tt.publicKeyBase58 {
			t.Errorf("ParseDID(%s) = %v %s; want ed25519 %s", tt.did, pub.Alg, got, tt.publicKeyBase58)
		}
	}
}

func TestDIDVectorsP256(t *testing.T) {
	tests := []struct {
		did, x, y, d string // JWK coordinates, base64url
	}{
		{"did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv", "igrFmi0whuihKnj9R3Om1SoMph72wUGeFaBbzG2vzns", "efsX5b10x8yjyrj4ny3pGfLcY7Xby1KzgqOdqnsrJIM", "gPh-VvVS8MbvKQ9LSVVmfnxnKjHn4Tqj0bmbpehRlpc"},
		{"did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169", "fyNYMN0976ci7xqiSdag3buk-ZCwgXU4kz9XNkBlNUI", "hW2ojTNfH7Jbi8--CJUo3OCbH3y5n91g-IMA9MLMbTU", "YjRs6vNvw4sYrzVVY8ipkEpDAD9PFqw1sUnvPRMA-WI"},
	}
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tt := range tests {
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b64(tt.d))
		if err != nil {
			t.Fatal(err)
		}
		k, err := FromSigner(priv)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.ID(); got != tt.did {
			t.Errorf("ID() of d %s = %s; want %s", tt.d, got, tt.did)
		}
		pub, err := ParseDID(tt.did)
		if err != nil {
			t.Fatalf("ParseDID(%s) error = %v", tt.did, err)
		}
		uncompressed := append(append([]byte{4}, b64(tt.x)...), b64(tt.y)...)
		want, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), uncompressed)
		if err != nil {
			t.Fatal(err)
		}
		if !want.Equal(pub.CryptoPublicKey()) {
			t.Errorf("ParseDID(%s) is not the key (x, y) = (%s, %s)", tt.did, tt.x, tt.y)
		}
	}
}

func TestDIDRoundTrip(t *testing.T) {
	for _, alg := range allAlgs() {
		for range 20 {
			pub := mustKey(t, alg).Public()
			did := pub.DID()
			got, err := ParseDID(did)
			if err != nil || !got.Equal(pub) {
				t.Fatalf("ParseDID(%s) = %v, %v; want %v", did, got, err, pub)
			}
		}
	}
}

func TestParseDIDRejects(t *testing.T) {
	ed := "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
	raw, err := base58.Decode(ed[len("did:key:z"):])
	if err != nil {
		t.Fatal(err)
	}
	enc := func(b []byte) string { return "did:key:z" + base58.Encode(b) }
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	key := raw[2:]
	tests := []struct {
		name, did string
	}{
		{"empty", ""},
		{"not did:key", "did:web:example.com"},
		{"no multibase", "did:key:"},
		{"base64 multibase", "did:key:m7QEg"},
		{"uppercase scheme", strings.Replace(ed, "did:key", "DID:KEY", 1)},
		{"fragment", ed + "#" + ed[len("did:key:"):]},
		{"whitespace", ed + " "},
		{"invalid base58", "did:key:z0OIl"},
		{"only prefix", enc([]byte{0xed, 0x01})},
		{"truncated key", enc(raw[:33])},
		{"trailing data", enc(append(raw, 0))},
		{"leading zero byte", enc(append([]byte{0}, raw...))},
		{"non-minimal varint", enc(cat([]byte{0xed, 0x81, 0x00}, key))},
		{"x25519 key", enc(cat([]byte{0xec, 0x01}, key))},
		{"secp256k1 key", enc(cat([]byte{0xe7, 0x01}, make([]byte, 33)))},
		{"p256 codec, ed25519 key", enc(cat([]byte{0x80, 0x24}, key))},
		{"p256 not on curve", enc(cat([]byte{0x80, 0x24}, p256OffCurve(t)))},
		{"ed25519 small order", enc(cat([]byte{0xed, 0x01}, mustHex(t, edIdentity)))},
		{"too long", "did:key:z" + strings.Repeat("a", 260)},
		{"varint overflow", enc(cat(bytes.Repeat([]byte{0xff}, 11), key))},
	}
	for _, tt := range tests {
		if pub, err := ParseDID(tt.did); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseDID(%q) = %v, %v; want ErrMalformed", tt.name, tt.did, pub, err)
		}
	}
}

func FuzzParseDID(f *testing.F) {
	seeds := []string{
		"did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
		"did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169",
		"did:key:z6Mki",
		"did:key:zDn",
		"did:key:z",
		"did:key:z1111",
		"",
	}
	for _, s := range seeds {
		f.Add(s)
		for i := 0; i < len(s); i += 7 {
			f.Add(s[:i])
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := ParseDID(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseDID(%q) error = %v; want ErrMalformed", s, err)
			}
			return
		}
		if got := pub.DID(); got != s {
			t.Fatalf("ParseDID(%q).DID() = %q; want the input", s, got)
		}
		if _, err := NewPublicKey(pub.Alg, pub.Bytes); err != nil {
			t.Fatalf("ParseDID(%q) returned an invalid key: %v", s, err)
		}
	})
}
