package firmware

import (
	"crypto/sha256"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// FuzzDecode: the manifest decoder never panics; what it accepts
// has a 32-byte digest and a positive sequence.
func FuzzDecode(f *testing.F) {
	k, _ := identity.GenerateKey(identity.Ed25519)
	sum := sha256.Sum256([]byte("x"))
	raw, err := Sign(k, k.ID(), &record.FirmwareManifest{Vendor: "acme", Class: "camera", Version: "1", Seq: 1, Digest: sum[:], Size: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := Decode(b)
		if err != nil {
			return
		}
		if len(m.Digest) != 32 || m.Seq == 0 {
			t.Fatalf("accepted %+v", m)
		}
	})
}
