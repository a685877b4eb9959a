package message

import (
	"bytes"
	"testing"

	"github.com/thingnet/thingnet/identity"
)

// FuzzDecode: any bytes decode to a checked envelope or a clear error;
// what decodes re-encodes to the same signed bytes' payload.
func FuzzDecode(f *testing.F) {
	k, _ := identity.GenerateKey(identity.Ed25519)
	to, _ := identity.GenerateKey(identity.Ed25519)
	m := Message{Chain: "c", From: k.ID(), To: to.ID(), Seq: 7, Kind: KindMessage, Body: []byte("hi")}
	env, _ := Sign(k, m)
	f.Add(env)
	sealed, _ := Seal(k, m, to.Public(), nil)
	f.Add(sealed)
	topic, _ := Sign(k, Message{Chain: "c", From: k.ID(), Topic: "acme/t", Seq: 1, Kind: KindPublish, Body: []byte{}})
	f.Add(topic)
	f.Add([]byte{0xd2, 0x84})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		if err := e.check(); err != nil {
			t.Fatalf("decoded an envelope that fails its checks: %v", err)
		}
		if !bytes.Equal(e.Raw, b) {
			t.Fatal("Raw is not the input")
		}
	})
}

// FuzzDecodeReceipt: receipts decode or fail cleanly.
func FuzzDecodeReceipt(f *testing.F) {
	k, _ := identity.GenerateKey(identity.Ed25519)
	rc, _ := SignReceipt(k, k.ID(), Receipt{Chain: "c", By: k.ID(), Results: []Result{{Hash: make([]byte, 32), Status: StatusReplay, Reason: "x"}}})
	f.Add(rc)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeReceipt(b, k.ID(), k.Public()); err == nil && r.By != k.ID() {
			t.Fatal("receipt by another signer accepted")
		}
	})
}

// FuzzReplayWindow: the binary form of a window never panics.
func FuzzReplayWindow(f *testing.F) {
	var w ReplayWindow
	w.Mark(5)
	f.Add(w.MarshalBinary())
	f.Fuzz(func(t *testing.T, b []byte) {
		var w ReplayWindow
		if w.UnmarshalBinary(b) == nil && !bytes.Equal(w.MarshalBinary(), b) {
			t.Fatal("window does not round-trip")
		}
	})
}
