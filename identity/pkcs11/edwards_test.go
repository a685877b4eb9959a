package pkcs11

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// A token's Ed25519 public key is read from the DER OCTET STRING PKCS#11
// 3.0 prescribes, or from the 32 bytes bare; anything else is refused.
func TestParseEdwardsPoint(t *testing.T) {
	pub := bytes.Repeat([]byte{7}, ed25519.PublicKeySize)
	der := append([]byte{0x04, 0x20}, pub...)
	for _, p := range [][]byte{der, pub} {
		got, err := parseEdwardsPoint(p)
		if err != nil || !bytes.Equal(got, pub) {
			t.Errorf("%x: %x, %v", p, got, err)
		}
	}
	for name, p := range map[string][]byte{
		"empty":          nil,
		"ed448":          append([]byte{0x04, 0x39}, make([]byte, 57)...),
		"a BIT STRING":   append([]byte{0x03, 0x20}, pub...),
		"trailing bytes": append(bytes.Clone(der), 0),
		"short length":   append([]byte{0x04, 0x1f}, pub[:31]...),
	} {
		if _, err := parseEdwardsPoint(p); !errors.Is(err, ErrBadPoint) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !isEd25519Params(ed25519Params) || !isEd25519Params(ed25519ParamsPrintable) || isEd25519Params([]byte{0x06, 0x03, 0x2b, 0x65, 0x71}) {
		t.Error("CKA_EC_PARAMS: Ed25519 by OID and by name, not Ed448")
	}
}

func FuzzParseEdwardsPoint(f *testing.F) {
	pub := bytes.Repeat([]byte{7}, ed25519.PublicKeySize)
	f.Add(append([]byte{0x04, 0x20}, pub...))
	f.Add(pub)
	f.Add([]byte{0x04, 0x81, 0x20})
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := parseEdwardsPoint(p)
		if err != nil {
			if !errors.Is(err, ErrBadPoint) {
				t.Fatalf("an error that is not ErrBadPoint: %v", err)
			}
			return
		}
		if len(got) != ed25519.PublicKeySize || !bytes.Contains(p, got) {
			t.Fatalf("%x: read %x", p, got)
		}
	})
}
