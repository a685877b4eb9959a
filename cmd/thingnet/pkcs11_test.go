//go:build cgo

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/identity/pkcs11"
)

// --key takes a PKCS#11 token URI: `device code` makes the claim code of
// a key held in a SoftHSM2 token, signed there; a malformed URI says
// what is wrong.
func TestKeyPKCS11(t *testing.T) {
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
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "cli", "--pin", "1234", "--so-pin", "12345678").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v: %s", err, out)
	}
	uri := "pkcs11:token=cli;object=sensor?module-path=" + module + "&pin-value=1234"
	k, tok, err := pkcs11.Generate(uri, identity.P256)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()

	out, err := cli(t, "http://127.0.0.1:1", t.TempDir(), "device", "code", "--key", uri, "--org", "demo", "--chain-id", "thingnet-test")
	if err != nil || !strings.Contains(out, "device:  "+k.ID()) {
		t.Fatalf("device code --key %s: %v\n%s", uri, err, out)
	}
	if _, err := cli(t, "http://127.0.0.1:1", t.TempDir(), "device", "code", "--key", "pkcs11:token=cli;label=sensor", "--org", "demo", "--chain-id", "c"); err == nil ||
		!strings.Contains(err.Error(), `attribute "label": not an RFC 7512 attribute`) {
		t.Errorf("a malformed URI: %v", err)
	}
}
