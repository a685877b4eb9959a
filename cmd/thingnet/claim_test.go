package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestProvisioning drives onboarding through the CLI against a devnet: a
// device's claim code claimed by an admin, a CSV bulk registration that
// reports its failures and resumes, and `device run` for one device and a
// small fleet whose readings the gateway then serves.
func TestProvisioning(t *testing.T) {
	t.Setenv("THINGNET_PASSPHRASE", "")
	home := t.TempDir()
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	d, err := devnet.Start(devnet.Config{Home: home, BasePort: base, FastBlocks: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	node, ks := d.APIURL(0), devnet.Keystore(home).Dir
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }

	// Claim: the device makes its key and code; the admin claims it.
	var code struct{ Code, Device string }
	if err := json.Unmarshal([]byte(run("device", "code", "--key", "field-1", "--org", "demo", "-o", "json")), &code); err != nil {
		t.Fatal(err)
	}
	if out := run("device", "code", "--key", "field-1", "--org", "demo", "--qr"); !strings.Contains(out, "█") || !strings.Contains(out, "TNC") {
		t.Errorf("device code --qr = %q", out)
	}
	if out := run("device", "claim", code.Code, "--key", "demo-admin", "--class", "sensor", "--label", "site=north"); !strings.Contains(out, "device.register committed") {
		t.Errorf("claim = %q", out)
	}
	if out := run("device", "show", "field-1"); !strings.Contains(out, "status:     active") || !strings.Contains(out, "site=north") {
		t.Errorf("claimed device = %q", out)
	}
	if _, err := cli(t, node, ks, "device", "claim", code.Code, "--key", "demo-admin"); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("second claim: %v; want conflict", err)
	}
	k, _ := identity.GenerateKey(identity.Ed25519)
	old, _ := device.NewClaimCode(k, d.ChainID(), "demo", time.Now().Add(-time.Hour), 15*time.Minute)
	if _, err := cli(t, node, ks, "device", "claim", old, "--key", "demo-admin"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired code: %v", err)
	}
	if _, err := cli(t, node, ks, "device", "claim", code.Code[:len(code.Code)-3]+"AAA", "--key", "demo-admin"); err == nil {
		t.Error("a mistyped code was accepted")
	}

	// CSV: key names, a did with its pop, one bad pop, one registered already.
	for _, n := range []string{"csv-1", "csv-2", "csv-3", "csv-4"} {
		run("keys", "new", n)
	}
	var pop map[string]string
	if err := json.Unmarshal([]byte(run("device", "pop", "--key", "csv-4", "--org", "demo", "-o", "json")), &pop); err != nil {
		t.Fatal(err)
	}
	stranger, _ := identity.GenerateKey(identity.Ed25519)
	badPop, _ := stranger.Sign(record.PossessionMessage(d.ChainID(), "acme", stranger.ID()))
	rows := []string{
		"id,class,labels,pop",
		"csv-1,meter,floor=1;room=a,",
		"csv-2,sensor,,",
		"csv-3,,,",
		pop["device"] + ",camera,," + pop["proof"],
		fmt.Sprintf("%s,sensor,,%x", stranger.ID(), badPop),
		"field-1,sensor,,",
	}
	csvFile := filepath.Join(t.TempDir(), "devices.csv")
	os.WriteFile(csvFile, []byte(strings.Join(rows, "\n")+"\n"), 0o600)
	out, err := cli(t, node, ks, "device", "register", "--csv", csvFile, "--key", "demo-admin", "--org", "demo")
	if err == nil || !strings.Contains(out, "registered 4, already registered 1, failed 1 (of 6 rows)") || !strings.Contains(out, "FAILED line 6") {
		t.Fatalf("csv register: %v\n%s", err, out)
	}
	if out := run("device", "show", "csv-1"); !strings.Contains(out, "room=a") || !strings.Contains(out, "class:      meter") {
		t.Errorf("csv device = %q", out)
	}
	os.WriteFile(csvFile, []byte(strings.Join(append(rows[:5:5], rows[6]), "\n")+"\n"), 0o600)
	if out := run("device", "register", "--csv", csvFile, "--key", "demo-admin", "--org", "demo"); !strings.Contains(out, "registered 0, already registered 5, failed 0") {
		t.Errorf("resumed csv register = %q", out)
	}

	// The claimed device runs with its keystore key.
	states := t.TempDir()
	if out := run("device", "run", "--name", "field-1", "--key", "field-1", "--org", "demo", "--state-dir", states, "--wake", "300ms", "--duration", "3s"); !strings.Contains(out, "field-1: sent seq") {
		t.Errorf("device run of the claimed device = %q", out)
	}
	// A new device with no admin shows a claim code and waits; once an
	// admin claims it, it starts sending.
	root := newRoot()
	var fieldOut testutil.Buffer
	root.SetOut(&fieldOut)
	root.SetErr(&fieldOut)
	root.SetArgs([]string{"--node", node, "--keystore", ks, "device", "run", "--name", "field-2", "--org", "demo", "--state-dir", states, "--wake", "300ms", "--transport", "coap"})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(rctx) }()
	var claimCode string
	for claimCode == "" {
		for _, line := range strings.Split(fieldOut.String(), "\n") {
			if f := strings.Fields(line); len(f) == 4 && f[2] == "claim" && strings.HasPrefix(f[3], device.ClaimPrefix) {
				claimCode = f[3]
			}
		}
		select {
		case err := <-done:
			t.Fatalf("device run exited: %v\n%s", err, fieldOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	run("device", "claim", claimCode, "--key", "demo-admin", "--org", "demo", "--class", "sensor")
	for !strings.Contains(fieldOut.String(), "field-2: sent seq") {
		select {
		case err := <-done:
			t.Fatalf("device run exited: %v\n%s", err, fieldOut.String())
		case <-ctx.Done():
			t.Fatalf("the claimed device never sent:\n%s", fieldOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("device run: %v", err)
	}

	// One device registered by an admin, over MQTT; then a fleet of three.
	out = run("device", "run", "--name", "solo", "--org", "demo", "--admin", "demo-admin", "--state-dir", states,
		"--transport", "mqtt", "--wake", "400ms", "--batch", "2", "--duration", "3s")
	if !strings.Contains(out, "registered in demo") || !strings.Contains(out, "2 readings, one signature") {
		t.Errorf("device run = %q", out)
	}
	out = run("device", "run", "--fleet", "3", "--class", "mixed", "--org", "demo", "--admin", "demo-admin", "--state-dir", states,
		"--wake", "400ms", "--duration", "4s")
	if !strings.Contains(out, "fleet running: 3 devices, 3 newly registered") || strings.Count(out, "sent seq") < 3 {
		t.Errorf("device run --fleet = %q", out)
	}
	c := client.New(node)
	for _, name := range []string{"solo", "device-0000", "device-0001", "device-0002"} {
		k, created, err := device.LoadOrCreateKey(filepath.Join(states, name), identity.Ed25519)
		if err != nil || created {
			t.Fatalf("%s: key %v, created %v", name, err, created)
		}
		var page struct {
			Items []struct {
				Seq         uint64 `json:"seq"`
				ContentType string `json:"content_type"`
			} `json:"items"`
		}
		if err := c.WithIdentity(&client.Identity{Key: k}).Get(ctx, "/v1/readings?device="+url.QueryEscape(k.ID()), &page); err != nil || len(page.Items) == 0 {
			t.Errorf("%s: readings through the API: %v, %d items", name, err, len(page.Items))
		}
	}
}
