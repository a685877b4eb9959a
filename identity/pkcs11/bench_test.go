//go:build cgo

package pkcs11_test

import (
	"testing"

	"github.com/thingnet/thingnet/identity"
	tnpkcs11 "github.com/thingnet/thingnet/identity/pkcs11"
)

// BenchmarkSign is what a signature costs with a key in a SoftHSM2 token
// (P-256 through crypto11, a PKCS#11 session per call; Ed25519 through
// the token's own session with CKM_EDDSA; the signature checked by
// identity.Key before it is returned) next to the same algorithm's file
// key, in the same run: docs/benchmarks.md ("PKCS#11 keys").
func BenchmarkSign(b *testing.B) {
	token(b)
	tokenKey := func(alg identity.Algorithm) *identity.Key {
		uri := keyURI("bench", "sign-"+alg.String())
		k, tok, err := tnpkcs11.Open(uri)
		if err != nil {
			if k, tok, err = tnpkcs11.Generate(uri, alg); err != nil {
				b.Fatal(err)
			}
		}
		b.Cleanup(func() { tok.Close() })
		return k
	}
	p256, _ := identity.GenerateKey(identity.P256)
	ed, _ := identity.GenerateKey(identity.Ed25519)
	msg := make([]byte, 120) // about a reading envelope's Sig_structure
	for _, c := range []struct {
		name string
		k    *identity.Key
	}{{"softhsm2-p256", tokenKey(identity.P256)}, {"file-p256", p256},
		{"softhsm2-ed25519", tokenKey(identity.Ed25519)}, {"file-ed25519", ed}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.k.Sign(msg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
		})
	}
}
