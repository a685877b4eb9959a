package identity

import (
	"bytes"
	"errors"
	"testing"
)

func TestHPKESealOpen(t *testing.T) {
	for _, alg := range []Algorithm{Ed25519, P256} {
		k, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		other, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		suite, pub, err := k.Public().EncryptionKey()
		if err != nil {
			t.Fatal(err)
		}
		if suite != DefaultSuite(alg) {
			t.Fatalf("%v: suite %v, want %v", alg, suite, DefaultSuite(alg))
		}
		// The key derived from the ledger key's public half must be the
		// public half of the one derived from its private half.
		priv, err := k.hpkePrivateKey(suite)
		if err != nil {
			t.Fatal(err)
		}
		want := priv.PublicKey().Bytes()
		if !bytes.Equal(pub, want) {
			t.Fatalf("%v: encryption key from the public key %x != from the private key %x", alg, pub, want)
		}
		hybrid, err := k.HybridEncryptionKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(hybrid) != 1216 {
			t.Fatalf("hybrid key is %d bytes", len(hybrid))
		}
		for _, c := range []struct {
			s   Suite
			pub []byte
		}{{suite, pub}, {SuiteHybrid, hybrid}} {
			msg := []byte("open the valve")
			sealed, err := Seal(c.s, c.pub, []byte("info"), msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Open(c.s, []byte("info"), sealed)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%v/%v: open: %q, %v", alg, c.s, got, err)
			}
			if _, err := k.Open(c.s, []byte("other info"), sealed); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%v/%v: open with other info: %v", alg, c.s, err)
			}
			if _, err := other.Open(c.s, []byte("info"), sealed); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%v/%v: open with another key: %v", alg, c.s, err)
			}
			sealed[len(sealed)-1] ^= 1
			if _, err := k.Open(c.s, []byte("info"), sealed); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%v/%v: tampered ciphertext opened: %v", alg, c.s, err)
			}
		}
	}
	if _, err := Seal(Suite(9), nil, nil, nil); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("unknown suite: %v", err)
	}
	if _, err := Seal(SuiteX25519, []byte{1, 2}, nil, nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short key: %v", err)
	}
}
