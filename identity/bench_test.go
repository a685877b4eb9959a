package identity

import (
	"crypto/ed25519"
	"fmt"
	"testing"
)

// signed is a key, a message and its signature.
type signed struct {
	key      *Key
	msg, sig []byte
}

func signN(b *testing.B, alg Algorithm, n int) []signed {
	b.Helper()
	out := make([]signed, n)
	for i := range out {
		k := mustKey(b, alg)
		msg := fmt.Appendf(nil, "transaction %d: set temperature threshold", i)
		sig, err := k.Sign(msg)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = signed{k, msg, sig}
	}
	return out
}

func BenchmarkVerify(b *testing.B) {
	ed := signN(b, Ed25519, 1024)
	edPub := make([]PublicKey, len(ed))
	for i, s := range ed {
		edPub[i] = s.key.Public()
	}
	p256 := signN(b, P256, 1)[0]
	p256Pub := p256.key.Public()

	b.Run("ed25519/stdlib", func(b *testing.B) {
		pub := ed[0].key.Public().CryptoPublicKey().(ed25519.PublicKey)
		for b.Loop() {
			if !ed25519.Verify(pub, ed[0].msg, ed[0].sig) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("ed25519/voi", func(b *testing.B) {
		for b.Loop() {
			if err := edPub[0].Verify(ed[0].msg, ed[0].sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{64, 1024} {
		b.Run(fmt.Sprintf("ed25519/batch%d", n), func(b *testing.B) {
			for b.Loop() {
				batch := NewBatch(n)
				for i, s := range ed[:n] {
					batch.Add(edPub[i], s.msg, s.sig)
				}
				if all, _ := batch.Verify(); !all {
					b.Fatal("invalid")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
		})
	}
	b.Run("p256", func(b *testing.B) {
		for b.Loop() {
			if err := p256Pub.Verify(p256.msg, p256.sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeSign1(b *testing.B) {
	k := mustKey(b, Ed25519)
	msg, err := SignCOSE(k, k.ID(), make([]byte, 256), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSign1(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDID(b *testing.B) {
	for _, alg := range allAlgs() {
		did := mustKey(b, alg).ID()
		b.Run(alg.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseDID(did); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
