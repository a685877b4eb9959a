package pkcs11

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ed25519Params is CKA_EC_PARAMS for Ed25519 as a key is made with it: the
// DER of the object identifier id-Ed25519 (1.3.101.112, RFC 8410), which
// SoftHSM2 and most tokens take. PKCS#11 3.0 also allows the printable
// string "edwards25519", which isEd25519Params accepts on a key read back.
var ed25519Params = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// ed25519ParamsPrintable is CKA_EC_PARAMS as the curve's printable name.
var ed25519ParamsPrintable = []byte{0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'}

// ErrBadPoint is returned for a token's Edwards public key (CKA_EC_POINT,
// CKA_EC_PARAMS) that is not an Ed25519 key.
var ErrBadPoint = errors.New("pkcs11: the token's Edwards-curve public key is not an Ed25519 key")

// isEd25519Params reports whether CKA_EC_PARAMS names Ed25519 (and not,
// say, Ed448).
func isEd25519Params(p []byte) bool {
	return bytes.Equal(p, ed25519Params) || bytes.Equal(p, ed25519ParamsPrintable)
}

// parseEdwardsPoint reads an Ed25519 public key from a token's
// CKA_EC_POINT: PKCS#11 3.0 says the DER of an OCTET STRING holding the 32
// bytes; some tokens give the 32 bytes bare, which is taken too.
func parseEdwardsPoint(point []byte) (ed25519.PublicKey, error) {
	if len(point) == ed25519.PublicKeySize {
		return ed25519.PublicKey(bytes.Clone(point)), nil
	}
	var inner cryptobyte.String
	in := cryptobyte.String(point)
	if !in.ReadASN1(&inner, cbasn1.OCTET_STRING) || !in.Empty() {
		return nil, fmt.Errorf("%w: CKA_EC_POINT (%d bytes) is neither 32 bytes nor a DER OCTET STRING of them", ErrBadPoint, len(point))
	}
	if len(inner) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: CKA_EC_POINT holds %d bytes, want %d", ErrBadPoint, len(inner), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(bytes.Clone(inner)), nil
}
