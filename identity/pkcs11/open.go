//go:build cgo

package pkcs11

import (
	"crypto/elliptic"
	"errors"
	"fmt"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/thingnet/thingnet/identity"
)

// Token is a logged-in session with the token a URI names. P-256 keys
// sign through crypto11; Ed25519 keys, which crypto11 does not know,
// through a session of Token's own on the same module (eddsa.go).
type Token struct {
	uri *URI
	ctx *crypto11.Context
	raw *session

	once sync.Once
	err  error
}

// OpenToken loads the URI's module, finds its token (by serial, else
// label, else slot-id) and logs in with its PIN.
func OpenToken(u *URI) (*Token, error) {
	mod, err := u.Module()
	if err != nil {
		return nil, err
	}
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{Path: mod, Pin: pin, LoginNotSupported: pin == ""}
	switch {
	case u.Serial != "":
		cfg.TokenSerial = u.Serial
	case u.Token != "":
		cfg.TokenLabel = u.Token
	default:
		cfg.SlotNumber = u.SlotID
	}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: opening %s with %s: %w", u, mod, err)
	}
	// After crypto11, which initialises the module: the session shares
	// that initialisation and crypto11's login.
	raw, err := openSession(u, mod, pin)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pkcs11: opening %s with %s: %w", u, mod, err), ctx.Close())
	}
	return &Token{uri: u, ctx: ctx, raw: raw}, nil
}

// Key finds the key pair the URI names (by id and/or label) and wraps it
// as an identity.Key: signing happens on the token. The algorithm is the
// token object's: a P-256 or an Ed25519 key.
func (t *Token) Key() (*identity.Key, error) {
	priv, kind, err := t.raw.privateKey(t.uri)
	if err != nil {
		return nil, err
	}
	if kind == ckkECEdwards {
		return t.raw.ed25519Key(t.uri, priv)
	}
	ss, err := t.ctx.FindKeyPairs(t.uri.ID, label(t.uri))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: looking for %s: %w", t.uri, err)
	}
	switch len(ss) {
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrNoKey, t.uri)
	case 1:
	default:
		return nil, fmt.Errorf("pkcs11: %d keys match %s: give its id too", len(ss), t.uri)
	}
	k, err := identity.FromSigner(ss[0])
	if err != nil {
		return nil, fmt.Errorf("pkcs11: the key %s: %w", t.uri, err)
	}
	return k, nil
}

// Generate makes a new key pair of alg on the token, with the URI's label
// and id; the private key is sensitive and not extractable. It refuses to
// make a second key under a label or id the token already holds.
func (t *Token) Generate(alg identity.Algorithm) (*identity.Key, error) {
	if alg != identity.P256 && alg != identity.Ed25519 {
		return nil, fmt.Errorf("pkcs11: %v keys: a token key is p256 or ed25519", alg)
	}
	if _, _, err := t.raw.privateKey(t.uri); err == nil {
		return nil, fmt.Errorf("pkcs11: the token already holds a key named %s", t.uri)
	} else if !errors.Is(err, ErrNoKey) {
		return nil, err
	}
	id := t.uri.ID
	if id == nil {
		id = []byte(t.uri.Object) // what finds the public half
	}
	if alg == identity.Ed25519 {
		return t.raw.generateEd25519(t.uri, id)
	}
	s, err := t.ctx.GenerateECDSAKeyPairWithLabel(id, []byte(t.uri.Object), elliptic.P256())
	if err != nil {
		return nil, fmt.Errorf("pkcs11: making a p256 key %s: %w", t.uri, err)
	}
	return identity.FromSigner(s)
}

// Close logs out and unloads the module once no other Token uses it.
// Keys from this token cannot sign after it.
func (t *Token) Close() error {
	// The session first: crypto11 finalises the module when its last
	// context closes.
	t.once.Do(func() { t.err = errors.Join(t.raw.close(), t.ctx.Close()) })
	return t.err
}

func label(u *URI) []byte {
	if u.Object == "" {
		return nil
	}
	return []byte(u.Object)
}

// Open parses uri, opens its token and returns its key, with the token to
// close when the key is no longer needed.
func Open(uri string) (*identity.Key, *Token, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, nil, err
	}
	t, err := OpenToken(u)
	if err != nil {
		return nil, nil, err
	}
	k, err := t.Key()
	if err != nil {
		return nil, nil, errors.Join(err, t.Close())
	}
	return k, t, nil
}

// Generate parses uri, opens its token and makes a new key there (see
// Token.Generate).
func Generate(uri string, alg identity.Algorithm) (*identity.Key, *Token, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, nil, err
	}
	t, err := OpenToken(u)
	if err != nil {
		return nil, nil, err
	}
	k, err := t.Generate(alg)
	if err != nil {
		return nil, nil, errors.Join(err, t.Close())
	}
	return k, t, nil
}
