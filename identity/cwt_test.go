package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

const testAudience = "thingnet-devnet"

// cwtNow is a fixed time for token tests.
var cwtNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// claimsMap is a claims map as a CBOR map; tests edit it to make bad tokens.
type claimsMap map[any]any

func validClaims(id string) claimsMap {
	return claimsMap{
		1: id,
		2: id,
		3: testAudience,
		4: uint64(cwtNow.Unix() + 3600),
		6: uint64(cwtNow.Unix()),
		7: bytes.Repeat([]byte{0x42}, 16),
	}
}

// signClaims signs an encoded claims map as a token with the given kid.
func signClaims(t testing.TB, k *Key, kid string, payload []byte) []byte {
	t.Helper()
	b, err := SignCOSE(k, kid, payload, nil)
	if err != nil {
		t.Fatalf("SignCOSE() error = %v", err)
	}
	return b
}

func encodeClaims(t testing.TB, c claimsMap) []byte {
	t.Helper()
	b, err := cwtCBOR.enc.Marshal(c)
	if err != nil {
		t.Fatalf("encoding claims: %v", err)
	}
	return b
}

func TestCWTRoundTrip(t *testing.T) {
	for _, alg := range allAlgs() {
		t.Run(alg.String(), func(t *testing.T) {
			k := mustKey(t, alg)
			now := cwtNow.Add(700 * time.Millisecond)
			tok, err := NewCWT(k, k.ID(), testAudience, now, time.Hour)
			if err != nil {
				t.Fatalf("NewCWT() error = %v", err)
			}
			m, c, err := ParseCWT(tok)
			if err != nil {
				t.Fatalf("ParseCWT() error = %v", err)
			}
			if m.KID != k.ID() || c.Issuer != k.ID() || c.Subject != k.ID() || c.Audience != testAudience {
				t.Errorf("ParseCWT() kid %q claims %+v", m.KID, c)
			}
			if !c.IssuedAt.Equal(cwtNow) || !c.Expiry.Equal(cwtNow.Add(time.Hour)) {
				t.Errorf("iat, exp = %v, %v; want %v, %v", c.IssuedAt, c.Expiry, cwtNow, cwtNow.Add(time.Hour))
			}
			if len(c.ID) != 16 {
				t.Errorf("cti is %d bytes, want 16", len(c.ID))
			}
			tagged := append([]byte{0xd8, 0x3d}, tok...)
			for name, b := range map[string][]byte{"tag 18": tok, "tag 61(18)": tagged} {
				got, err := VerifyCWT(b, k.Public(), testAudience, now, 0)
				if err != nil {
					t.Fatalf("%s: VerifyCWT() error = %v", name, err)
				}
				if got.Issuer != k.ID() {
					t.Errorf("%s: VerifyCWT() iss = %q", name, got.Issuer)
				}
			}
			// Two tokens never share an id.
			tok2, err := NewCWT(k, k.ID(), testAudience, now, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			_, c2, _ := ParseCWT(tok2)
			if bytes.Equal(c.ID, c2.ID) {
				t.Error("two tokens have the same cti")
			}
		})
	}
}

func TestCWTValidityPeriod(t *testing.T) {
	k := mustKey(t, Ed25519)
	tok, err := NewCWT(k, k.ID(), testAudience, cwtNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exp := cwtNow.Add(time.Hour)
	tests := []struct {
		name string
		now  time.Time
		skew time.Duration
		ok   bool
	}{
		{"at iat", cwtNow, 0, true},
		{"just before exp", exp.Add(-time.Nanosecond), 0, true},
		{"at exp", exp, 0, false},
		{"after exp", exp.Add(time.Minute), 0, false},
		{"after exp within skew", exp.Add(time.Minute), 2 * time.Minute, true},
		{"at exp + skew", exp.Add(time.Minute), time.Minute, false},
		{"before iat", cwtNow.Add(-time.Second), 0, false},
		{"before iat within skew", cwtNow.Add(-time.Minute), time.Minute, true},
		{"before iat beyond skew", cwtNow.Add(-time.Minute - time.Second), time.Minute, false},
		{"negative skew is zero", cwtNow, -time.Hour, true},
		{"negative skew at exp", exp, -time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyCWT(tok, k.Public(), testAudience, tt.now, tt.skew)
			if tt.ok && err != nil {
				t.Fatalf("VerifyCWT() error = %v; want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrTokenExpired) {
				t.Fatalf("VerifyCWT() error = %v; want ErrTokenExpired", err)
			}
		})
	}
}

func TestCWTVerifyRefuses(t *testing.T) {
	k := mustKey(t, Ed25519)
	other := mustKey(t, Ed25519)
	p256 := mustKey(t, P256)
	tok, err := NewCWT(k, k.ID(), testAudience, cwtNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A token whose payload was altered after signing: flip the last
	// byte of the cti (the payload ends 64+2 bytes before the end).
	tampered := bytes.Clone(tok)
	tampered[len(tampered)-67] ^= 1

	mismatch := func(kid, iss, sub string) []byte {
		c := validClaims(iss)
		c[2] = sub
		return signClaims(t, k, kid, encodeClaims(t, c))
	}
	tests := []struct {
		name     string
		tok      []byte
		pub      PublicKey
		audience string
		want     error
	}{
		{"other audience", tok, k.Public(), "thingnet-mainnet", ErrTokenAudience},
		{"other key", tok, other.Public(), testAudience, ErrBadSignature},
		{"other algorithm", tok, p256.Public(), testAudience, ErrBadSignature},
		{"tampered claims", tampered, k.Public(), testAudience, ErrBadSignature},
		{"kid differs from iss", mismatch(other.ID(), k.ID(), k.ID()), k.Public(), testAudience, ErrMalformed},
		{"sub differs from iss", mismatch(k.ID(), k.ID(), other.ID()), k.Public(), testAudience, ErrMalformed},
		{"empty", nil, k.Public(), testAudience, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyCWT(tt.tok, tt.pub, tt.audience, cwtNow, 0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyCWT() error = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestNewCWTRefuses(t *testing.T) {
	k := mustKey(t, Ed25519)
	tests := []struct {
		name     string
		key      *Key
		id, aud  string
		now      time.Time
		lifetime time.Duration
	}{
		{"nil key", nil, k.ID(), testAudience, cwtNow, time.Hour},
		{"empty id", k, "", testAudience, cwtNow, time.Hour},
		{"long id", k, strings.Repeat("d", 257), testAudience, cwtNow, time.Hour},
		{"empty audience", k, k.ID(), "", cwtNow, time.Hour},
		{"invalid UTF-8 audience", k, k.ID(), "\xff", cwtNow, time.Hour},
		{"zero lifetime", k, k.ID(), testAudience, cwtNow, 0},
		{"lifetime over the maximum", k, k.ID(), testAudience, cwtNow, MaxCWTLifetime + time.Second},
		{"before 1970", k, k.ID(), testAudience, time.Unix(-10, 0), time.Hour},
		{"after 9999", k, k.ID(), testAudience, time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC), 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := NewCWT(tt.key, tt.id, tt.aud, tt.now, tt.lifetime); err == nil {
				t.Fatalf("NewCWT() = %x; want an error", tok)
			}
		})
	}
	// The maximum lifetime itself is allowed.
	tok, err := NewCWT(k, k.ID(), testAudience, cwtNow, MaxCWTLifetime)
	if err != nil {
		t.Fatalf("NewCWT(MaxCWTLifetime) error = %v", err)
	}
	if _, err := VerifyCWT(tok, k.Public(), testAudience, cwtNow, 0); err != nil {
		t.Fatalf("VerifyCWT() error = %v", err)
	}
}

func TestParseCWTMalformed(t *testing.T) {
	k := mustKey(t, Ed25519)
	id := k.ID()
	edit := func(f func(c claimsMap)) []byte {
		c := validClaims(id)
		f(c)
		return signClaims(t, k, id, encodeClaims(t, c))
	}
	raw := func(payload []byte) []byte { return signClaims(t, k, id, payload) }
	valid := edit(func(claimsMap) {})
	if _, _, err := ParseCWT(valid); err != nil {
		t.Fatalf("ParseCWT(valid) error = %v", err)
	}
	tests := []struct {
		name string
		tok  []byte
		want string // part of the error message
	}{
		{"missing iss", edit(func(c claimsMap) { delete(c, 1) }), "iss (1) is missing"},
		{"missing sub", edit(func(c claimsMap) { delete(c, 2) }), "sub (2) is missing"},
		{"missing aud", edit(func(c claimsMap) { delete(c, 3) }), "aud (3) is missing"},
		{"missing exp", edit(func(c claimsMap) { delete(c, 4) }), "exp (4) is missing"},
		{"missing iat", edit(func(c claimsMap) { delete(c, 6) }), "iat (6) is missing"},
		{"missing cti", edit(func(c claimsMap) { delete(c, 7) }), "cti (7) is missing"},
		{"iss not text", edit(func(c claimsMap) { c[1] = []byte(id) }), "claims"},
		{"aud array", edit(func(c claimsMap) { c[3] = []string{testAudience} }), "claims"},
		{"exp negative", edit(func(c claimsMap) { c[4] = -1 }), "claims"},
		{"exp float", edit(func(c claimsMap) { c[4] = 1.5e9 }), "claims"},
		{"iat text", edit(func(c claimsMap) { c[6] = "now" }), "claims"},
		{"cti text", edit(func(c claimsMap) { c[7] = "0123456789" }), "claims"},
		{"unknown claim nbf", edit(func(c claimsMap) { c[5] = uint64(cwtNow.Unix()) }), "unknown field"},
		{"text label", edit(func(c claimsMap) { c["iss"] = id }), "unknown field"},
		{"empty iss", edit(func(c claimsMap) { c[1] = "" }), "iss (1) is 0 bytes"},
		{"long aud", edit(func(c claimsMap) { c[3] = strings.Repeat("a", 257) }), "aud (3) is 257 bytes"},
		{"short cti", edit(func(c claimsMap) { c[7] = make([]byte, 7) }), "cti (7) is 7 bytes"},
		{"long cti", edit(func(c claimsMap) { c[7] = make([]byte, 17) }), "cti (7) is 17 bytes"},
		{"iat equals exp", edit(func(c claimsMap) { c[6] = c[4] }), "is not before exp"},
		{"lifetime too long", edit(func(c claimsMap) { c[4] = uint64(cwtNow.Unix()) + 86401 }), "lifetime"},
		{"huge lifetime", edit(func(c claimsMap) { c[6] = uint64(0); c[4] = uint64(cwtMaxUnix) }), "lifetime"},
		{"exp after 9999", edit(func(c claimsMap) { c[4] = uint64(cwtMaxUnix + 1) }), "after year 9999"},
		{"exp max uint64", edit(func(c claimsMap) { c[4] = uint64(1<<64 - 1) }), "after year 9999"},
		// a1 01 61 ff: {1: "\xff"}
		{"invalid UTF-8", raw(mustHex(t, "a16bffffffffffffffffffffff")), "claims"},
		{"duplicate claim", raw(mustHex(t, "a2016161016161")), "duplicate"},
		{"indefinite map", raw(mustHex(t, "bf016161ff")), "claims"},
		{"tag in claims", raw(mustHex(t, "a101c16161")), "claims"},
		{"trailing bytes", raw(append(encodeClaims(t, validClaims(id)), 0)), "extraneous"},
		{"not a map", raw(mustHex(t, "80")), "claims"},
		{"empty payload", raw(nil), "claims"},
		{"tag 61 around untagged", append([]byte{0xd8, 0x3d}, valid[1:]...), "tag 61"},
		{"tag 61 alone", []byte{0xd8, 0x3d}, "tag 61"},
		{"tag 61 not shortest", append([]byte{0xd9, 0x00, 0x3d}, valid...), "shortest"},
		{"other tag", append([]byte{0xd8, 0x3e}, valid...), "tag 62"},
		{"oversize", append(bytes.Clone(valid), make([]byte, MaxCWTSize)...), "more than 2048"},
		{"trailing after message", append(bytes.Clone(valid), 0), "after the message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseCWT(tt.tok)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseCWT() error = %v; want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCWT() error = %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCWTPassword(t *testing.T) {
	k := mustKey(t, P256)
	tok, err := NewCWT(k, k.ID(), testAudience, cwtNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := EncodeCWTPassword(tok)
	if strings.ContainsAny(s, "=+/") {
		t.Errorf("EncodeCWTPassword() = %q; want base64url without padding", s)
	}
	back, err := DecodeCWTPassword(s)
	if err != nil || !bytes.Equal(back, tok) {
		t.Fatalf("DecodeCWTPassword() = %x, %v; want the token", back, err)
	}
	for name, p := range map[string][]byte{"bytes": tok, "text": []byte(s)} {
		got, err := CWTFromPassword(p)
		if err != nil || !bytes.Equal(got, tok) {
			t.Errorf("CWTFromPassword(%s) = %x, %v; want the token", name, got, err)
		}
	}
	tagged := append([]byte{0xd8, 0x3d}, tok...)
	if got, err := CWTFromPassword(tagged); err != nil || !bytes.Equal(got, tagged) {
		t.Errorf("CWTFromPassword(tag 61) = %x, %v", got, err)
	}

	bad := map[string]string{
		"padding":           s + "==",
		"standard alphabet": strings.NewReplacer("-", "+", "_", "/").Replace(s) + "+/",
		"line break":        s[:10] + "\n" + s[10:],
		"carriage return":   s[:10] + "\r" + s[10:],
		"trailing bits":     "AB", // 'B' leaves a non-zero bit after the one byte
		"odd length":        "A",
		"space":             "AAAA AAAA",
		"too long":          strings.Repeat("A", 4000),
	}
	for name, p := range bad {
		if b, err := DecodeCWTPassword(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeCWTPassword(%s) = %x, %v; want ErrMalformed", name, b, err)
		}
	}
	if _, err := CWTFromPassword(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("CWTFromPassword(nil) error = %v; want ErrMalformed", err)
	}
}

func FuzzParseCWT(f *testing.F) {
	for _, alg := range allAlgs() {
		k := mustKey(f, alg)
		tok, err := NewCWT(k, k.ID(), testAudience, cwtNow, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
		f.Add(append([]byte{0xd8, 0x3d}, tok...))
		f.Add(tok[1:])
	}
	k := mustKey(f, Ed25519)
	f.Add(signClaims(f, k, k.ID(), mustHex(f, "a2016161016161")))
	f.Add(signClaims(f, k, k.ID(), mustHex(f, "bf016161ff")))
	f.Add([]byte{0xd8, 0x3d, 0xd2, 0x84})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, c, err := ParseCWT(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseCWT() error = %v; want ErrMalformed", err)
			}
			if m != nil || c != nil {
				t.Fatal("ParseCWT() returned a value with an error")
			}
			return
		}
		if len(b) > MaxCWTSize {
			t.Fatalf("ParseCWT() accepted %d bytes", len(b))
		}
		if c.Issuer == "" || c.Subject == "" || c.Audience == "" {
			t.Fatalf("ParseCWT() accepted empty text claims: %+v", c)
		}
		if !c.IssuedAt.Before(c.Expiry) || c.Expiry.Sub(c.IssuedAt) > MaxCWTLifetime {
			t.Fatalf("ParseCWT() accepted iat %v, exp %v", c.IssuedAt, c.Expiry)
		}
		if n := len(c.ID); n < 8 || n > 16 {
			t.Fatalf("ParseCWT() accepted a %d-byte cti", n)
		}
		// The claims re-encode, and parse again to the same claims.
		again, err := parseClaims(encodeClaims(t, claimsMap{
			1: c.Issuer, 2: c.Subject, 3: c.Audience,
			4: uint64(c.Expiry.Unix()), 6: uint64(c.IssuedAt.Unix()), 7: c.ID,
		}))
		if err != nil {
			t.Fatalf("re-encoded claims do not parse: %v", err)
		}
		if again.Issuer != c.Issuer || again.Audience != c.Audience || !again.Expiry.Equal(c.Expiry) || !bytes.Equal(again.ID, c.ID) {
			t.Fatalf("claims changed: %+v, then %+v", c, again)
		}
	})
}
