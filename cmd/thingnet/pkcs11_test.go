//go:build cgo

package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	// One SoftHSM configuration for the process: the CLI keeps its
	// token open, so the module stays loaded with it (-count=2).
	hsmOnce.Do(func() { hsmErr = initHSM() })
	if hsmErr != nil {
		t.Fatal(hsmErr)
	}
	var b [4]byte
	rand.Read(b[:])
	obj := fmt.Sprintf("sensor-%x", b)
	uri := "pkcs11:token=cli;object=" + obj + "?module-path=" + module + "&pin-value=1234"
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

var (
	hsmOnce sync.Once
	hsmErr  error
)

// initHSM makes a SoftHSM2 configuration and a token "cli" for the test
// process (SOFTHSM2_CONF, read when the module is first loaded).
func initHSM() error {
	dir, err := os.MkdirTemp("", "thingnet-cli-softhsm")
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\n"), 0o600); err != nil {
		return err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "cli", "--pin", "1234", "--so-pin", "12345678").CombinedOutput(); err != nil {
		return fmt.Errorf("softhsm2-util: %v: %s", err, out)
	}
	return nil
}
