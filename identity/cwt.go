package identity

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// CWT (RFC 8392) tokens that a device presents to a gateway: at MQTT
// CONNECT as the password, with CoAP and HTTP as a bearer token.
//
// A token is a COSE_Sign1 message (SignCOSE, kid = the device id, empty
// external data) whose payload is the deterministic CBOR claims map
//
//	{1 iss: device id, 2 sub: device id, 3 aud: chain id,
//	 4 exp: uint seconds, 6 iat: uint seconds, 7 cti: bstr of 8 to 16 bytes}
//
// Every claim is required; no other claim is allowed. The message may be
// wrapped in the CWT tag 61, around the COSE_Sign1 tag 18.

// Token errors, besides ErrMalformed and ErrBadSignature.
var (
	// ErrTokenExpired reports a token used outside its validity period:
	// expired, or issued in the future (beyond the allowed clock skew).
	ErrTokenExpired = errors.New("identity: token expired or not yet valid")

	// ErrTokenAudience reports a token issued for another audience (chain).
	ErrTokenAudience = errors.New("identity: token is for another audience")
)

const (
	// MaxCWTLifetime is the longest validity period, exp - iat, of a token.
	MaxCWTLifetime = 24 * time.Hour

	// MaxCWTSize is the largest token, in bytes, that ParseCWT accepts.
	MaxCWTSize = 2048

	cborTagCWT     = 61
	cwtMinIDSize   = 8
	cwtMaxIDSize   = 16
	cwtIDSize      = 16 // the size of the ids NewCWT makes
	cwtMaxTextSize = 256
	// cwtMaxUnix is 9999-12-31T23:59:59Z: later times cannot be written
	// as RFC 3339 (JSON) and are refused.
	cwtMaxUnix = 253402300799
)

// Claims are the claims of a CWT. Times are whole seconds, in UTC.
type Claims struct {
	Issuer   string    // iss (1): the device id
	Subject  string    // sub (2): the device id
	Audience string    // aud (3): the chain id of the network
	Expiry   time.Time // exp (4)
	IssuedAt time.Time // iat (6)
	ID       []byte    // cti (7): 8 to 16 bytes
}

// cwtClaimsOut is the claims map as encoded.
type cwtClaimsOut struct {
	Issuer   string `cbor:"1,keyasint"`
	Subject  string `cbor:"2,keyasint"`
	Audience string `cbor:"3,keyasint"`
	Expiry   uint64 `cbor:"4,keyasint"`
	IssuedAt uint64 `cbor:"6,keyasint"`
	ID       []byte `cbor:"7,keyasint"`
}

// cwtClaimsIn is the claims map as decoded: pointers tell a missing claim
// from a zero one.
type cwtClaimsIn struct {
	Issuer   *string `cbor:"1,keyasint,omitempty"`
	Subject  *string `cbor:"2,keyasint,omitempty"`
	Audience *string `cbor:"3,keyasint,omitempty"`
	Expiry   *uint64 `cbor:"4,keyasint,omitempty"`
	IssuedAt *uint64 `cbor:"6,keyasint,omitempty"`
	ID       *[]byte `cbor:"7,keyasint,omitempty"`
}

// cwtCodec holds the CBOR modes of the claims map: RFC 8949 core
// deterministic encoding, and strict decoding (no duplicate or unknown
// claims, no indefinite lengths, no tags, valid UTF-8, bounded sizes).
// Modes are immutable and safe for concurrent use.
type cwtCodec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

var cwtCBOR = newCWTCodec()

func newCWTCodec() cwtCodec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("identity: cwt: cbor encode options: %v", err)) // static options; cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("identity: cwt: cbor decode options: %v", err))
	}
	return cwtCodec{enc: enc, dec: dec}
}

