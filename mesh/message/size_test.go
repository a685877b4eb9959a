package message

import (
	"testing"

	"github.com/thingnet/thingnet/identity"
)

// TestWireSizes prints the bytes of a message as docs/mesh.md lists them
// (go test -v -run TestWireSizes ./mesh/message), and checks they stay small.
func TestWireSizes(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	m := Message{Chain: "thingnet-1", From: a.ID(), To: b.ID(), Seq: 1795624318038407, Kind: KindCommand, Type: "text/plain", Body: []byte("valve 3 open")}
	plain, err := Sign(a, m)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(a, m, b.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	hk, _ := b.HybridEncryptionKey()
	hybrid, err := Seal(a, m, b.Public(), hk)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := SignReceipt(b, b.ID(), Receipt{Chain: m.Chain, By: b.ID(), Results: []Result{{Hash: make([]byte, 32)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("12-byte body: signed %d, sealed X25519 %d, sealed ML-KEM-768+X25519 %d; receipt for 1 message %d",
		len(plain), len(sealed), len(hybrid), len(rc))
	if len(plain) > 330 || len(sealed) > len(plain)+64 || len(rc) > 260 {
		t.Fatalf("sizes grew: %d %d %d", len(plain), len(sealed), len(rc))
	}
}

func mustKey(t testing.TB) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
