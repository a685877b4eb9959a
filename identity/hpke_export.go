package identity

import (
	"crypto/hpke"
	"fmt"
)

// HPKE in export-only mode (RFC 9180 section 5.3, AEAD id 0xFFFF): the
// sender and the receiver derive a shared secret from one encapsulation and
// use it as they like. Sealed readings (package reading) use it to derive a
// one-message content key that can be disclosed alone.

// EncSize is the size of suite s's encapsulated key (Nenc): 32 bytes for
// X25519, 65 for P-256, 1,120 for ML-KEM-768+X25519; 0 for an unknown
// suite.
func (s Suite) EncSize() int {
	switch s {
	case SuiteX25519:
		return 32
	case SuiteP256:
		return 65
	case SuiteHybrid:
		return 1120
	}
	return 0
}

// PublicKeySize is the size of suite s's public key (Npk): 32 bytes for
// X25519, 65 for P-256, 1,216 for ML-KEM-768+X25519; 0 for an unknown
// suite.
func (s Suite) PublicKeySize() int {
	switch s {
	case SuiteX25519:
		return 32
	case SuiteP256:
		return 65
	case SuiteHybrid:
		return 1216
	}
	return 0
}

// ParseSuite parses a suite name as String writes it, or the short names
// "x25519", "p256" and "hybrid".
func ParseSuite(name string) (Suite, error) {
	switch name {
	case "x25519":
		return SuiteX25519, nil
	case "p256", "p-256":
		return SuiteP256, nil
	case "hybrid", "mlkem768-x25519":
		return SuiteHybrid, nil
	}
	return 0, fmt.Errorf("%w: HPKE suite %q (want x25519, p256 or hybrid)", ErrUnsupportedAlgorithm, name)
}

// CheckHPKEPublicKey checks that pub is a valid public key of suite s.
func CheckHPKEPublicKey(s Suite, pub []byte) error {
	kem, err := s.kem()
	if err != nil {
		return err
	}
	if _, err := kem.NewPublicKey(pub); err != nil {
		return fmt.Errorf("%w: HPKE %v public key: %v", ErrInvalidKey, s, err)
	}
	return nil
}

// HPKEPublicKey returns the key's HPKE public key of suite s: X25519 or
// ML-KEM-768+X25519 for an Ed25519 key, P-256 or ML-KEM-768+X25519 for a
// P-256 key. The private halves are derived as Open derives them.
func (k *Key) HPKEPublicKey(s Suite) ([]byte, error) {
	priv, err := k.hpkePrivateKey(s)
	if err != nil {
		return nil, err
	}
	return priv.PublicKey().Bytes(), nil
}

// SealExport sets up an HPKE sender (mode_base, HKDF-SHA256, export-only
// AEAD) to the public key pub of suite s with info, and returns the
// encapsulated key and the secret of n bytes exported under
// exporterContext.
func SealExport(s Suite, pub, info []byte, exporterContext string, n int) (enc, secret []byte, err error) {
	kem, err := s.kem()
	if err != nil {
		return nil, nil, err
	}
	pk, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE %v public key: %v", ErrInvalidKey, s, err)
	}
	enc, snd, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.ExportOnly(), info)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: HPKE %v: %w", s, err)
	}
	secret, err = snd.Export(exporterContext, n)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: HPKE export: %w", err)
	}
	return enc, secret, nil
}

// OpenExport is the receiver's side of SealExport: it returns the same
// secret, given the encapsulated key and info. A wrong key or info gives
// another secret, not an error (export-only HPKE authenticates nothing):
// the caller checks the secret, as sealed readings do with a commitment.
func (k *Key) OpenExport(s Suite, enc, info []byte, exporterContext string, n int) ([]byte, error) {
	priv, err := k.hpkePrivateKey(s)
	if err != nil {
		return nil, err
	}
	rcp, err := hpke.NewRecipient(enc, priv, hpke.HKDFSHA256(), hpke.ExportOnly(), info)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrDecrypt, err)
	}
	secret, err := rcp.Export(exporterContext, n)
	if err != nil {
		return nil, fmt.Errorf("identity: HPKE export: %w", err)
	}
	return secret, nil
}

// HPKEPrivateKeyBytes returns the key's HPKE private key of suite s in
// RFC 9180's SerializePrivateKey form (for X25519 the clamped scalar, for
// ML-KEM-768+X25519 the 32-byte seed): for test vectors and for other
// implementations of the receiver.
func (k *Key) HPKEPrivateKeyBytes(s Suite) ([]byte, error) {
	priv, err := k.hpkePrivateKey(s)
	if err != nil {
		return nil, err
	}
	return priv.Bytes()
}
