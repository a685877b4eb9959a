//go:build cgo

package pkcs11_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
	tnpkcs11 "github.com/thingnet/thingnet/identity/pkcs11"
)

// softhsm is a SoftHSM2 installation of one test process: its own token
// directory and configuration (SOFTHSM2_CONF, read when the module is
// loaded), standing in for a device's secure element.
type softhsm struct {
	module string
	conf   string
	dir    string
}

const (
	userPIN = "1234"
	soPIN   = "56789012"
)

// softhsmModule is where Debian's softhsm2 puts its PKCS#11 module.
var softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

var hsm *softhsm

// TestMain makes one SoftHSM2 token directory for the whole process:
// SoftHSM reads its configuration once per load of the module.
func TestMain(m *testing.M) {
	if os.Getenv("THINGNET_PKCS11_CHILD") != "" {
		os.Exit(child())
	}
	dir, err := os.MkdirTemp("", "softhsm")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hsm, err = newSoftHSM(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "no SoftHSM2: the token tests skip:", err)
		hsm = nil
	} else {
		os.Setenv("SOFTHSM2_CONF", hsm.conf)
		// Every token before the module is loaded: SoftHSM lists its
		// slots once.
		for _, label := range tokens {
			if err := hsm.initToken(label); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newSoftHSM makes a SoftHSM2 configuration with its token directory in dir.
func newSoftHSM(dir string) (*softhsm, error) {
	if _, err := os.Stat(softhsmModule); err != nil {
		return nil, fmt.Errorf("%v (apt-get install softhsm2)", err)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return nil, fmt.Errorf("%v (apt-get install softhsm2)", err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return nil, err
	}
	return &softhsm{module: softhsmModule, conf: conf, dir: dir}, nil
}

// initToken makes a token labelled label (once: its slot is the next free one).
func (h *softhsm) initToken(label string) error {
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", userPIN, "--so-pin", soPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+h.conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return nil
}

// tokens are the tokens TestMain makes: one per test.
var tokens = []string{"tk", "dev", "devnet", "bench"}

// token skips the test when there is no SoftHSM.
func token(t testing.TB) {
	t.Helper()
	if hsm == nil {
		t.Skip("no SoftHSM2 (apt-get install softhsm2)")
	}
}

// unique makes an object label of its own for each run of a test (-count).
func unique(name string) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%x", name, b)
}

// keyURI is the URI of key object in the token labelled label.
func keyURI(label, object string) string {
	return "pkcs11:token=" + label + ";object=" + object + "?module-path=" + softhsmModule + "&pin-value=" + userPIN
}

// child runs in a process of its own (another machine: another SoftHSM
// configuration): it tries to sign with THINGNET_PKCS11_CHILD's URI, or,
// with THINGNET_PKCS11_EXTRACT set, to read the private key's value
// through the PKCS#11 API itself.
func child() int {
	uri := os.Getenv("THINGNET_PKCS11_CHILD")
	if os.Getenv("THINGNET_PKCS11_EXTRACT") != "" {
		return extract(uri)
	}
	k, tok, err := open(uri)
	if err != nil {
		fmt.Println("open:", err)
		return 3
	}
	defer tok.Close()
	if _, err := k.Sign([]byte("a reading")); err != nil {
		fmt.Println("sign:", err)
		return 4
	}
	fmt.Println("signed as", k.ID())
	return 0
}

// runChild runs child in a new process with SoftHSM configuration conf.
func runChild(t *testing.T, conf, uri string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "THINGNET_PKCS11_CHILD="+uri, "SOFTHSM2_CONF="+conf), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)), err
}

// extract logs in to the token the URI names and asks for its private
// key's attributes: it prints CKA_SENSITIVE, CKA_EXTRACTABLE and what
// the token answers for CKA_VALUE.
func extract(uri string) int {
	u, err := tnpkcs11.ParseURI(uri)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	p := pkcs11.New(softhsmModule)
	if err := p.Initialize(); err != nil {
		fmt.Println(err)
		return 2
	}
	defer p.Destroy()
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err != nil || ti.Label != u.Token {
			continue
		}
		sh, err := p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			fmt.Println(err)
			return 2
		}
		if err := p.Login(sh, pkcs11.CKU_USER, u.PINValue); err != nil {
			fmt.Println("login:", err)
			return 2
		}
		if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object)}); err != nil {
			fmt.Println(err)
			return 2
		}
		objs, _, err := p.FindObjects(sh, 2)
		p.FindObjectsFinal(sh)
		if err != nil || len(objs) != 1 {
			fmt.Println("the private key object:", err, len(objs))
			return 2
		}
		attrs, err := p.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil)})
		if err != nil || len(attrs) != 2 {
			fmt.Println("attributes:", err)
			return 2
		}
		fmt.Printf("sensitive=%v extractable=%v ", attrs[0].Value[0] == 1, attrs[1].Value[0] == 1)
		if v, err := p.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
			fmt.Printf("value=%x\n", v[0].Value)
		} else {
			fmt.Printf("value: %v\n", err)
		}
		return 0
	}
	fmt.Println("no token", u.Token)
	return 2
}
