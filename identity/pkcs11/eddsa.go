//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/miekg/pkcs11"
	"github.com/thingnet/thingnet/identity"
)

// The PKCS#11 3.0 names of Edwards-curve keys, which the PKCS#11 library
// (written against 2.40) does not define.
const (
	ckkECEdwards           = 0x40   // CKK_EC_EDWARDS
	ckmECEdwardsKeyPairGen = 0x1055 // CKM_EC_EDWARDS_KEY_PAIR_GEN
	ckmEdDSA               = 0x1057 // CKM_EDDSA
)

// session is one logged-in PKCS#11 session on a token, through
// github.com/miekg/pkcs11 (crypto11's own binding): what crypto11 does not
// do — telling a key's type, and Ed25519 keys (CKK_EC_EDWARDS, CKM_EDDSA,
// PKCS#11 3.0) — is done here. A session is not safe for concurrent use
// (PKCS#11), so mu guards it.
type session struct {
	mu sync.Mutex
	p  *pkcs11.Ctx
	sh pkcs11.SessionHandle
}

// openSession loads mod (already initialised by crypto11: the module is
// shared, and never finalised here), opens a session on the URI's token
// and logs it in with pin.
func openSession(u *URI, mod, pin string) (*session, error) {
	p := pkcs11.New(mod)
	if p == nil {
		return nil, fmt.Errorf("cannot load %s", mod)
	}
	if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p.Destroy()
		return nil, err
	}
	slot, err := findSlot(p, u)
	if err != nil {
		p.Destroy()
		return nil, err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		p.Destroy()
		return nil, err
	}
	if pin != "" {
		if err := p.Login(sh, pkcs11.CKU_USER, pin); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			p.CloseSession(sh)
			p.Destroy()
			return nil, err
		}
	}
	return &session{p: p, sh: sh}, nil
}

// findSlot is the slot of the URI's token, chosen as crypto11 chooses it:
// by serial, else label, else slot-id.
func findSlot(p *pkcs11.Ctx, u *URI) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		if u.Serial == "" && u.Token == "" {
			if u.SlotID != nil && uint(*u.SlotID) == s {
				return s, nil
			}
			continue
		}
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if (u.Serial != "" && ti.SerialNumber == u.Serial) || (u.Serial == "" && ti.Label == u.Token) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token %s", u)
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// close closes the session and unloads this handle on the module (the
// module stays initialised for crypto11, which finalises it).
func (s *session) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	err := s.p.CloseSession(s.sh)
	s.p.Destroy()
	s.p = nil
	if err != nil {
		return fmt.Errorf("pkcs11: closing a session: %w", err)
	}
	return nil
}

// find is the handles of the objects of class with the URI's id and label
// (at most two: one is what is wanted).
func (s *session) find(u *URI, class uint) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if u.ID != nil {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if err := s.p.FindObjectsInit(s.sh, tmpl); err != nil {
		return nil, fmt.Errorf("pkcs11: looking for %s: %w", u, err)
	}
	objs, _, err := s.p.FindObjects(s.sh, 2)
	if ferr := s.p.FindObjectsFinal(s.sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: looking for %s: %w", u, err)
	}
	return objs, nil
}

// privateKey finds the one private key the URI names and its CKA_KEY_TYPE.
func (s *session) privateKey(u *URI) (pkcs11.ObjectHandle, uint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs, err := s.find(u, pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return 0, 0, err
	}
	switch len(objs) {
	case 0:
		return 0, 0, fmt.Errorf("%w: %s", ErrNoKey, u)
	case 1:
	default:
		return 0, 0, fmt.Errorf("pkcs11: more than one key matches %s: give its id too", u)
	}
	attrs, err := s.p.GetAttributeValue(s.sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil || len(attrs) != 1 {
		return 0, 0, fmt.Errorf("pkcs11: the type of the key %s: %v", u, err)
	}
	kind, err := ulong(attrs[0].Value)
	if err != nil {
		return 0, 0, fmt.Errorf("pkcs11: the type of the key %s: %w", u, err)
	}
	return objs[0], kind, nil
}

// ulong reads a CK_ULONG attribute value (native byte order and size).
func ulong(b []byte) (uint, error) {
	switch len(b) {
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), nil
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), nil
	}
	return 0, fmt.Errorf("a CK_ULONG of %d bytes", len(b))
}

// ed25519Key is the token's Ed25519 key priv, with the public key of the
// public-key object that has its id (CKA_EC_POINT).
func (s *session) ed25519Key(u *URI, priv pkcs11.ObjectHandle) (*identity.Key, error) {
	s.mu.Lock()
	pub, err := s.edwardsPublic(u, priv)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	k, err := identity.FromSigner(&edSigner{s: s, priv: priv, pub: pub})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: the key %s: %w", u, err)
	}
	return k, nil
}

func (s *session) edwardsPublic(u *URI, priv pkcs11.ObjectHandle) (ed25519.PublicKey, error) {
	attrs, err := s.p.GetAttributeValue(s.sh, priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
	if err != nil || len(attrs) != 1 {
		return nil, fmt.Errorf("pkcs11: the id of the key %s: %v", u, err)
	}
	objs, err := s.find(&URI{ID: attrs[0].Value}, pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("pkcs11: the token has %d public keys with the id of %s (want 1: it gives an Ed25519 key's public half)", len(objs), u)
	}
	attrs, err = s.p.GetAttributeValue(s.sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil || len(attrs) != 2 {
		return nil, fmt.Errorf("pkcs11: the public key of %s: %v", u, err)
	}
	if !isEd25519Params(attrs[0].Value) {
		return nil, fmt.Errorf("%w: %s is on curve %x (only Ed25519 is supported)", ErrBadPoint, u, attrs[0].Value)
	}
	return parseEdwardsPoint(attrs[1].Value)
}

// generateEd25519 makes an Ed25519 key pair on the token: the private key
// sensitive and not extractable, both halves labelled and with id.
func (s *session) generateEd25519(u *URI, id []byte) (*identity.Key, error) {
	common := func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, uint(ckkECEdwards)),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
		}
	}
	pubT := append(common(pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params))
	privT := append(common(pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	s.mu.Lock()
	_, priv, err := s.p.GenerateKeyPair(s.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}, pubT, privT)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("pkcs11: making an ed25519 key %s (does the token do CKM_EC_EDWARDS_KEY_PAIR_GEN? SoftHSM2 does from 2.6): %w", u, err)
	}
	return s.ed25519Key(u, priv)
}

// edSigner is a crypto.Signer whose Ed25519 private key is in the token:
// it signs with CKM_EDDSA (pure Ed25519, the message itself).
type edSigner struct {
	s    *session
	priv pkcs11.ObjectHandle
	pub  ed25519.PublicKey
}

func (e *edSigner) Public() crypto.PublicKey { return e.pub }

func (e *edSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != 0 {
		return nil, fmt.Errorf("pkcs11: ed25519 signs the message itself, not a %v digest", opts.HashFunc())
	}
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	if e.s.p == nil {
		return nil, errors.New("pkcs11: the token is closed")
	}
	if err := e.s.p.SignInit(e.s.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, e.priv); err != nil {
		return nil, fmt.Errorf("pkcs11: ed25519 sign: %w", err)
	}
	sig, err := e.s.p.Sign(e.s.sh, msg)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: ed25519 sign: %w", err)
	}
	return sig, nil
}
