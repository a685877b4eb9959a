package mqtt

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/internal/testutil"
)

// mosquitto runs the Debian mosquitto-clients tools against a test broker.
type mosquitto struct {
	t          *testing.T
	e          *env
	host, port string
}

// needMosquitto skips the test when mosquitto_pub and mosquitto_sub are not
// installed.
func needMosquitto(t *testing.T, e *env) *mosquitto {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: install the Debian package mosquitto-clients to run the real-client tests", tool)
		}
	}
	host, port, err := net.SplitHostPort(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	return &mosquitto{t: t, e: e, host: host, port: port}
}

// password is the device's token as command-line clients pass it.
func (m *mosquitto) password(dev string) string {
	return base64.RawURLEncoding.EncodeToString(m.e.auth.token(dev))
}

// command returns the tool's command line for the broker; args follow the
// connection options.
func (m *mosquitto) command(ctx context.Context, tool, version string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, tool, append([]string{"-h", m.host, "-p", m.port, "-V", version}, args...)...)
}

// run runs a tool to its end and returns its output and whether it exited 0.
func (m *mosquitto) run(tool, version string, args ...string) (string, bool) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := m.command(ctx, tool, version, args...).CombinedOutput()
	if ctx.Err() != nil {
		m.t.Fatalf("%s %s timed out; output: %s", tool, strings.Join(args, " "), out)
	}
	return string(out), err == nil
}

