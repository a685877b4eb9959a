package message

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// TestExchangeRoot: every message of exchanges of 1..40 messages proves
// into the root with the transparency-dev verifier; a message that was
// not in the exchange does not.
func TestExchangeRoot(t *testing.T) {
	for n := 1; n <= 40; n++ {
		var hs [][]byte
		for i := range n {
			h := sha256.Sum256([]byte(fmt.Sprint(i)))
			hs = append(hs, h[:])
		}
		root, err := ExchangeRoot(hs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			p, err := ExchangeInclusion(hs, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(n), rfc6962.DefaultHasher.HashLeaf(hs[i]), p, root); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			other := sha256.Sum256([]byte("not sent"))
			if proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(n), rfc6962.DefaultHasher.HashLeaf(other[:]), p, root) == nil {
				t.Fatalf("n=%d i=%d: a message not in the exchange proved", n, i)
			}
		}
	}
	if _, err := ExchangeRoot(nil); err == nil {
		t.Fatal("empty exchange")
	}
}
