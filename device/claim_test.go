package device

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

var claimNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func claimSeeds(t testing.TB) []string {
	var out []string
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.P256} {
		k, err := identity.GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewClaimCode(k, "thingnet-devnet", "demo", claimNow, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestClaimCode(t *testing.T) {
	k, _ := identity.GenerateKey(identity.Ed25519)
	code, err := NewClaimCode(k, "thingnet-devnet", "demo", claimNow, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("claim code (%d characters): %s", len(code), code)
	for _, r := range code {
		if !strings.ContainsRune("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", r) {
			t.Fatalf("%q is not in the QR alphanumeric set", r)
		}
	}
	// Typed in lower case and groups of four, it reads the same.
	var typed strings.Builder
	for i, r := range strings.ToLower(code) {
		if i > 0 && i%4 == 0 {
			typed.WriteByte(' ')
		}
		typed.WriteRune(r)
	}
	c, err := ParseClaimCode(typed.String())
	if err != nil {
		t.Fatal(err)
	}
	if c.Device != k.ID() || c.Org != "demo" || c.ChainID != "thingnet-devnet" || !c.Expiry.Equal(claimNow.Add(15*time.Minute)) {
		t.Errorf("claim = %+v", c)
	}
	if err := c.Check("thingnet-devnet", "demo", claimNow); err != nil {
		t.Error(err)
	}
	for name, err := range map[string]error{
		"expired":   c.Check("thingnet-devnet", "demo", claimNow.Add(time.Hour)),
		"other org": c.Check("thingnet-devnet", "acme", claimNow),
		"other net": c.Check("other", "demo", claimNow),
	} {
		if !errors.Is(err, ErrBadClaimCode) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// One character changed anywhere is refused.
	for i := len(ClaimPrefix); i < len(code); i += 7 {
		b := []byte(code)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, err := ParseClaimCode(string(b)); err == nil {
			t.Errorf("code with character %d changed was accepted", i)
		}
	}
	if m := c.Register("sensor", "", nil); m.ValidateBasic() != nil || m.Device != k.ID() {
		t.Errorf("register message: %+v: %v", m, m.ValidateBasic())
	}
}

// FuzzParseClaimCode: the decoder never panics, and what it accepts
// encodes back to the same bytes with signatures that verify.
func FuzzParseClaimCode(f *testing.F) {
	for _, s := range claimSeeds(f) {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(strings.ToLower(s))
	}
	f.Add("TNC1")
	f.Add("TNC1AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseClaimCode(s)
		if err != nil {
			if !errors.Is(err, ErrBadClaimCode) {
				t.Fatalf("error %v does not wrap ErrBadClaimCode", err)
			}
			return
		}
		if c.Key.DID() != c.Device || len(c.Nonce) != claimNonce {
			t.Fatalf("accepted %+v", c)
		}
		if err := c.Key.Verify(ClaimMessage(c.ChainID, c.Org, c.Device, c.Nonce, c.Expiry.Unix()), c.Sig); err != nil {
			t.Fatal(err)
		}
	})
}
