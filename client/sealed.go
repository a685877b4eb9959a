package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Opening sealed readings (reading.Sealed): a reader needs the data
// private key of the version a reading was sealed to. An admin holds it
// (in its keystore, thingnet org datakey new); a grantee gets it wrapped
// to its own ledger key on the ledger (org.datakey.share, WrapDataKey),
// so that new readers are added without touching the log.

// ErrNoDataKey is returned when no data private key is at hand for a
// reading's organisation and key version.
var ErrNoDataKey = errors.New("no data key to open this sealed reading")

// WrapDataKey wraps the data private key dk, published as version of
// org's data key, to grantee's ledger key (HPKE, the suite of the
// grantee's key: X25519 for Ed25519, P-256 for P-256): the tx an admin
// sends to let grantee open the readings sealed to that version.
func WrapDataKey(chainID, org string, version uint64, grantee string, dk *identity.Key) (*record.OrgDataKeyShare, error) {
	pub, err := identity.ParseDID(grantee)
	if err != nil {
		return nil, fmt.Errorf("grantee %s: %w", grantee, err)
	}
	suite, epk, err := pub.EncryptionKey()
	if err != nil {
		return nil, fmt.Errorf("grantee %s: %w", grantee, err)
	}
	der, err := identity.MarshalPrivateKey(dk)
	if err != nil {
		return nil, err
	}
	sealed, err := identity.Seal(suite, epk, record.DataKeyShareInfo(chainID, org, version, grantee), der)
	if err != nil {
		return nil, err
	}
	return &record.OrgDataKeyShare{Org: org, Version: version, Grantee: grantee, Suite: uint8(suite), Sealed: sealed}, nil
}

// UnwrapDataKey opens a share with the grantee's key and checks the data
// key it holds against the published one (dk).
func UnwrapDataKey(chainID string, sh *record.DataKeyShare, grantee *identity.Key, dk *record.DataKey) (*identity.Key, error) {
	der, err := grantee.Open(identity.Suite(sh.Suite), record.DataKeyShareInfo(chainID, sh.Org, sh.Version, sh.Grantee), sh.Sealed)
	if err != nil {
		return nil, fmt.Errorf("the share of %q data key version %d: %w", sh.Org, sh.Version, err)
	}
	k, err := identity.ParsePrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("the share of %q data key version %d: %w", sh.Org, sh.Version, err)
	}
	if err := CheckDataKey(k, dk); err != nil {
		return nil, err
	}
	return k, nil
}

// CheckDataKey checks that k is the private half of the published dk.
func CheckDataKey(k *identity.Key, dk *record.DataKey) error {
	pub, err := k.HPKEPublicKey(identity.Suite(dk.Suite))
	if err != nil {
		return fmt.Errorf("data key of %q version %d: %w", dk.Org, dk.Version, err)
	}
	if !bytes.Equal(pub, dk.Key) {
		return fmt.Errorf("the key is not %q data key version %d", dk.Org, dk.Version)
	}
	return nil
}

// DataKeyShare fetches grantee's share of version of org's data key.
func (c *Client) DataKeyShare(ctx context.Context, org string, version uint64, grantee string) (*record.DataKeyShare, error) {
	var out struct {
		Record *record.DataKeyShare `json:"record"`
	}
	path := fmt.Sprintf("/v1/orgs/%s/datakey/shares/%s?version=%d", url.PathEscape(org), url.PathEscape(grantee), version)
	if err := c.Get(ctx, path, &out); err != nil {
		return nil, fmt.Errorf("share of %q data key version %d for %s: %w", org, version, grantee, err)
	}
	if out.Record == nil || out.Record.Org != org || out.Record.Version != version || out.Record.Grantee != grantee {
		return nil, fmt.Errorf("share of %q data key version %d for %s: the node answered with another", org, version, grantee)
	}
	return out.Record, nil
}

