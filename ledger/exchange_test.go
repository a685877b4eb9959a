package ledger

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

func TestExchangeAnchor(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	a := c.register(admin, "acme", identity.Ed25519)
	b := c.register(admin, "acme", identity.P256)
	root := sha256.Sum256([]byte("an exchange"))
	m := &record.ExchangeAnchor{Peer: b.ID(), Root: root[:], Count: 3}
	c.want(record.CodeUnauthorized, admin, "", m) // not a device
	c.want(record.CodeNotFound, a, "", &record.ExchangeAnchor{Peer: mustKey(t, identity.Ed25519).ID(), Root: root[:], Count: 3})
	c.want(record.CodeInvalid, a, "", &record.ExchangeAnchor{Peer: a.ID(), Root: root[:], Count: 3})
	c.must(a, "", m)
	c.want(record.CodeConflict, b, "", &record.ExchangeAnchor{Peer: a.ID(), Root: root[:], Count: 3})
	e, err := c.view().Exchange(root[:])
	if err != nil || e.By != a.ID() || e.Peer != b.ID() || e.Count != 3 || !bytes.Equal(e.Root, root[:]) || e.Height == 0 {
		t.Fatalf("exchange %+v, %v", e, err)
	}
	if code, _ := c.check(mustTx(t, a, &record.ExchangeAnchor{Peer: b.ID(), Root: root[:4], Count: 1}, c)); code != record.CodeInvalid {
		t.Fatalf("short root: %v", code)
	}
}

func mustTx(t *testing.T, k *identity.Key, m record.Msg, c *chainT) []byte {
	t.Helper()
	raw, err := record.NewTx(k, k.ID(), testChain, c.nonces[k.ID()]+1, c.height+100, m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
