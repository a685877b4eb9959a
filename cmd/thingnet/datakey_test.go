package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
)

// TestDataKeyCLI: org datakey new publishes a data key and keeps its
// private half in the keystore; a device sealing with the SDK sends a
// reading the gateway stores sealed; readings get/list --decrypt open it
// for the admin (keystore key) and, after org datakey share, for a grantee
// with only its own key; show --prove proves the key.
func TestDataKeyCLI(t *testing.T) {
	d, node, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	if out := run("org", "datakey", "new", "demo", "--key", "demo-admin"); !strings.Contains(out, `data key version 1 of "demo" (x25519): private key in the keystore as "demo.data.1"`) {
		t.Fatalf("datakey new: %s", out)
	}
	if out := run("org", "datakey", "show", "demo", "--prove"); !strings.Contains(out, "version: 1") || !strings.Contains(out, "in this keystore as demo.data.1") || !strings.Contains(out, "proof: OK") {
		t.Fatalf("datakey show: %s", out)
	}

	run("keys", "new", "sensor-s")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "sensor-s")
	k, err := identity.Keystore{Dir: ks}.Load("sensor-s", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t, 2*time.Minute)
	dev, err := device.New(k, device.WithGateways(device.Gateway{API: node}), device.WithChainID(d.ChainID()), device.WithSealing(0))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	v := 42.625
	rc, err := dev.Send(ctx, reading.Reading{ContentType: "temperature/celsius", Value: &v})
	if err != nil {
		t.Fatal(err)
	}
	idx := strconv.FormatInt(rc.Index, 10)
	testutil.WaitFor(t, ctx, "the sealed reading to be anchored", func() bool {
		out, err := cli(t, node, ks, "--identity", "demo-admin", "readings", "get", idx)
		return err == nil && strings.Contains(out, "anchor:  log size")
	})
	if out := run("--identity", "demo-admin", "readings", "get", idx); !strings.Contains(out, "sealed (x25519, data key version 1") || strings.Contains(out, "42.625") {
		t.Fatalf("readings get of a sealed reading:\n%s", out)
	}
	if out := run("--identity", "demo-admin", "readings", "get", idx, "--decrypt"); !strings.Contains(out, ": 42.625 temperature/celsius") {
		t.Fatalf("readings get --decrypt as the admin:\n%s", out)
	}
	if out := run("--identity", "demo-admin", "readings", "list", "--device", "sensor-s", "--decrypt"); !strings.Contains(out, " 42.625 temperature/celsius") {
		t.Fatalf("readings list --decrypt as the admin:\n%s", out)
	}

	// A grantee: the admin of a partner organisation, with a read grant
	// and a share of the data key, and its own key only in its keystore.
	run("keys", "new", "analyst")
	run("org", "create", "partner", "--key", "analyst")
	run("grant", "add", "--key", "demo-admin", "--grantor", "org:demo", "--subject", "org:partner", "--action", "read", "--resource", "org:demo")
	own := t.TempDir()
	b, err := os.ReadFile(filepath.Join(ks, "analyst.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(own, "analyst.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, node, own, "--identity", "analyst", "readings", "get", idx, "--decrypt"); err == nil || !strings.Contains(err.Error(), "no data key") {
		t.Fatalf("the grantee opened the reading before the share: %v\n%s", err, out)
	}
	run("org", "datakey", "share", "demo", "analyst", "--key", "demo-admin")
	if out := mustCLI(t, node, own, "--identity", "analyst", "readings", "get", idx, "--decrypt"); !strings.Contains(out, ": 42.625 temperature/celsius") {
		t.Fatalf("readings get --decrypt as the grantee:\n%s", out)
	}

	// An agreement acts on the sealed reading once the admin discloses it.
	src := filepath.Join(t.TempDir(), "watch.yaml")
	if err := os.WriteFile(src, []byte(`agreement: watch
parties:
  sensor: device
  owner: org
state:
  hot: int
transitions:
  seen:
    on: {reading: sensor, type: temperature/celsius}
    when: reading.value > 40
    do:
      - set: {hot: state.hot + 1}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run("agreement", "deploy", src, "--key", "demo-admin", "--party", "sensor=device:sensor-s", "--party", "owner=org:demo")
	id := agreementIDFrom(t, out)
	if out, err := cli(t, node, ks, "agreement", "call", id, "seen", "--key", "demo-admin", "--reading", idx); err == nil || !strings.Contains(err.Error(), "discloses") {
		t.Fatalf("a call on the sealed reading without disclosure: %v\n%s", err, out)
	}
	if out := run("agreement", "call", id, "seen", "--key", "demo-admin", "--reading", idx, "--disclose"); !strings.Contains(out, "committed") {
		t.Fatalf("a call disclosing the sealed reading:\n%s", out)
	}
}

// agreementIDFrom finds the agreement id in agreement deploy's output.
func agreementIDFrom(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		f = strings.Trim(f, "#,.:()")
		if n, err := strconv.ParseUint(f, 10, 64); err == nil && n > 0 && strings.Contains(out, "agreement "+f) {
			return f
		}
	}
	t.Fatalf("no agreement id in:\n%s", out)
	return ""
}
