package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgreementCLI drives credits and an agreement's whole life through the
// CLI against a one-validator devnet.
func TestAgreementCLI(t *testing.T) {
	d, node, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := cli(t, node, ks, args...)
		if err == nil || !strings.Contains(err.Error()+out, want) {
			t.Fatalf("thingnet %s: %v\n%s\nwant an error containing %q", strings.Join(args, " "), err, out, want)
		}
	}
	for _, k := range []string{"ev-1", "charger-1", "acme-admin"} {
		run("keys", "new", k)
	}
	run("org", "create", "acme", "--key", "acme-admin")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "ev-1", "--class", "vehicle")
	run("device", "register", "--key", "acme-admin", "--org", "acme", "--device-key", "charger-1", "--class", "charger")

	// Credits: a governance mint approved by the validator, then a transfer.
	approval := filepath.Join(t.TempDir(), "mint.json")
	out := run("credits", "approve-mint", "--home", d.NodeHome(0), "--chain-id", d.ChainID(), "--seq", "1", "--to", "org:demo", "--amount", "1000")
	if err := os.WriteFile(approval, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	run("credits", "mint", approval, "--key", "demo-admin")
	run("credits", "transfer", "--key", "demo-admin", "--from", "org:demo", "--to", "device:ev-1", "--amount", "100")
	if out := run("credits", "balance", "device:ev-1"); !strings.Contains(out, "holds 100 credits") {
		t.Errorf("credits balance = %q", out)
	}

	doc := filepath.Join("..", "..", "examples", "agreements", "charging.yaml")
	parties := []string{"--party", "ev=device:ev-1", "--party", "charger=device:charger-1", "--party", "operator=org:acme"}
	// A malformed document is refused before anything is sent, with its line.
	src, _ := os.ReadFile(doc)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(src), "amount: args.price", "amount: args.nope", 1)), 0o600)
	fails("line 22, column 36: transitions.reserve.do[0].escrow.amount", append([]string{"agreement", "deploy", bad, "--key", "demo-admin"}, parties...)...)
	if out := run(append([]string{"agreement", "dry-run", "--file", doc, "--signer", "demo-admin"}, parties...)...); !strings.Contains(out, "would succeed") || !strings.Contains(out, `status = idle`) {
		t.Errorf("dry-run of a deploy = %q", out)
	}
	if out := run(append([]string{"agreement", "deploy", doc, "--key", "demo-admin"}, parties...)...); !strings.Contains(out, "agreement 1 deployed") || !strings.Contains(out, "proposed") {
		t.Fatalf("deploy = %q", out)
	}
	run("agreement", "accept", "1", "--key", "acme-admin")
	reserve := []string{"--arg", "slot=3", "--arg", "price=30", "--arg", "blocks=500"}
	out = run(append([]string{"agreement", "dry-run", "1", "reserve", "--signer", "ev-1"}, reserve...)...)
	if !strings.Contains(out, "escrow 30 credits device:") || !strings.Contains(out, "CEL cost") {
		t.Errorf("dry-run of a call = %q", out)
	}
	fails("declares no such argument", "agreement", "call", "1", "reserve", "--key", "ev-1", "--arg", "seat=1")
	fails("may be called by", append([]string{"agreement", "call", "1", "reserve", "--key", "charger-1"}, reserve...)...)
	if out := run(append([]string{"agreement", "call", "1", "reserve", "--key", "ev-1"}, reserve...)...); !strings.Contains(out, "command 1 issued") {
		t.Errorf("call = %q", out)
	}
	if out := run("agreement", "show", "1", "--prove"); !strings.Contains(out, "escrow 30 credits") || !strings.Contains(out, "status     reserved") || !strings.Contains(out, "proof checked") {
		t.Errorf("show = %q", out)
	}
	if out := run("agreement", "commands", "charger-1"); !strings.Contains(out, `"reserve slot 3"`) {
		t.Errorf("commands = %q", out)
	}
	run("agreement", "call", "1", "delivered", "--key", "charger-1", "--arg", "kwh=11")
	if out := run("agreement", "history", "1"); !strings.Contains(out, "release 30 credits agreement:1 -> org:acme") || !strings.Contains(out, "call delivered") {
		t.Errorf("history = %q", out)
	}
	if out := run("credits", "history", "org:acme"); !strings.Contains(out, "release 30") {
		t.Errorf("credits history = %q", out)
	}
	if out := run("agreement", "list"); !strings.Contains(out, "charging\tfinished") {
		t.Errorf("list = %q", out)
	}

	// A reading fires the thermostat: sent to the gateway, relayed with its proof.
	run("keys", "new", "sensor-1")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "sensor-1", "--class", "sensor")
	thermo := filepath.Join("..", "..", "examples", "agreements", "thermostat.yaml")
	run("agreement", "deploy", thermo, "--key", "demo-admin", "--party", "sensor=device:sensor-1", "--party", "cooler=device:charger-1", "--party", "buyer=org:demo", "--party", "seller=org:acme")
	run("agreement", "accept", "2", "--key", "acme-admin")
	out = run("readings", "send", "--key", "sensor-1", "--seq", "1", "--type", "temperature/celsius", "--value", "36.6")
	var index string
	if _, err := fmt.Sscanf(out, "stored as entry %s", &index); err != nil {
		t.Fatalf("readings send = %q", out)
	}
	// acme relays the sensor's readings: demo must let it read them;
	// until then the reading is withheld from acme.
	if out := run("readings", "get", index, "--identity", "acme-admin"); !strings.Contains(out, "withheld") || strings.Contains(out, "36.6") {
		t.Errorf("acme reads demo's reading without a grant: %q", out)
	}
	run("grant", "add", "--key", "demo-admin", "--grantor", "org:demo", "--subject", "org:acme", "--action", "read", "--resource", "device:sensor-1/readings")
	for {
		out, err := cli(t, node, ks, "agreement", "call", "2", "hot", "--key", "acme-admin", "--reading", index)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "not anchored yet") {
			t.Fatalf("agreement call --reading: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := run("agreement", "commands", "charger-1"); !strings.Contains(out, "agreement 2 hot\t\"on\"") {
		t.Errorf("commands after the reading = %q", out)
	}
}
