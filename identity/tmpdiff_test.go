package identity

import (
	"bytes"
	"testing"

	"github.com/veraison/go-cose"
)

func FuzzTmpDiff(f *testing.F) {
	for _, alg := range allAlgs() {
		k := mustKey(f, alg)
		b, _ := SignCOSE(k, k.ID(), []byte("x"), nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeSign1(b)
		if err != nil {
			return
		}
		var gm cose.Sign1Message
		if err := gm.UnmarshalCBOR(append([]byte{0xd2}, encodeSign1(m)[1:]...)); err != nil {
			t.Fatalf("go-cose rejects %x: %v", b, err)
		}
		if !bytes.Equal(gm.Payload, m.Payload) || !bytes.Equal(gm.Signature, m.Signature) {
			t.Fatalf("differ")
		}
	})
}
