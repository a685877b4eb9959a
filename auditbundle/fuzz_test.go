package auditbundle

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/thingnet/thingnet/lightclient"
)

// FuzzDecode: Decode never panics, what it accepts encodes back to the
// same bytes, and Verify of it (from its own first header) never panics.
// The corpus under testdata/fuzz/FuzzDecode holds a real devnet bundle
// (THINGNET_WRITE_FUZZ_SEED=1 go test -run TestExportVerify rewrites it).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"format":"thingnet-audit-bundle","version":1}`))
	f.Add([]byte(`{"format":"thingnet-audit-bundle","version":1,"chain_id":"c","created":0,"org":"o","from":0,"to":0,"state_height":1,"trust_height":2,"headers":[],"proofs":[],"anchors":[],"devices":[],"readings":[]}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			return
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded bundle encodes to other bytes (%v)", err)
		}
		if len(b.Headers) == 0 {
			return
		}
		h := &b.Headers[0]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		Verify(ctx, b, VerifyOptions{Trust: lightclient.TrustOptions{Height: h.Height(), Hash: h.SignedHeader.Hash()}, Workers: 1})
	})
}
