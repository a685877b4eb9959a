package identity

import (
	"errors"
	"testing"
)

func TestDIDCache(t *testing.T) {
	c := NewDIDCache(2)
	var ids []string
	for range 3 {
		k, err := GenerateKey(Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID())
	}
	for round := range 2 {
		for _, id := range ids {
			pub, err := c.Parse(id)
			if err != nil || pub.DID() != id {
				t.Fatalf("round %d: Parse(%s) = %v, %v", round, id, pub.DID(), err)
			}
			if len(c.m) > 2 {
				t.Fatalf("cache holds %d ids; bound is 2", len(c.m))
			}
		}
	}
	if _, err := c.Parse("did:key:zbad"); !errors.Is(err, ErrMalformed) {
		t.Errorf("Parse(bad) error = %v; want ErrMalformed", err)
	}
	if _, ok := c.m["did:key:zbad"]; ok {
		t.Errorf("a malformed id was cached")
	}
}
