package identity

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"

	"github.com/oasisprotocol/curve25519-voi/curve"
)

// Suite names an HPKE (RFC 9180) ciphersuite for sealing to a device. Every
// suite uses HKDF-SHA256 and ChaCha20-Poly1305 (fast without AES hardware,
// as on most microcontrollers); they differ in the KEM.
type Suite uint8

// The suites.
const (
	// SuiteX25519 is DHKEM(X25519): the receiver's X25519 key is its
	// Ed25519 ledger key mapped to the Montgomery curve, so no other key
	// needs publishing.
	SuiteX25519 Suite = 1
	// SuiteP256 is DHKEM(P-256) with the receiver's P-256 ledger key.
	SuiteP256 Suite = 2
	// SuiteHybrid is ML-KEM-768 + X25519 (post-quantum confidentiality).
	// Its public key is 1,216 bytes and cannot be derived from a ledger
	// key: the receiver announces it (see the mesh package), signed by its
	// ledger key; the private half is derived from the ledger key's seed.
	SuiteHybrid Suite = 3
)

// ErrDecrypt reports a ciphertext that does not open with the key given.
var ErrDecrypt = errors.New("identity: ciphertext does not open with this key")

func (s Suite) String() string {
	switch s {
	case SuiteX25519:
		return "x25519"
	case SuiteP256:
		return "p256"
	case SuiteHybrid:
		return "mlkem768-x25519"
	}
	return fmt.Sprintf("suite(%d)", uint8(s))
}

func (s Suite) kem() (hpke.KEM, error) {
	switch s {
	case SuiteX25519:
		return hpke.DHKEM(ecdh.X25519()), nil
	case SuiteP256:
		return hpke.DHKEM(ecdh.P256()), nil
	case SuiteHybrid:
		return hpke.MLKEM768X25519(), nil
	}
	return nil, fmt.Errorf("%w: HPKE suite %d", ErrUnsupportedAlgorithm, uint8(s))
}

// DefaultSuite is the suite that a ledger key of alg seals to by default.
func DefaultSuite(alg Algorithm) Suite {
	if alg == P256 {
		return SuiteP256
	}
	return SuiteX25519
}

// EncryptionKey returns the HPKE public key of the default suite for a
// ledger key: X25519 (the birational map of the Ed25519 point, as
// libsodium's crypto_sign_ed25519_pk_to_curve25519) or P-256.
func (k PublicKey) EncryptionKey() (Suite, []byte, error) {
	switch k.Alg {
	case Ed25519:
		if err := checkEd25519PublicKey(k.Bytes); err != nil {
			return 0, nil, err
		}
		var c curve.CompressedEdwardsY
		if _, err := c.SetBytes(k.Bytes); err != nil {
			return 0, nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		var p curve.EdwardsPoint
		if _, err := p.SetCompressedY(&c); err != nil {
			return 0, nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		var m curve.MontgomeryPoint
		m.SetEdwards(&p)
		return SuiteX25519, m[:], nil
	case P256:
		pub, err := parseP256PublicKey(k.Bytes)
		if err != nil {
			return 0, nil, err
		}
		e, err := pub.ECDH()
		if err != nil {
			return 0, nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		return SuiteP256, e.Bytes(), nil
	}
	return 0, nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, k.Alg)
}

// hpkePrivateKey returns the key's HPKE private key for suite s.
func (k *Key) hpkePrivateKey(s Suite) (hpke.PrivateKey, error) {
	switch priv := k.signer.(type) {
	case ed25519.PrivateKey:
		switch s {
		case SuiteX25519:
			// The X25519 scalar of an Ed25519 key: the first half of
			// SHA-512(seed); X25519 clamps it.
			h := sha512.Sum512(priv.Seed())
			x, err := ecdh.X25519().NewPrivateKey(h[:32])
			if err != nil {
				return nil, err
			}
			return hpke.NewDHKEMPrivateKey(x)
		case SuiteHybrid:
			ikm, err := hkdf.Key(sha256.New, priv.Seed(), nil, "thingnet hpke mlkem768-x25519 v1", 32)
			if err != nil {
				return nil, err
			}
			return hpke.MLKEM768X25519().DeriveKeyPair(ikm)
		}
	case *ecdsa.PrivateKey:
		switch s {
		case SuiteP256:
			x, err := priv.ECDH()
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
			}
			return hpke.NewDHKEMPrivateKey(x)
		case SuiteHybrid:
			raw, err := priv.Bytes()
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
			}
			ikm, err := hkdf.Key(sha256.New, raw, nil, "thingnet hpke mlkem768-x25519 v1", 32)
			if err != nil {
				return nil, err
			}
			return hpke.MLKEM768X25519().DeriveKeyPair(ikm)
		}
	default:
		return nil, fmt.Errorf("%w: HPKE needs the private key in memory", ErrNotExportable)
	}
	return nil, fmt.Errorf("%w: HPKE suite %v for a %v key", ErrUnsupportedAlgorithm, s, k.pub.Alg)
}

// HybridEncryptionKey returns the key's public ML-KEM-768+X25519 key, for
// the receiver to announce.
func (k *Key) HybridEncryptionKey() ([]byte, error) {
	priv, err := k.hpkePrivateKey(SuiteHybrid)
	if err != nil {
		return nil, err
	}
	return priv.PublicKey().Bytes(), nil
}

// Seal encrypts plaintext to the HPKE public key pub of suite s, binding
// info (context the receiver must present, such as sender, receiver and
// sequence number). The result is the encapsulated key followed by the
// ciphertext (RFC 9180 single-shot mode_base).
func Seal(s Suite, pub []byte, info, plaintext []byte) ([]byte, error) {
	kem, err := s.kem()
	if err != nil {
		return nil, err
	}
	pk, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE %v public key: %v", ErrInvalidKey, s, err)
	}
	return hpke.Seal(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info, plaintext)
}

// Open decrypts what Seal made for this key under suite s with the same info.
func (k *Key) Open(s Suite, info, sealed []byte) ([]byte, error) {
	priv, err := k.hpkePrivateKey(s)
	if err != nil {
		return nil, err
	}
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info, sealed)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrDecrypt, err)
	}
	return pt, nil
}
