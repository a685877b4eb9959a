package ledger

import (
	"encoding/json"
	"testing"

	"github.com/thingnet/thingnet/record"
)

// FuzzParseGenesis decodes arbitrary app_state JSON: what is accepted
// re-encodes to a state that parses to the same thing (a genesis every
// node reads the same way).
func FuzzParseGenesis(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"orgs":[{"id":"acme","admins":["did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"]}]}`))
	f.Add([]byte(`{"orgs":[{"id":"acme","admins":[]}],"devices":[{"id":"x","org":"acme"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		g, err := ParseGenesis(raw)
		if err != nil {
			return
		}
		again, err := json.Marshal(g)
		if err != nil {
			t.Fatalf("an accepted genesis does not encode: %v", err)
		}
		g2, err := ParseGenesis(again)
		if err != nil {
			t.Fatalf("an accepted genesis, re-encoded, is refused: %v", err)
		}
		if third, _ := json.Marshal(g2); string(third) != string(again) {
			t.Fatalf("re-encoding changed the genesis: %s vs %s", again, third)
		}
	})
}

// FuzzParsePrincipalResource parses grant principals and resources: what
// parses prints back as the same text.
func FuzzParsePrincipalResource(f *testing.F) {
	for _, s := range []string{"org:acme", "device:did:key:z6Mk", "org:acme/topic/t", "device:x", "org:", ":x", "org:a/file/b", "other:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := record.ParsePrincipal(s); err == nil {
			if p.String() != s {
				t.Fatalf("principal %q prints as %q", s, p.String())
			}
		}
		if r, err := record.ParseResource(s); err == nil {
			if r.String() != s {
				t.Fatalf("resource %q prints as %q", s, r.String())
			}
		}
	})
}
