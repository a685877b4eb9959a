package reading

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// testTime is a fixed time for tests and examples.
var testTime = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func allAlgs() []identity.Algorithm { return []identity.Algorithm{identity.Ed25519, identity.P256} }

// seededKey returns a fixed key: Ed25519 from a 32-byte seed of b, or a
// P-256 key with scalar b repeated (valid for small b).
func seededKey(t testing.TB, alg identity.Algorithm, b byte) *identity.Key {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = b
	}
	var (
		k   *identity.Key
		err error
	)
	if alg == identity.Ed25519 {
		k, err = identity.FromSigner(ed25519.NewKeyFromSeed(seed))
	} else {
		var priv *ecdsa.PrivateKey
		priv, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), seed)
		if err == nil {
			k, err = identity.FromSigner(priv)
		}
	}
	if err != nil {
		t.Fatalf("seeded %v key: %v", alg, err)
	}
	return k
}

func fptr(v float64) *float64 { return &v }

// temp returns a temperature reading.
func temp(seq uint64, v float64) Reading {
	return Reading{
		Seq:         seq,
		Time:        testTime.Add(time.Duration(seq) * time.Second),
		ContentType: "temperature/celsius",
		Value:       fptr(v),
	}
}

// mustSign signs readings or fails the test.
func mustSign(t testing.TB, k *identity.Key, id string, rs ...Reading) []byte {
	t.Helper()
	b, err := Sign(k, id, rs...)
	if err != nil {
		t.Fatalf("Sign() error = %v", err)
	}
	return b
}

// mustDecode decodes an envelope or fails the test.
func mustDecode(t testing.TB, b []byte) *Envelope {
	t.Helper()
	e, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	return e
}

// signPayload signs an arbitrary payload as a reading envelope would be.
func signPayload(t testing.TB, k *identity.Key, kid string, payload []byte) []byte {
	t.Helper()
	b, err := identity.SignCOSE(k, kid, payload, []byte(ExternalAAD))
	if err != nil {
		t.Fatalf("SignCOSE() error = %v", err)
	}
	return b
}

// encode encodes v deterministically or fails the test.
func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cdc.enc.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %T: %v", v, err)
	}
	return b
}
