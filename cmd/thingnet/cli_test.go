package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// cli runs one thingnet command in-process and returns its output.
func cli(t *testing.T, node, keystore string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--node", node, "--keystore", keystore}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String() + errOut.String(), err
}

func mustCLI(t *testing.T, node, ks string, args ...string) string {
	t.Helper()
	out, err := cli(t, node, ks, args...)
	if err != nil {
		t.Fatalf("thingnet %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// testDevnet starts a devnet of n validators for a CLI test, stopped when
// the test ends, and returns it with its first node's API URL and its
// keystore (keys with an empty passphrase).
func testDevnet(t *testing.T, validators int) (d *devnet.Devnet, node, ks string) {
	t.Helper()
	return testDevnetWith(t, devnet.Config{Validators: validators})
}

// testDevnetWith is testDevnet of c (Home, BasePort, FastBlocks and NoSync
// are set here).
func testDevnetWith(t *testing.T, c devnet.Config) (d *devnet.Devnet, node, ks string) {
	t.Helper()
	t.Setenv("THINGNET_PASSPHRASE", "")
	home := t.TempDir()
	base, err := chain.FreePortBase(max(c.Validators, 1))
	if err != nil {
		t.Fatal(err)
	}
	c.Home, c.BasePort, c.FastBlocks, c.NoSync = home, base, true, true
	d, err = devnet.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	return d, d.APIURL(0), devnet.Keystore(home).Dir
}

// syncNodes waits until every node's ledger has applied the blocks node 0
// has: a tx committed through one node is then readable through any other
// (a node applies a block a moment after another may have).
func syncNodes(t *testing.T, d *devnet.Devnet) {
	t.Helper()
	want := d.App(0).Height()
	deadline := time.Now().Add(20 * time.Second)
	for i := range d.Size() {
		for a := d.App(i); a == nil || a.Height() < want; a = d.App(i) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not apply block %d", i, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestCLI drives every tx kind and read command of the CLI against a devnet.
func TestCLI(t *testing.T) {
	t.Setenv("THINGNET_PASSPHRASE", "")
	home := t.TempDir()
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	d, err := devnet.Start(devnet.Config{Home: home, BasePort: base, FastBlocks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	node, ks := d.APIURL(1), devnet.Keystore(home).Dir
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }

	run("keys", "new", "sensor-1")
	run("keys", "new", "sensor-2", "--alg", "p256")
	run("keys", "new", "sensor-1b")
	run("keys", "new", "alice")
	if out := run("keys", "list"); !strings.Contains(out, "sensor-2") || !strings.Contains(out, "p256") {
		t.Errorf("keys list = %q", out)
	}

	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "sensor-1", "--class", "sensor", "--label", "room=lab")
	// Field flow: the device prints its proof of possession; the admin registers it.
	var pop map[string]string
	if err := json.Unmarshal([]byte(run("device", "pop", "--key", "sensor-2", "--org", "demo", "-o", "json")), &pop); err != nil {
		t.Fatal(err)
	}
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device", pop["device"], "--proof", pop["proof"])

	out := run("device", "show", "sensor-1", "--prove")
	if !strings.Contains(out, "proof: OK") || !strings.Contains(out, "status:     active") {
		t.Errorf("device show --prove = %q", out)
	}
	run("device", "update", "sensor-1", "--key", "demo-admin", "--firmware", "2.0.1", "--label", "floor=3")
	run("device", "suspend", "sensor-1", "--key", "demo-admin", "--reason", "maintenance")
	if _, err := cli(t, node, ks, "grant", "add", "--key", "sensor-1", "--grantor", "device:sensor-1", "--subject", "device:sensor-2", "--action", "message", "--resource", "device:sensor-1"); err == nil || !strings.Contains(err.Error(), "inactive_signer") {
		t.Errorf("suspended device signing: err = %v; want inactive_signer", err)
	}
	run("device", "resume", "sensor-1", "--key", "demo-admin")
	run("grant", "add", "--key", "sensor-1", "--grantor", "device:sensor-1", "--subject", "device:sensor-2", "--action", "message", "--resource", "device:sensor-1")
	run("device", "rotate", "sensor-1", "--key", "sensor-1", "--new-key", "sensor-1b")
	var grants []map[string]any
	if err := json.Unmarshal([]byte(run("grant", "list", "--subject", "device:sensor-2", "-o", "json")), &grants); err != nil || len(grants) != 1 {
		t.Fatalf("grant list = %v, %v; want 1 grant", grants, err)
	}
	id := fmt.Sprint(grants[0]["id"])
	// After rotation, the old key is refused and the new one signs as the device.
	if _, err := cli(t, node, ks, "grant", "revoke", id, "--key", "sensor-1"); err == nil || !strings.Contains(err.Error(), "bad_signature") {
		t.Errorf("old key after rotation: err = %v; want bad_signature", err)
	}
	dev1 := strings.TrimSpace(strings.TrimPrefix(strings.Split(run("keys", "show", "sensor-1"), "\n")[2], "id:"))
	run("grant", "revoke", id, "--key", "sensor-1b", "--as", dev1)

	hist := run("device", "history", "sensor-1")
	for _, kind := range []string{"device.register", "device.update", "device.suspend", "device.resume", "device.rotate"} {
		if !strings.Contains(hist, kind) {
			t.Errorf("history lacks %s:\n%s", kind, hist)
		}
	}

	// Organisations and tenancy.
	run("org", "create", "acme", "--key", "alice", "--name", "Acme")
	if _, err := cli(t, node, ks, "device", "suspend", pop["device"], "--key", "alice"); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("cross-tenant suspend: err = %v; want unauthorized", err)
	}
	run("org", "admin", "add", "acme", "demo-admin", "--key", "alice")
	if out := run("org", "show", "acme", "--prove"); !strings.Contains(out, "proof: OK") {
		t.Errorf("org show --prove = %q", out)
	}
	if out := run("org", "list"); !strings.Contains(out, "acme") || !strings.Contains(out, "demo") {
		t.Errorf("org list = %q", out)
	}
	if out := run("device", "list", "--org", "demo"); strings.Count(out, "did:key") != 2+4 { // two devices and the four gateways
		t.Errorf("device list = %q; want 2 devices and 4 gateways", out)
	}
	run("device", "revoke", pop["device"], "--key", "demo-admin", "--reason", "decommissioned")
	if _, err := cli(t, node, ks, "device", "show", "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "--prove"); err == nil || !strings.Contains(err.Error(), "proved absent") {
		t.Errorf("unknown device --prove: err = %v; want proved absent", err)
	}

	// Raw tx lookups and blocks.
	var res struct{ Hash string }
	if err := json.Unmarshal([]byte(run("device", "update", "sensor-1", "--key", "demo-admin", "--class", "meter", "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if out := run("tx", "show", res.Hash); !strings.Contains(out, "device.update") {
		t.Errorf("tx show = %q", out)
	}
	run("tx", "block", "latest")

	// Readings: a device signs one, the node's gateway stores it, and it is
	// verified through another node once anchored.
	run("keys", "new", "sensor-3")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "sensor-3")
	if out := run("readings", "send", "--key", "sensor-3", "--seq", "1", "--type", "temperature/celsius", "--value", "21.4"); !strings.Contains(out, "stored as entry 0") {
		t.Errorf("readings send = %q", out)
	}
	if _, err := cli(t, node, ks, "readings", "send", "--key", "sensor-3", "--seq", "1", "--value", "9"); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Errorf("replayed seq: err = %v; want rejected", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := cli(t, node, ks, "readings", "verify", "0", "--via", d.APIURL(2), "--identity", "demo-admin")
		if err == nil {
			if !strings.Contains(out, "verified: signed by the device's key") || !strings.Contains(out, "21.4 temperature/celsius") {
				t.Errorf("readings verify = %q", out)
			}
			break
		}
		if !strings.Contains(err.Error(), "not anchored yet") || time.Now().After(deadline) {
			t.Fatalf("readings verify: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The same through a light client provisioned with block 2's hash: no
	// node's validator set is trusted.
	var b2 struct{ Hash string }
	if err := json.Unmarshal([]byte(run("tx", "block", "2", "-o", "json")), &b2); err != nil {
		t.Fatal(err)
	}
	if out := run("verify", "reading", "0", "--via", d.APIURL(3), "--trust", "2:"+b2.Hash, "--identity", "demo-admin"); !strings.Contains(out, "verified:") {
		t.Errorf("verify reading --trust = %q", out)
	}
	if _, err := cli(t, node, ks, "verify", "reading", "0", "--trust", "2:"+strings.Repeat("00", 32)); err == nil || !strings.Contains(err.Error(), "light client") {
		t.Errorf("verify reading with a wrong trusted hash: err = %v; want refused", err)
	}
	if out := run("readings", "list", "--device", "sensor-3", "--identity", "demo-admin"); !strings.Contains(out, "seq 1") || !strings.Contains(out, "21.4 temperature/celsius") {
		t.Errorf("readings list = %q", out)
	}
	if tok := strings.TrimSpace(run("device", "token", "--key", "sensor-3")); len(tok) < 100 {
		t.Errorf("device token = %q", tok)
	}

	// Validator set change: 3 of 4 validators approve adding a fifth.
	var approvals []string
	newVal, err := chain.InitHome(chain.Config{Home: filepath.Join(t.TempDir(), "new")})
	if err != nil {
		t.Fatal(err)
	}
	pub := b64(newVal.ValidatorPubKey)
	for i := range 3 {
		a := run("validator", "approve", "--home", filepath.Join(home, "nodes", fmt.Sprintf("node%d", i)), "--chain-id", d.ChainID(), "--pub-key", pub, "--power", "1", "--seq", "1")
		f := filepath.Join(t.TempDir(), "a.json")
		os.WriteFile(f, []byte(a), 0o600)
		approvals = append(approvals, f)
	}
	run(append([]string{"validator", "update", "--key", "alice"}, approvals...)...)
	if out := run("validator", "list"); strings.Count(out, "power") != 5 {
		t.Errorf("validator list = %q; want 5 validators", out)
	}
	// Its record and history, by key and by address, with a checked proof.
	addr := record.ValidatorAddress(newVal.ValidatorPubKey).String()
	for _, id := range []string{pub, addr} {
		if out := run("validator", "show", id, "--prove"); !strings.Contains(out, "validator "+addr) || !strings.Contains(out, "power    1 (in the set)") ||
			!strings.Contains(out, "#1 height") || !strings.Contains(out, "validator.update power 1 tx ") || !strings.Contains(out, "proof checked") {
			t.Errorf("validator show %s = %q", id, out)
		}
	}
	if _, err := cli(t, node, ks, "validator", "show", strings.Repeat("AB", 20)); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Errorf("validator show of an unknown address: err = %v; want not_found", err)
	}
	if _, err := cli(t, node, ks, "validator", "show", "nonsense"); err == nil || !strings.Contains(err.Error(), "neither a validator address") {
		t.Errorf("validator show nonsense: err = %v", err)
	}
	if out := run("validator", "evidence"); !strings.Contains(out, "no evidence committed") {
		t.Errorf("validator evidence = %q", out)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestReadingsVerifyAfterPruning: on a devnet whose nodes keep 10 past
// versions of the ledger state, an early reading still verifies through
// another node once the states of its heights are pruned, against that
// node's validator set and with a light client from block 2.
func TestReadingsVerifyAfterPruning(t *testing.T) {
	d, node, ks := testDevnetWith(t, devnet.Config{Validators: 2, KeepVersions: 10})
	run := func(args ...string) string {
		t.Helper()
		out, err := cli(t, node, ks, args...)
		if err != nil {
			t.Fatalf("thingnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("keys", "new", "early")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "early")
	run("readings", "send", "--key", "early", "--seq", "1", "--type", "temperature/celsius", "--value", "19.5")
	ctx := testutil.Context(t, 2*time.Minute)
	p, err := client.New(node).WaitReadingProof(ctx, 0, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, ctx, "the states of the reading's heights pruned on both nodes", func() bool {
		for i := range d.Size() {
			if _, err := d.App(i).View(p.Anchor.Height); err == nil {
				return false
			}
		}
		return true
	})
	out := run("readings", "verify", "0", "--via", d.APIURL(1), "--identity", "demo-admin")
	if !strings.Contains(out, "verified: signed by the device's key") || !strings.Contains(out, "19.5 temperature/celsius") {
		t.Errorf("readings verify after pruning = %q", out)
	}
	var b2 struct{ Hash string }
	if err := json.Unmarshal([]byte(run("tx", "block", "2", "-o", "json")), &b2); err != nil {
		t.Fatal(err)
	}
	if out := run("verify", "reading", "0", "--via", d.APIURL(1), "--trust", "2:"+b2.Hash, "--identity", "demo-admin"); !strings.Contains(out, "verified:") {
		t.Errorf("verify reading --trust after pruning = %q", out)
	}
}
