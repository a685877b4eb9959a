package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// FuzzParseBearer feeds Authorization header values to the bearer token
// decoder: it never panics, and whatever it accepts is a token whose
// claims re-parse the same; every refusal is a 401 the API answers.
func FuzzParseBearer(f *testing.F) {
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	tok, err := identity.NewCWT(k, k.ID(), "fuzz-chain", time.Unix(1_700_000_000, 0), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	good := identity.Bearer(tok)
	f.Add(good)
	f.Add("CWT " + identity.EncodeCWTPassword(tok))
	f.Add("Bearer ")
	f.Add("Bearer " + strings.Repeat("A", 600))
	f.Add(good[:len(good)-5])
	f.Add("Basic dXNlcjpwYXNz")
	f.Fuzz(func(t *testing.T, h string) {
		b, c, err := ParseBearer(h)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusUnauthorized || ae.msg == "" {
				t.Fatalf("refusal %v is not a 401 with a message", err)
			}
			return
		}
		_, c2, err := identity.ParseCWT(b)
		if err != nil || c2.Subject != c.Subject || !c2.Expiry.Equal(c.Expiry) {
			t.Fatalf("accepted a token that does not re-parse the same: %v", err)
		}
	})
}
