package identity

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/mr-tron/base58"
	"github.com/multiformats/go-multicodec"
)

const (
	// didKeyPrefix starts every did:key id; the 'z' is the multibase prefix
	// of base58btc.
	didKeyPrefix = "did:key:z"
	// maxDIDSize bounds the did:key strings ParseDID looks at.
	maxDIDSize = 256
)

// multicodecOf returns the multicodec of alg's public keys.
func multicodecOf(alg Algorithm) (multicodec.Code, int, bool) {
	switch alg {
	case Ed25519:
		return multicodec.Ed25519Pub, ed25519PublicKeySize, true
	case P256:
		return multicodec.P256Pub, p256PublicKeySize, true
	}
	return 0, 0, false
}

// DID returns the key's did:key id (W3C did:key): "did:key:z" followed by
// the base58btc encoding of the unsigned-varint multicodec code of the key
// type (ed25519-pub 0xed, p256-pub 0x1200) and the key bytes. It returns ""
// for a PublicKey of an unknown algorithm or of the wrong length.
func (k PublicKey) DID() string {
	code, size, ok := multicodecOf(k.Alg)
	if !ok || len(k.Bytes) != size {
		return ""
	}
	b := make([]byte, 0, binary.MaxVarintLen64+size)
	b = binary.AppendUvarint(b, uint64(code))
	b = append(b, k.Bytes...)
	return didKeyPrefix + base58.Encode(b)
}

// ParseDID parses a did:key id of an Ed25519 or P-256 key. It is strict: it
// refuses strings longer than 256 bytes, multibase encodings other than
// base58btc, other key types, keys of the wrong length, invalid keys (see
// NewPublicKey) and anything but the one canonical encoding of the key, so
// that ParseDID(s).DID() == s. Errors wrap ErrMalformed.
func ParseDID(did string) (PublicKey, error) {
	if len(did) > maxDIDSize {
		return PublicKey{}, malformed("did: %d bytes, more than %d", len(did), maxDIDSize)
	}
	rest, ok := strings.CutPrefix(did, "did:key:")
	if !ok {
		return PublicKey{}, malformed("did: %q is not a did:key", did)
	}
	if rest == "" || rest[0] != 'z' {
		return PublicKey{}, malformed("did: multibase encoding is not base58btc ('z')")
	}
	raw, err := base58.Decode(rest[1:])
	if err != nil {
		return PublicKey{}, malformed("did: base58: %v", err)
	}
	code, n := binary.Uvarint(raw)
	if n <= 0 {
		return PublicKey{}, malformed("did: bad multicodec varint")
	}
	if n != len(binary.AppendUvarint(nil, code)) {
		return PublicKey{}, malformed("did: multicodec varint is not minimally encoded")
	}
	var alg Algorithm
	switch multicodec.Code(code) {
	case multicodec.Ed25519Pub:
		alg = Ed25519
	case multicodec.P256Pub:
		alg = P256
	default:
		return PublicKey{}, malformed("did: unsupported key type, multicodec 0x%x", code)
	}
	_, size, _ := multicodecOf(alg)
	if key := raw[n:]; len(key) != size {
		return PublicKey{}, malformed("did: %s key is %d bytes, want %d", alg, len(key), size)
	}
	pub, err := NewPublicKey(alg, raw[n:])
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: did: %w", ErrMalformed, err)
	}
	// Base58 has one encoding per byte string, but do not rely on the
	// decoder for it: an id has exactly one spelling.
	if pub.DID() != did {
		return PublicKey{}, malformed("did: not in canonical form")
	}
	return pub, nil
}
