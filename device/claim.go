package device

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// A claim code is how a device in the field is onboarded: it generates its
// key, shows the code (on a display, a label, a serial console), and an
// administrator of its organisation claims it (thingnet device claim CODE),
// which registers it on the ledger with the device's proof of possession.
//
// The code is "TNC1" followed by the base32 (RFC 4648, upper case, no
// padding) of the deterministic CBOR array
//
//	[1, chain_id, org, alg, public key, nonce, expiry, pop, claim signature]
//
// alg is the COSE algorithm (-8 Ed25519, -7 P-256), the public key its 32
// or 33 bytes, nonce 8 random bytes, expiry Unix seconds, pop the 64-byte
// registration proof of possession the ledger checks (over
// ["thingnet/register/v1", chain_id, org, did]), and the claim signature 64
// bytes by the same key over ["thingnet/claim/v1", chain_id, org, did,
// nonce, expiry]: it makes the code short-lived. Every character is in the
// QR code alphanumeric set. See docs/protocol.md.
const (
	ClaimPrefix   = "TNC1"
	claimVersion  = 1
	claimNonce    = 8
	MaxClaimCode  = 600 // characters
	claimSigSize  = 64
	maxClaimTTL   = 7 * 24 * time.Hour
	claimContext  = "thingnet/claim/v1"
	maxClaimChain = 64
)

var claimB32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrBadClaimCode is returned for a code that cannot be decoded, is
// expired, or whose signatures do not verify.
var ErrBadClaimCode = errors.New("device: bad claim code")

// Claim is a decoded claim code.
type Claim struct {
	ChainID string
	Org     string
	Device  string // the did:key
	Key     identity.PublicKey
	Nonce   []byte
	Expiry  time.Time
	Proof   []byte // registration proof of possession
	Sig     []byte // claim signature
}

type claimWire struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	ChainID string
	Org     string
	Alg     int64
	Key     []byte
	Nonce   []byte
	Expiry  uint64
	Proof   []byte
	Sig     []byte
}

var claimEnc, claimDec = func() (cbor.EncMode, cbor.DecMode) {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	dec, err := cbor.DecOptions{
		IndefLength: cbor.IndefLengthForbidden, TagsMd: cbor.TagsForbidden, MaxNestedLevels: 4,
		MaxArrayElements: 16, MaxMapPairs: 16, UTF8: cbor.UTF8RejectInvalid, IntDec: cbor.IntDecConvertNone,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return enc, dec
}()

// ClaimMessage is what the claim signature covers.
func ClaimMessage(chainID, org, did string, nonce []byte, expiry int64) []byte {
	b, err := claimEnc.Marshal([]any{claimContext, chainID, org, did, nonce, expiry})
	if err != nil {
		panic(err) // strings, bytes and an integer always encode
	}
	return b
}

// NewClaimCode makes the claim code of key k for joining org on chainID,
// valid for ttl (at most a week) from now.
func NewClaimCode(k *identity.Key, chainID, org string, now time.Time, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > maxClaimTTL {
		return "", fmt.Errorf("device: claim code lifetime %v: want up to %v", ttl, maxClaimTTL)
	}
	if err := checkClaimText(chainID, org); err != nil {
		return "", err
	}
	nonce := make([]byte, claimNonce)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	exp := now.Add(ttl).Unix()
	pop, err := k.Sign(record.PossessionMessage(chainID, org, k.ID()))
	if err != nil {
		return "", err
	}
	sig, err := k.Sign(ClaimMessage(chainID, org, k.ID(), nonce, exp))
	if err != nil {
		return "", err
	}
	pub := k.Public()
	b, err := claimEnc.Marshal(claimWire{Version: claimVersion, ChainID: chainID, Org: org, Alg: int64(pub.Alg), Key: pub.Bytes,
		Nonce: nonce, Expiry: uint64(exp), Proof: pop, Sig: sig})
	if err != nil {
		return "", err
	}
	return ClaimPrefix + claimB32.EncodeToString(b), nil
}

func checkClaimText(chainID, org string) error {
	if chainID == "" || len(chainID) > maxClaimChain {
		return fmt.Errorf("%w: chain id of %d bytes (1 to %d)", ErrBadClaimCode, len(chainID), maxClaimChain)
	}
	if len(org) < 2 || len(org) > 63 {
		return fmt.Errorf("%w: organisation id %q: 2 to 63 characters", ErrBadClaimCode, org)
	}
	for _, c := range org {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("%w: organisation id %q: only a-z, 0-9 and -", ErrBadClaimCode, org)
		}
	}
	for _, c := range chainID {
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: chain id %q: printable ASCII only", ErrBadClaimCode, chainID)
		}
	}
	return nil
}

