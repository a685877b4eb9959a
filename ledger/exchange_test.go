package ledger

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/thingnet/thingnet/identity"
)

func TestExchangeAnchor(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	a := c.register(admin, "acme", identity.Ed25519)
	b := c.register(admin, "acme", identity.P256)
	root := sha256.Sum256([]byte("an exchange"))
	m := &ExchangeAnchor{Peer: b.ID(), Root: root[:], Count: 3}
	c.want(CodeUnauthorized, admin, "", m) // not a device
	c.want(CodeNotFound, a, "", &ExchangeAnchor{Peer: mustKey(t, identity.Ed25519).ID(), Root: root[:], Count: 3})
	c.want(CodeInvalid, a, "", &ExchangeAnchor{Peer: a.ID(), Root: root[:], Count: 3})
	c.must(a, "", m)
	c.want(CodeConflict, b, "", &ExchangeAnchor{Peer: a.ID(), Root: root[:], Count: 3})
	e, err := c.view().Exchange(root[:])
	if err != nil || e.By != a.ID() || e.Peer != b.ID() || e.Count != 3 || !bytes.Equal(e.Root, root[:]) || e.Height == 0 {
		t.Fatalf("exchange %+v, %v", e, err)
	}
	if code, _ := c.check(mustTx(t, a, &ExchangeAnchor{Peer: b.ID(), Root: root[:4], Count: 1}, c)); code != CodeInvalid {
		t.Fatalf("short root: %v", code)
	}
}

func mustTx(t *testing.T, k *identity.Key, m Msg, c *chainT) []byte {
	t.Helper()
	raw, err := NewTx(k, k.ID(), testChain, c.nonces[k.ID()]+1, c.height+100, m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
