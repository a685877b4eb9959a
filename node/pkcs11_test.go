//go:build cgo

package node

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/identity/pkcs11"
)

// gateway.key may be a PKCS#11 token URI: the node signs with the key in
// the token (SoftHSM2 here); a malformed URI says what is wrong.
func TestGatewayKeyPKCS11(t *testing.T) {
	const module = "/usr/lib/softhsm/libsofthsm2.so"
	if _, err := os.Stat(module); err != nil {
		t.Skip("no SoftHSM2 (apt-get install softhsm2)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "gw", "--pin", "1234", "--so-pin", "12345678").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v: %s", err, out)
	}
	uri := "pkcs11:token=gw;object=gateway?module-path=" + module + "&pin-value=1234"
	k, tok, err := pkcs11.Generate(uri, identity.P256)
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()

	c := DefaultConfig()
	c.Gateway.Key = uri
	n := &Node{home: t.TempDir()}
	got, err := n.gatewayKey(c)
	if err != nil || got.ID() != k.ID() || n.keyToken == nil {
		t.Fatalf("gateway.key %s: %v", uri, err)
	}
	if _, err := got.Sign([]byte("an anchor")); err != nil {
		t.Fatal(err)
	}
	n.keyToken.Close()
	c.Gateway.Key = "pkcs11:token=gw;object=gateway;pin=1234"
	if _, err := (&Node{home: t.TempDir()}).gatewayKey(c); !errors.Is(err, pkcs11.ErrBadURI) {
		t.Errorf("a malformed URI: %v", err)
	}
}