// Opener opens sealed readings: it finds the data private key of a
// reading's organisation and version in Lookup (an admin's keystore), or
// else in the share the ledger holds for Reader, and caches it.
type Opener struct {
	Client  *Client
	ChainID string
	// Lookup returns the data private key of org's version, or
	// ErrNoDataKey; nil: none.
	Lookup func(org string, version uint64) (*identity.Key, error)
	// Reader is the reader's own ledger key and ReaderID its account id,
	// to unwrap the share of a grantee; nil: no shares.
	Reader   *identity.Key
	ReaderID string

	mu   sync.Mutex
	keys map[string]*identity.Key
	orgs map[string]string
}

// Open opens a sealed reading r of a decoded envelope (r.Device set); a
// plaintext reading comes back as it is.
func (o *Opener) Open(ctx context.Context, r reading.Reading) (reading.Reading, error) {
	if r.Sealed == nil {
		return r, nil
	}
	org, err := o.orgOf(ctx, r.Device)
	if err != nil {
		return reading.Reading{}, err
	}
	k, err := o.Key(ctx, org, r.Sealed.Version)
	if err != nil {
		return reading.Reading{}, err
	}
	return reading.Open(k, o.ChainID, r)
}

// Secret returns the secret of sealed reading r: what disclosing it to
// the ledger reveals (record.ReadingEvidence.Secret).
func (o *Opener) Secret(ctx context.Context, r reading.Reading) ([]byte, error) {
	if r.Sealed == nil {
		return nil, fmt.Errorf("reading %d of %s is not sealed", r.Seq, r.Device)
	}
	org, err := o.orgOf(ctx, r.Device)
	if err != nil {
		return nil, err
	}
	k, err := o.Key(ctx, org, r.Sealed.Version)
	if err != nil {
		return nil, err
	}
	return reading.SealedSecret(k, o.ChainID, r)
}

func (o *Opener) orgOf(ctx context.Context, device string) (string, error) {
	o.mu.Lock()
	org, ok := o.orgs[device]
	o.mu.Unlock()
	if ok {
		return org, nil
	}
	var d struct {
		Record *record.Device `json:"record"`
	}
	if err := o.Client.Get(ctx, "/v1/devices/"+url.PathEscape(device), &d); err != nil {
		return "", fmt.Errorf("the organisation of %s: %w", device, err)
	}
	if d.Record == nil || d.Record.Org == "" {
		return "", fmt.Errorf("the organisation of %s: no record", device)
	}
	o.mu.Lock()
	if o.orgs == nil {
		o.orgs = map[string]string{}
	}
	o.orgs[device] = d.Record.Org
	o.mu.Unlock()
	return d.Record.Org, nil
}

// Key returns the data private key of org's version: from Lookup, or
// unwrapped from the reader's share, checked against the published key.
func (o *Opener) Key(ctx context.Context, org string, version uint64) (*identity.Key, error) {
	id := fmt.Sprintf("%s/%d", org, version)
	o.mu.Lock()
	k, ok := o.keys[id]
	o.mu.Unlock()
	if ok {
		return k, nil
	}
	dk, err := o.Client.DataKey(ctx, org, version, false)
	if err != nil {
		return nil, err
	}
	if dk.Record == nil {
		return nil, fmt.Errorf("%w: %q has no data key version %d", ErrNoDataKey, org, version)
	}
	var lookupErr error
	if o.Lookup != nil {
		if k, lookupErr = o.Lookup(org, version); lookupErr == nil {
			if err := CheckDataKey(k, dk.Record); err != nil {
				return nil, err
			}
		}
	}
	if k == nil && o.Reader != nil {
		sh, err := o.Client.DataKeyShare(ctx, org, version, o.ReaderID)
		if err != nil {
			return nil, fmt.Errorf("%w: %q version %d: not in the keystore (%v), and %v", ErrNoDataKey, org, version, lookupErr, err)
		}
		if k, err = UnwrapDataKey(o.ChainID, sh, o.Reader, dk.Record); err != nil {
			return nil, err
		}
	}
	if k == nil {
		if lookupErr == nil {
			lookupErr = errors.New("no keystore and no reader key")
		}
		return nil, fmt.Errorf("%w: %q version %d: %v", ErrNoDataKey, org, version, lookupErr)
	}
	o.mu.Lock()
	if o.keys == nil {
		o.keys = map[string]*identity.Key{}
	}
	o.keys[id] = k
	o.mu.Unlock()
	return k, nil
}
