package coap

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// coapClient returns the path of libcoap's coap-client (Debian package
// libcoap3-bin installs it as coap-client-notls, -gnutls and -openssl),
// skipping the test when it is not installed.
func coapClient(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"coap-client", "coap-client-notls", "coap-client-gnutls", "coap-client-openssl"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("coap-client not installed (Debian: apt-get install libcoap3-bin); skipping the real-client test")
	return ""
}

// runCoapClient POSTs file to path on e's server with coap-client and
// returns what it printed.
func runCoapClient(t *testing.T, e *env, file, path string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"-m", "post", "-f", file, "-B", "10"}, args...)
	args = append(args, "coap://"+e.srv.Addr()+path)
	out, err := exec.CommandContext(ctx, coapClient(t), args...).CombinedOutput()
	t.Logf("coap-client %s:\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "reading.cbor")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCoapClient(t *testing.T) {
	coapClient(t)
	e := start(t, nil)
	dev := newDevice(t, e.ingest)

	env := dev.reading(t)
	if out, err := runCoapClient(t, e, writeFile(t, env), PathShort); err != nil || strings.Contains(out, "4.") {
		t.Fatalf("coap-client POST of a signed reading: %v\n%s", err, out)
	}
	if !e.ingest.has(env) {
		t.Fatal("coap-client's reading was not stored")
	}

	env = dev.reading(t)
	if out, err := runCoapClient(t, e, writeFile(t, env), PathLong, "-t", "18"); err != nil || strings.Contains(out, "4.") {
		t.Fatalf("coap-client POST with content format 18: %v\n%s", err, out)
	}
	if !e.ingest.has(env) {
		t.Fatal("coap-client's reading with content format 18 was not stored")
	}

	env = dev.reading(t)
	if out, err := runCoapClient(t, e, writeFile(t, env), PathShort, "-N"); err != nil || strings.Contains(out, "4.") {
		t.Fatalf("coap-client non-confirmable POST: %v\n%s", err, out)
	}
	if !e.ingest.has(env) {
		t.Fatal("coap-client's non-confirmable reading was not stored")
	}

	out, _ := runCoapClient(t, e, writeFile(t, tamper(dev.reading(t))), PathShort)
	if !strings.Contains(out, "4.00") {
		t.Errorf("coap-client POST of a tampered reading printed %q; want 4.00", out)
	}
	out, _ = runCoapClient(t, e, writeFile(t, dev.reading(t)), "/other")
	if !strings.Contains(out, "4.04") {
		t.Errorf("coap-client POST to /other printed %q; want 4.04", out)
	}
	if n := e.ingest.storedCount(); n != 3 {
		t.Errorf("%d readings stored; want 3", n)
	}
}

func TestCoapClientBlockwise(t *testing.T) {
	coapClient(t)
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	env := dev.large(t, 2, 30<<10)
	if out, err := runCoapClient(t, e, writeFile(t, env), PathShort, "-b", "1024"); err != nil || strings.Contains(out, "4.") {
		t.Fatalf("coap-client block-wise POST of %d bytes: %v\n%s", len(env), err, out)
	}
	if !e.ingest.has(env) {
		t.Fatalf("coap-client's %d-byte reading was not stored whole", len(env))
	}
	if msgs, size := e.limits.count("addr:127.0.0.1"); msgs != 1 || size != len(env) {
		t.Errorf("Limiter charged %d messages of %d bytes for an upload of %d bytes in %d datagrams; want 1 of %d (Size1)",
			msgs, size, len(env), e.srv.Stats().Datagrams, len(env))
	}
}

func TestCoapClientRateLimited(t *testing.T) {
	coapClient(t)
	e := start(t, nil)
	e.limits.set("addr:127.0.0.1", 0)
	dev := newDevice(t, e.ingest)
	out, _ := runCoapClient(t, e, writeFile(t, dev.reading(t)), PathShort)
	if !strings.Contains(out, "4.29") {
		t.Errorf("coap-client POST over the rate printed %q; want 4.29", out)
	}
	if e.ingest.callCount() != 0 {
		t.Error("Ingest was called")
	}
}