// ParseClaimCode decodes a claim code (spaces, dashes and case are
// ignored, so a code read aloud or typed in groups works) and checks that
// its encoding is canonical and both signatures verify. It does not check
// the expiry or the chain: Check does.
func ParseClaimCode(s string) (*Claim, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\n', '\r', '\t':
			return -1
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
	if len(s) > MaxClaimCode {
		return nil, fmt.Errorf("%w: %d characters, at most %d", ErrBadClaimCode, len(s), MaxClaimCode)
	}
	rest, ok := strings.CutPrefix(s, ClaimPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it does not start with %s", ErrBadClaimCode, ClaimPrefix)
	}
	b, err := claimB32.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: not base32: %v (a character was mistyped?)", ErrBadClaimCode, err)
	}
	var w claimWire
	if err := claimDec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadClaimCode, err)
	}
	if again, err := claimEnc.Marshal(w); err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not in deterministic CBOR", ErrBadClaimCode)
	}
	if w.Version != claimVersion {
		return nil, fmt.Errorf("%w: version %d (this thingnet reads version %d)", ErrBadClaimCode, w.Version, claimVersion)
	}
	if err := checkClaimText(w.ChainID, w.Org); err != nil {
		return nil, err
	}
	if w.Alg != int64(identity.Ed25519) && w.Alg != int64(identity.P256) {
		return nil, fmt.Errorf("%w: algorithm %d", ErrBadClaimCode, w.Alg)
	}
	pub, err := identity.NewPublicKey(identity.Algorithm(w.Alg), w.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %v", ErrBadClaimCode, err)
	}
	switch {
	case len(w.Nonce) != claimNonce:
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrBadClaimCode, len(w.Nonce))
	case w.Expiry == 0 || w.Expiry > 253402300799:
		return nil, fmt.Errorf("%w: expiry %d", ErrBadClaimCode, w.Expiry)
	case len(w.Proof) != claimSigSize || len(w.Sig) != claimSigSize:
		return nil, fmt.Errorf("%w: signatures of %d and %d bytes, want 64", ErrBadClaimCode, len(w.Proof), len(w.Sig))
	}
	c := &Claim{ChainID: w.ChainID, Org: w.Org, Device: pub.DID(), Key: pub, Nonce: w.Nonce,
		Expiry: time.Unix(int64(w.Expiry), 0).UTC(), Proof: w.Proof, Sig: w.Sig}
	if err := pub.Verify(ClaimMessage(c.ChainID, c.Org, c.Device, c.Nonce, int64(w.Expiry)), c.Sig); err != nil {
		return nil, fmt.Errorf("%w: the claim signature does not verify: %v", ErrBadClaimCode, err)
	}
	if err := pub.Verify(record.PossessionMessage(c.ChainID, c.Org, c.Device), c.Proof); err != nil {
		return nil, fmt.Errorf("%w: the proof of possession does not verify: %v", ErrBadClaimCode, err)
	}
	return c, nil
}

// Check checks that the claim is for chainID and org (when not empty) and
// has not expired at now.
func (c *Claim) Check(chainID, org string, now time.Time) error {
	switch {
	case c.ChainID != chainID:
		return fmt.Errorf("%w: the code is for chain %q, this network is %q", ErrBadClaimCode, c.ChainID, chainID)
	case org != "" && c.Org != org:
		return fmt.Errorf("%w: the device made the code for organisation %q, not %q (its proof of possession names the organisation; make a new code on the device)", ErrBadClaimCode, c.Org, org)
	case !now.Before(c.Expiry):
		return fmt.Errorf("%w: it expired at %s; make a new one on the device", ErrBadClaimCode, c.Expiry.Format(time.RFC3339))
	}
	return nil
}

// Register is the device.register message the claim allows.
func (c *Claim) Register(class, firmware string, labels map[string]string) *record.DeviceRegister {
	return &record.DeviceRegister{Org: c.Org, Device: c.Device, Class: class, Firmware: firmware, Labels: labels, Proof: c.Proof}
}

// Registered reports whether the node's ledger has a record of device id
// (not proved: to decide what to register, not to trust).
func Registered(ctx context.Context, c *client.Client, id string) (bool, error) {
	err := c.Get(ctx, "/v1/devices/"+url.PathEscape(id), nil)
	var e *client.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// WaitClaimed returns once the device of key k is registered on the ledger
// (asked through c every poll). While it is not, it shows a claim code for
// an admin of org (NewClaimCode, valid ttl) and a new one when that one
// expires; show is called with each code. It returns ctx's error if ctx
// ends first; a failed question is retried.
func WaitClaimed(ctx context.Context, c *client.Client, k *identity.Key, chainID, org string, ttl, poll time.Duration, show func(code string)) error {
	for {
		known, err := Registered(ctx, c, k.ID())
		if err == nil && known {
			return nil
		}
		code, err := NewClaimCode(k, chainID, org, time.Now(), ttl)
		if err != nil {
			return err
		}
		show(code)
		for deadline := time.Now().Add(ttl); time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(poll):
			}
			if known, err := Registered(ctx, c, k.ID()); err == nil && known {
				return nil
			}
		}
	}
}