// NewCWT makes a token for deviceID, signed by k, for audience (the chain
// id), valid from now for lifetime (at most MaxCWTLifetime). Times are
// truncated to whole seconds; the token id is 16 random bytes.
func NewCWT(k *Key, deviceID, audience string, now time.Time, lifetime time.Duration) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil key", ErrInvalidKey)
	}
	if err := checkCWTText("device id", deviceID); err != nil {
		return nil, fmt.Errorf("identity: cwt: %v", err)
	}
	if err := checkCWTText("audience", audience); err != nil {
		return nil, fmt.Errorf("identity: cwt: %v", err)
	}
	if lifetime < time.Second || lifetime > MaxCWTLifetime {
		return nil, fmt.Errorf("identity: cwt: lifetime %v, want 1s to %v", lifetime, MaxCWTLifetime)
	}
	iat := now.Unix()
	exp := now.Add(lifetime).Unix()
	if iat < 0 || exp > cwtMaxUnix {
		return nil, fmt.Errorf("identity: cwt: time %v is out of range (1970 to 9999)", now.UTC())
	}
	id := make([]byte, cwtIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("identity: cwt: token id: %w", err)
	}
	payload, err := cwtCBOR.enc.Marshal(cwtClaimsOut{
		Issuer:   deviceID,
		Subject:  deviceID,
		Audience: audience,
		Expiry:   uint64(exp),
		IssuedAt: uint64(iat),
		ID:       id,
	})
	if err != nil {
		return nil, fmt.Errorf("identity: cwt: encoding claims: %w", err)
	}
	return SignCOSE(k, deviceID, payload, nil)
}