// TestMosquittoPublish checks mosquitto_pub, 3.1.1 and 5: accepted with a
// valid token, refused with the right reason otherwise.
func TestMosquittoPublish(t *testing.T) {
	e := startBroker(t, nil)
	m := needMosquitto(t, e)
	expired := base64.RawURLEncoding.EncodeToString(fakeToken(e.auth.secret, devA, time.Now().Add(-time.Minute)))
	forged := base64.RawURLEncoding.EncodeToString(fakeToken([]byte("forger"), devA, time.Now().Add(time.Hour)))
	tests := []struct {
		name    string
		version string
		args    []string
		ok      bool   // exit status 0
		output  string // in the output
		stored  string // payload stored for devA, if any
	}{
		{"valid v3.1.1 qos 1", "mqttv311", []string{"-i", devA, "-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devA), "-m", "r1"}, true, "", "r1"},
		{"valid v5 qos 1, no client id", "mqttv5", []string{"-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devA), "-m", "r2"}, true, "", "r2"},
		{"valid v5 qos 2", "mqttv5", []string{"-u", devA, "-P", m.password(devA), "-q", "2", "-t", ReadingsTopic(devA), "-m", "r3"}, true, "", "r3"},
		{"valid v3.1.1 qos 0", "mqttv311", []string{"-u", devA, "-P", m.password(devA), "-t", ReadingsTopic(devA), "-m", "r4"}, true, "", "r4"},
		{"forged v3.1.1", "mqttv311", []string{"-u", devA, "-P", forged, "-q", "1", "-t", ReadingsTopic(devA), "-m", "x"}, false, "bad user name or password", ""},
		{"forged v5", "mqttv5", []string{"-u", devA, "-P", forged, "-q", "1", "-t", ReadingsTopic(devA), "-m", "x"}, false, "Bad User Name or Password", ""},
		{"expired v3.1.1", "mqttv311", []string{"-u", devA, "-P", expired, "-t", ReadingsTopic(devA), "-m", "x"}, false, "bad user name or password", ""},
		{"expired v5", "mqttv5", []string{"-u", devA, "-P", expired, "-t", ReadingsTopic(devA), "-m", "x"}, false, "Bad User Name or Password", ""},
		{"other device's token v3.1.1", "mqttv311", []string{"-u", devA, "-P", m.password(devB), "-t", ReadingsTopic(devA), "-m", "x"}, false, "bad user name or password", ""},
		{"other device's token v5", "mqttv5", []string{"-u", devA, "-P", m.password(devB), "-t", ReadingsTopic(devA), "-m", "x"}, false, "Bad User Name or Password", ""},
		{"revoked v3.1.1", "mqttv311", []string{"-u", devRevoked, "-P", m.password(devRevoked), "-t", ReadingsTopic(devRevoked), "-m", "x"}, false, "not authorised", ""},
		{"revoked v5", "mqttv5", []string{"-u", devRevoked, "-P", m.password(devRevoked), "-t", ReadingsTopic(devRevoked), "-m", "x"}, false, "Not authorized", ""},
		{"other device's topic v3.1.1", "mqttv311", []string{"-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devB), "-m", "x"}, false, "", ""},
		{"other device's topic v5", "mqttv5", []string{"-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devB), "-m", "x"}, true, "Publish 1 failed: Not authorized", ""},
		{"rejected reading v3.1.1", "mqttv311", []string{"-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devA), "-m", "bad 1"}, false, "connection was lost", ""},
		{"rejected reading v5", "mqttv5", []string{"-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devA), "-m", "bad 2"}, true, "Publish 1 failed: Payload format invalid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := m.run("mosquitto_pub", tt.version, tt.args...)
			if ok != tt.ok || !strings.Contains(out, tt.output) {
				t.Fatalf("mosquitto_pub exited ok=%v with %q; want ok=%v and %q", ok, out, tt.ok, tt.output)
			}
			if tt.stored != "" { // QoS 0: mosquitto_pub may exit before the broker stored it
				testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "reading "+tt.stored+" stored", func() bool { return e.ingest.has(devA, tt.stored) })
			}
		})
	}
	if n := e.ingest.count(devA) + e.ingest.count(devB) + e.ingest.count(devRevoked); n != 4 {
		t.Errorf("%d readings stored; want the 4 valid ones", n)
	}
}

// TestMosquittoAckAfterIngest: mosquitto_pub -q 1 does not finish while
// Ingest blocks, and gets its PUBACK once it returns.
func TestMosquittoAckAfterIngest(t *testing.T) {
	e := startBroker(t, nil)
	m := needMosquitto(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := m.command(ctx, "mosquitto_pub", "mqttv311", "-d", "-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devA), "-m", "block me")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-e.ingest.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Ingest was not called")
	}
	select {
	case err := <-exited:
		t.Fatalf("mosquitto_pub finished (%v) while Ingest was blocked: %s", err, out.String())
	case <-time.After(300 * time.Millisecond):
	}
	e.ingest.release <- struct{}{}
	if err := <-exited; err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out.String())
	}
	if !strings.Contains(out.String(), "received PUBACK") || !e.ingest.has(devA, "block me") {
		t.Fatalf("want a PUBACK and the reading stored; output: %s", out.String())
	}
}

// TestMosquittoSubscribe checks mosquitto_sub: a granted device follows
// another's readings; "#" is denied.
func TestMosquittoSubscribe(t *testing.T) {
	e := startBroker(t, nil)
	m := needMosquitto(t, e)
	e.acl.grant(devB, ReadingsTopic(devA))

	out, _ := m.run("mosquitto_sub", "mqttv5", "-u", devB, "-P", m.password(devB), "-t", "#", "-W", "5")
	if !strings.Contains(out, "All subscription requests were denied") {
		t.Errorf("mosquitto_sub -t '#': %q; want the subscription denied", out)
	}

	for _, version := range []string{"mqttv311", "mqttv5"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var buf bytes.Buffer
		sub := m.command(ctx, "mosquitto_sub", version, "-u", devB, "-P", m.password(devB), "-t", ReadingsTopic(devA), "-q", "1", "-C", "1", "-v")
		sub.Stdout, sub.Stderr = &buf, &buf
		before := e.b.Stats().SubscribesAccepted
		if err := sub.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "mosquitto_sub to subscribe", func() bool { return e.b.Stats().SubscribesAccepted > before })
		if out, ok := m.run("mosquitto_pub", version, "-u", devA, "-P", m.password(devA), "-q", "1", "-t", ReadingsTopic(devA), "-m", "21.4 "+version); !ok {
			t.Fatalf("mosquitto_pub: %s", out)
		}
		err := sub.Wait()
		cancel()
		if want := ReadingsTopic(devA) + " 21.4 " + version; err != nil || strings.TrimSpace(buf.String()) != want {
			t.Errorf("mosquitto_sub %s: %v, output %q; want %q", version, err, buf.String(), want)
		}
	}
}
