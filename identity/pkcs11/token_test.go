//go:build cgo

package pkcs11_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/identity"
	tnpkcs11 "github.com/thingnet/thingnet/identity/pkcs11"
)

var open = tnpkcs11.Open

// algs are the algorithms a token key can have, with the start of their
// did:key ids.
var algs = []struct {
	alg    identity.Algorithm
	prefix string
}{{identity.P256, "did:key:zDn"}, {identity.Ed25519, "did:key:z6Mk"}}

// A P-256 or an Ed25519 key made on the token signs through
// identity.Key; opened again by its URI (which does not say the
// algorithm) it is the same key; its private half cannot be read out of
// the token; what the token cannot do, or a wrong URI or PIN, is an
// error that says so.
func TestTokenKey(t *testing.T) {
	token(t)
	// A wrong PIN (first: once the token is logged in, PKCS#11 keeps it so
	// for every session of the process).
	if _, _, err := tnpkcs11.Open(strings.Replace(keyURI("tk", "device"), "pin-value="+userPIN, "pin-value=0000", 1)); err == nil || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") {
		t.Errorf("a wrong PIN: %v", err)
	}
	for _, a := range algs {
		t.Run(a.alg.String(), func(t *testing.T) { testTokenKey(t, a.alg, a.prefix) })
	}
	if _, _, err := tnpkcs11.Generate(keyURI("tk", "rsa"), identity.Algorithm(-257)); err == nil || !strings.Contains(err.Error(), "p256 or ed25519") {
		t.Errorf("an RS256 key on the token: %v", err)
	}
	if _, _, err := tnpkcs11.Open(keyURI("tk", "nothing")); !errors.Is(err, tnpkcs11.ErrNoKey) {
		t.Errorf("a key that is not there: %v", err)
	}
	if _, _, err := tnpkcs11.Open(keyURI("no-such-token", "device")); err == nil || !strings.Contains(err.Error(), "no-such-token") {
		t.Errorf("a token that is not there: %v", err)
	}
	if _, _, err := tnpkcs11.Open("pkcs11:token=tk;object=device;?module-path=" + softhsmModule); !errors.Is(err, tnpkcs11.ErrBadURI) {
		t.Errorf("a malformed URI: %v", err)
	}
}

func testTokenKey(t *testing.T, alg identity.Algorithm, prefix string) {
	obj := unique("device")
	uri := keyURI("tk", obj)
	k, tok, err := tnpkcs11.Generate(uri, alg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if k.Alg() != alg || !strings.HasPrefix(k.ID(), prefix) {
		t.Fatalf("a %v key %s", k.Alg(), k.ID())
	}
	msg := []byte("a reading")
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify(msg, sig); err != nil {
		t.Fatalf("the token's signature: %v", err)
	}
	if _, err := identity.MarshalPrivateKey(k); err == nil {
		t.Error("a token key was exported as PKCS#8")
	}
	k2, tok2, err := tnpkcs11.Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	if k2.ID() != k.ID() || k2.Alg() != alg {
		t.Errorf("opened %s; made %s", k2.ID(), k.ID())
	}
	for _, other := range algs { // whatever the algorithm asked for
		if _, _, err := tnpkcs11.Generate(uri, other.alg); err == nil || !strings.Contains(err.Error(), "already holds") {
			t.Errorf("a second %v key under the same label: %v", other.alg, err)
		}
	}
	// The PIN from a file.
	pin := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pin, []byte(userPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k3, tok3, err := tnpkcs11.Open("pkcs11:token=tk;object=" + obj + "?module-path=" + softhsmModule + "&pin-source=file:" + pin)
	if err != nil || k3.ID() != k.ID() {
		t.Fatalf("with pin-source: %v", err)
	}
	tok3.Close()
	// The private key is sensitive and not extractable: the token does not
	// give its value, even to a process logged in with the PIN.
	out, err := runChild(t, hsm.conf, uri, "THINGNET_PKCS11_EXTRACT=1")
	if err != nil || out != "sensitive=true extractable=false value: pkcs11: 0x11: CKR_ATTRIBUTE_SENSITIVE" {
		t.Fatalf("asking the token for the private key: %v: %s", err, out)
	}
}

// A copy of a device's state and of its configuration (the URI, the PIN)
// on another machine does not let the copy sign: the key is in the
// first machine's token, and the other machine's token (even one with
// the same label and PIN) does not hold it. On the first machine, the
// same URI signs.
func TestCopyCannotSign(t *testing.T) {
	token(t)
	for _, a := range algs {
		t.Run(a.alg.String(), func(t *testing.T) { testCopyCannotSign(t, a.alg) })
	}
}

func testCopyCannotSign(t *testing.T, alg identity.Algorithm) {
	uri := keyURI("dev", unique("device"))
	k, tok, err := tnpkcs11.Generate(uri, alg)
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()

	if out, err := runChild(t, hsm.conf, uri); err != nil || out != "signed as "+k.ID() {
		t.Fatalf("on its own machine: %v: %s", err, out)
	}
	other, err := newSoftHSMIn(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.initToken("dev"); err != nil { // the same label and PIN
		t.Fatal(err)
	}
	out, err := runChild(t, other.conf, uri)
	if err == nil || !strings.Contains(out, "no such key in the token") {
		t.Fatalf("the copy on another machine: %v: %s", err, out)
	}
	t.Logf("the copy: %s", out)
}

func newSoftHSMIn(t *testing.T) (*softhsm, error) {
	return newSoftHSM(t.TempDir())
}