// ParseCWT decodes a token without verifying it: the COSE_Sign1 message
// (see DecodeSign1), optionally inside the CWT tag 61, and its claims map,
// strictly: every claim present with its type, no other claim, iss, sub and
// aud 1 to 256 bytes, cti 8 to 16 bytes, iat < exp <= iat + MaxCWTLifetime,
// times no later than year 9999, at most MaxCWTSize bytes. Errors wrap
// ErrMalformed.
func ParseCWT(b []byte) (*Sign1, *Claims, error) {
	if len(b) > MaxCWTSize {
		return nil, nil, malformed("cwt: token is %d bytes, more than %d", len(b), MaxCWTSize)
	}
	if len(b) >= 2 && b[0] == 0xd8 && b[1] == cborTagCWT { // tag 61 in its shortest form
		b = b[2:]
		if len(b) == 0 || b[0] != 0xc0|cborTagSign1 {
			return nil, nil, malformed("cwt: tag 61 must enclose a COSE_Sign1 message tagged 18")
		}
	}
	m, err := DecodeSign1(b)
	if err != nil {
		return nil, nil, fmt.Errorf("cwt: %w", err)
	}
	c, err := parseClaims(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	return m, c, nil
}

// parseClaims decodes and checks the claims map.
func parseClaims(payload []byte) (*Claims, error) {
	var in cwtClaimsIn
	if err := cwtCBOR.dec.Unmarshal(payload, &in); err != nil {
		return nil, malformed("cwt: claims: %v", err)
	}
	switch {
	case in.Issuer == nil:
		return nil, malformed("cwt: claims: iss (1) is missing")
	case in.Subject == nil:
		return nil, malformed("cwt: claims: sub (2) is missing")
	case in.Audience == nil:
		return nil, malformed("cwt: claims: aud (3) is missing")
	case in.Expiry == nil:
		return nil, malformed("cwt: claims: exp (4) is missing")
	case in.IssuedAt == nil:
		return nil, malformed("cwt: claims: iat (6) is missing")
	case in.ID == nil:
		return nil, malformed("cwt: claims: cti (7) is missing")
	}
	if err := checkCWTText("iss (1)", *in.Issuer); err != nil {
		return nil, malformed("cwt: claims: %v", err)
	}
	if err := checkCWTText("sub (2)", *in.Subject); err != nil {
		return nil, malformed("cwt: claims: %v", err)
	}
	if err := checkCWTText("aud (3)", *in.Audience); err != nil {
		return nil, malformed("cwt: claims: %v", err)
	}
	exp, iat := *in.Expiry, *in.IssuedAt
	if exp > cwtMaxUnix {
		return nil, malformed("cwt: claims: exp (4) %d is after year 9999", exp)
	}
	if iat >= exp {
		return nil, malformed("cwt: claims: iat (6) %d is not before exp (4) %d", iat, exp)
	}
	if life := exp - iat; life > uint64(MaxCWTLifetime/time.Second) {
		return nil, malformed("cwt: claims: lifetime exp - iat is %d s, more than %v", life, MaxCWTLifetime)
	}
	if n := len(*in.ID); n < cwtMinIDSize || n > cwtMaxIDSize {
		return nil, malformed("cwt: claims: cti (7) is %d bytes, want %d to %d", n, cwtMinIDSize, cwtMaxIDSize)
	}
	return &Claims{
		Issuer:   *in.Issuer,
		Subject:  *in.Subject,
		Audience: *in.Audience,
		Expiry:   time.Unix(int64(exp), 0).UTC(),
		IssuedAt: time.Unix(int64(iat), 0).UTC(),
		ID:       *in.ID,
	}, nil
}

// checkCWTText checks a text claim: 1 to 256 bytes of UTF-8.
func checkCWTText(name, s string) error {
	if len(s) == 0 || len(s) > cwtMaxTextSize {
		return fmt.Errorf("%s is %d bytes, want 1 to %d", name, len(s), cwtMaxTextSize)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	return nil
}

// VerifyCWT parses a token and checks, cheapest first, that its kid, iss
// and sub are the same id, that aud is audience, that now lies in
// [iat - skew, exp + skew), and that it is signed by pub (the current key
// of the device it names: the caller looks it up). A negative skew counts
// as zero. Errors wrap ErrMalformed, ErrTokenAudience, ErrTokenExpired or
// ErrBadSignature.
func VerifyCWT(b []byte, pub PublicKey, audience string, now time.Time, skew time.Duration) (*Claims, error) {
	m, c, err := ParseCWT(b)
	if err != nil {
		return nil, err
	}
	if c.Issuer != m.KID || c.Subject != m.KID {
		return nil, malformed("cwt: kid %q, iss %q and sub %q must be the same device id", m.KID, c.Issuer, c.Subject)
	}
	if c.Audience != audience {
		return nil, fmt.Errorf("%w: token audience %q, want %q", ErrTokenAudience, c.Audience, audience)
	}
	skew = max(skew, 0)
	if c.IssuedAt.After(now.Add(skew)) {
		return nil, fmt.Errorf("%w: issued at %s, after now (%s) + skew %v",
			ErrTokenExpired, c.IssuedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	if !now.Before(c.Expiry.Add(skew)) {
		return nil, fmt.Errorf("%w: expired at %s, now is %s (skew %v)",
			ErrTokenExpired, c.Expiry.Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	if err := m.Verify(pub, nil); err != nil {
		return nil, fmt.Errorf("cwt: %w", err)
	}
	return c, nil
}

// passwordEncoding is base64url without padding (RFC 4648 §5), refusing
// non-zero padding bits so that a token has one text form.
var passwordEncoding = base64.RawURLEncoding.Strict()

// EncodeCWTPassword encodes a token as text (base64url, no padding) for
// clients that can only send a text password, such as mosquitto_pub -P.
func EncodeCWTPassword(b []byte) string {
	return passwordEncoding.EncodeToString(b)
}

// DecodeCWTPassword decodes a token from its text form (base64url, no
// padding, no line breaks). Errors wrap ErrMalformed.
func DecodeCWTPassword(s string) ([]byte, error) {
	if len(s) > passwordEncoding.EncodedLen(MaxCWTSize) {
		return nil, malformed("cwt: password is %d characters, more than %d", len(s), passwordEncoding.EncodedLen(MaxCWTSize))
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' { // the decoder would skip them
			return nil, malformed("cwt: password has a line break at offset %d", i)
		}
	}
	b, err := passwordEncoding.DecodeString(s)
	if err != nil {
		return nil, malformed("cwt: password is not base64url without padding: %v", err)
	}
	return b, nil
}

// CWTFromPassword returns the token in an MQTT password that holds either
// the token's bytes or its text form (EncodeCWTPassword). The two cannot
// be confused: a token starts with a CBOR tag or array byte (0xd8, 0xd2 or
// 0x84), never a base64url character.
func CWTFromPassword(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, malformed("cwt: empty password")
	}
	switch p[0] {
	case 0xd8, 0xc0 | cborTagSign1, 0x84:
		return p, nil
	}
	return DecodeCWTPassword(string(p))
}

// Bearer is the value of the HTTP Authorization header that presents a
// token to a node's API: "Bearer " and the token's text form
// (EncodeCWTPassword). It is the one way a caller says who it is over
// HTTP (docs/api.md).
func Bearer(tok []byte) string { return "Bearer " + EncodeCWTPassword(tok) }
