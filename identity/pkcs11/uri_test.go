package pkcs11_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/identity/pkcs11"
)

func TestParseURI(t *testing.T) {
	u, err := pkcs11.ParseURI("pkcs11:token=thing%20net;object=device;id=%01%A2;type=private;serial=42;slot-id=3;x-acme=1" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/thingnet/pin&x-q=2")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "thing net" || u.Object != "device" || !bytes.Equal(u.ID, []byte{1, 0xa2}) || u.Type != "private" || u.Serial != "42" ||
		u.SlotID == nil || *u.SlotID != 3 || u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" || u.PINSource != "file:/etc/thingnet/pin" ||
		u.Vendor["x-acme"] != "1" || u.Vendor["x-q"] != "2" {
		t.Fatalf("parsed %+v", u)
	}
	again, err := pkcs11.ParseURI(u.String())
	if err != nil || again.String() != u.String() {
		t.Fatalf("%s does not round-trip: %v", u, err)
	}
	if p, err := u.PIN(); err == nil {
		t.Errorf("a PIN %q from a file that is not there", p)
	}
	u, err = pkcs11.ParseURI("PKCS11:id=%41;token=t?pin-value=1234&module-name=libsofthsm2")
	if err != nil || string(u.ID) != "A" || u.PINValue != "1234" || u.ModuleName != "libsofthsm2" {
		t.Fatalf("%+v, %v", u, err)
	}
	if p, _ := u.PIN(); p != "1234" {
		t.Errorf("PIN %q", p)
	}
}

// Each malformed URI is refused, saying what is wrong (and never echoing
// a PIN).
func TestParseURIErrors(t *testing.T) {
	for uri, want := range map[string]string{
		"":                                                     `does not start with "pkcs11:"`,
		"file:/etc/key":                                        `does not start with "pkcs11:"`,
		"pkcs11:":                                              "names no token",
		"pkcs11:token=t":                                       "names no key",
		"pkcs11:object=k":                                      "names no token",
		"pkcs11:token=t;object":                                `"object" has no "="`,
		"pkcs11:token=t;object=k;object=j":                     `"object" appears twice`,
		"pkcs11:token=t;object=k%2":                            "not followed by two hex digits",
		"pkcs11:token=t;object=k%zz":                           "not followed by two hex digits",
		"pkcs11:token=t;id=":                                   `"id": empty`,
		"pkcs11:token=t;object=k;colour=blue":                  "not an RFC 7512 attribute",
		"pkcs11:token=t;object=k;pin-value=1234":               "a query attribute",
		"pkcs11:token=t?object=k":                              "a path attribute",
		"pkcs11:token=t;object=k;type=cert":                    "a signing key is type=private",
		"pkcs11:token=t;object=k;type=other":                   "want private, public",
		"pkcs11:slot-id=-1;object=k":                           "not a slot number",
		"pkcs11:slot-id=01;object=k":                           "not a slot number",
		"pkcs11:token=t;object=k?pin-value=1&pin-source=/p":    "both pin-value and pin-source",
		"pkcs11:token=t;object=k#frag":                         "no fragment",
		"pkcs11:token=t;object=k?a=1?b=2":                      `a second "?"`,
		"pkcs11:token=t;=v;object=k":                           "no name",
		"pkcs11:token=t;object=k?pin-value=s3cr3tPIN&colour=1": "not an RFC 7512 attribute",
		"pkcs11:token=t;object=k" + strings.Repeat("a", 5000):  "at most 4096",
	} {
		_, err := pkcs11.ParseURI(uri)
		if !errors.Is(err, pkcs11.ErrBadURI) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURI(%.60q) = %v; want an error saying %q", uri, err, want)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3tPIN") {
			t.Errorf("the error shows the PIN: %v", err)
		}
	}
}

func TestModule(t *testing.T) {
	u, _ := pkcs11.ParseURI("pkcs11:token=t;object=k?module-name=../evil")
	if _, err := u.Module(); err == nil || !strings.Contains(err.Error(), "module-path") {
		t.Errorf("module-name with a slash: %v", err)
	}
	u, _ = pkcs11.ParseURI("pkcs11:token=t;object=k?module-name=no-such-module-here")
	if _, err := u.Module(); err == nil || !strings.Contains(err.Error(), "no no-such-module-here.so") {
		t.Errorf("a module that is not there: %v", err)
	}
	t.Setenv("THINGNET_PKCS11_MODULE", "")
	u, _ = pkcs11.ParseURI("pkcs11:token=t;object=k")
	if _, err := u.Module(); err == nil || !strings.Contains(err.Error(), "names no module") {
		t.Errorf("no module: %v", err)
	}
}

// FuzzParseURI: any input is parsed or refused with ErrBadURI, without
// panicking, and a parsed URI round-trips through String.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=thingnet;object=device?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
		"pkcs11:serial=DECC0401648;id=%01%02;type=private",
		"pkcs11:slot-id=0;object=a%2Fb?pin-source=file:/etc/pin",
		"pkcs11:token=t;object=k;x-vendor=1?x-q=%41",
		"pkcs11:token=t;object=k%",
		"pkcs11:?",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := pkcs11.ParseURI(s)
		if err != nil {
			if !errors.Is(err, pkcs11.ErrBadURI) {
				t.Fatalf("an error that is not ErrBadURI: %v", err)
			}
			return
		}
		again, err := pkcs11.ParseURI(u.String())
		if u.PINValue != "" {
			return // String leaves the PIN out
		}
		if err != nil {
			t.Fatalf("%q parsed, its String %q does not: %v", s, u.String(), err)
		}
		if again.String() != u.String() || !bytes.Equal(again.ID, u.ID) || again.Object != u.Object || again.Token != u.Token {
			t.Fatalf("%q: %q then %q", s, u.String(), again.String())
		}
	})
}
