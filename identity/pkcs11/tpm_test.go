//go:build cgo

package pkcs11_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/identity"
	tnpkcs11 "github.com/thingnet/thingnet/identity/pkcs11"
	"github.com/thingnet/thingnet/reading"
)

// tpm2Module is Debian's tpm2-pkcs11 module (libtpm2-pkcs11-1): a TPM 2.0
// behind PKCS#11.
const tpm2Module = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"

// tpmTools are the programs a software TPM with a PKCS#11 token needs.
var tpmTools = []string{"swtpm", "tpm2-abrmd", "dbus-daemon", "tpm2_ptool", "tpm2_getcap"}

// A P-256 key made in a TPM 2.0 (swtpm, a software TPM, reached through
// tpm2-pkcs11 and the tpm2-abrmd resource manager) signs a reading that
// verifies under the key's did:key; the key opens again by its URI. The
// same code path as any token: the URI names the TPM's module. Three
// daemons and about 20 s: THINGNET_E2E=1 (scripts/e2e) runs it.
func TestTPMKey(t *testing.T) {
	if os.Getenv("THINGNET_E2E") != "1" {
		t.Skip("starts a software TPM (swtpm, tpm2-abrmd, a D-Bus session): run it with THINGNET_E2E=1 (scripts/e2e -run TestTPMKey)")
	}
	for _, p := range tpmTools {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%v (apt-get install swtpm tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools; scripts/e2e installs them)", err)
		}
	}
	if _, err := os.Stat(tpm2Module); err != nil {
		t.Skipf("%v (apt-get install libtpm2-pkcs11-1)", err)
	}
	startTPM(t, "tpm")
	uri := "pkcs11:token=tpm;object=" + unique("device") + "?module-path=" + tpm2Module + "&pin-value=" + userPIN
	k, tok, err := tnpkcs11.Generate(uri, identity.P256)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if k.Alg() != identity.P256 || !strings.HasPrefix(k.ID(), "did:key:zDn") {
		t.Fatalf("a %v key %s", k.Alg(), k.ID())
	}
	v := 21.5
	raw, err := reading.Sign(k, k.ID(), reading.Reading{Seq: 1, Time: time.UnixMilli(1e12), ContentType: "temperature/celsius", Value: &v})
	if err != nil {
		t.Fatalf("a reading signed in the TPM: %v", err)
	}
	env, err := reading.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Verify(k.Public()); err != nil || env.Signer() != k.ID() {
		t.Fatalf("the TPM's reading: signer %s, %v", env.Signer(), err)
	}
	k2, tok2, err := tnpkcs11.Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	if k2.ID() != k.ID() {
		t.Errorf("opened %s; made %s", k2.ID(), k.ID())
	}
	if _, err := identity.MarshalPrivateKey(k); err == nil {
		t.Error("a TPM key was exported as PKCS#8")
	}
}

// startTPM starts a software TPM 2.0 in a temporary directory — swtpm on
// loopback, tpm2-abrmd (the resource manager, which tpm2-pkcs11 needs on
// a TPM without the kernel's) on a D-Bus session bus of its own — and
// makes a tpm2-pkcs11 token labelled label with userPIN. It points the
// module at them through the environment and stops them at the end.
func startTPM(t *testing.T, label string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	daemon := func(name string, env []string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), env...)
		log, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(log.Name())
				t.Logf("%s's log:\n%s", name, b)
			}
		})
		return cmd
	}
	// D-Bus: its address is the first line it prints.
	bus := exec.CommandContext(ctx, "dbus-daemon", "--session", "--nofork", "--print-address=1")
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon's address: %v", err)
	}
	busEnv := "DBUS_SESSION_BUS_ADDRESS=" + strings.TrimSpace(addr)

	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	// The swtpm TCTI reaches the control channel at the server's port + 1.
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	port, ctrl := strconv.Itoa(base), strconv.Itoa(base+1)
	daemon("swtpm", nil, "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--server", "type=tcp,bindaddr=127.0.0.1,port="+port, "--ctrl", "type=tcp,bindaddr=127.0.0.1,port="+ctrl,
		"--flags", "not-need-init,startup-clear")
	waitFor(ctx, t, "swtpm listening", func() error {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err
	})
	daemon("tpm2-abrmd", []string{busEnv}, "--session", "--allow-root", "--flush-all", "--tcti=swtpm:host=127.0.0.1,port="+port)

	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{busEnv, "TPM2TOOLS_TCTI=tabrmd:bus_type=session", "TPM2_PKCS11_TCTI=tabrmd:bus_type=session", "TPM2_PKCS11_STORE=" + store}
	ptool := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "tpm2_ptool", args...)
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("tpm2_ptool %s: %v: %s", args[0], err, b)
		}
		return nil
	}
	// tpm2-abrmd takes its bus name once it has reached the TPM.
	waitFor(ctx, t, "tpm2-abrmd", func() error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "tpm2_getcap", "properties-fixed")
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, b)
		}
		return nil
	})
	if err := ptool("init", "--path="+store); err != nil {
		t.Fatal(err)
	}
	if err := ptool("addtoken", "--pid=1", "--label="+label, "--sopin="+soPIN, "--userpin="+userPIN, "--path="+store); err != nil {
		t.Fatal(err)
	}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
}

// waitFor retries f until it succeeds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
