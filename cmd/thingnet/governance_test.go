package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/record"
)

// TestGovernance: on a network whose organisations are created by
// approval, a creation without approvals is refused with the command to
// ask for them; with the validator's approval it commits; the rules are
// shown; an admin rotates its key in one step.
func TestGovernance(t *testing.T) {
	d, node, ks := testDevnetWith(t, devnet.Config{Validators: 1,
		Governance: &record.Governance{OrgCreation: record.OrgCreationApproval, BlockTxs: 50, MempoolTxs: 100, BlockTriggers: 8}})
	run := func(args ...string) string {
		t.Helper()
		out, err := cli(t, node, ks, args...)
		if err != nil {
			t.Fatalf("thingnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	idOf := func(name string) string {
		return strings.TrimSpace(strings.TrimPrefix(strings.Split(run("keys", "show", name), "\n")[2], "id:"))
	}
	run("keys", "new", "founder")
	run("keys", "new", "founder-2")
	if out, err := cli(t, node, ks, "org", "create", "acme", "--key", "founder"); err == nil || !strings.Contains(err.Error(), "thingnet org approve --org acme --creator "+idOf("founder")) {
		t.Fatalf("org create without approvals: %v\n%s; want refused with the command to ask for them", err, out)
	}
	approval := run("org", "approve", "--home", d.NodeHome(0), "--chain-id", d.ChainID(), "--org", "acme", "--creator", idOf("founder"))
	f := filepath.Join(t.TempDir(), "approval.json")
	if err := os.WriteFile(f, []byte(approval), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, node, ks, "org", "create", "acme", "--key", "founder-2", "--approval", f); err == nil || !strings.Contains(err.Error(), "approves") {
		t.Errorf("another key presenting founder's approval: %v; want refused before sending", err)
	}
	run("org", "create", "acme", "--key", "founder", "--approval", f)
	if out := run("governance", "--prove"); !strings.Contains(out, "organisation creation: approval") || !strings.Contains(out, "txs per block: 50") ||
		!strings.Contains(out, "height triggers per block: 8") {
		t.Errorf("governance = %q", out)
	}

	run("org", "admin", "rotate", "acme", "--key", "founder", "--new-key", "founder-2")
	if out := run("org", "show", "acme"); !strings.Contains(out, idOf("founder-2")) || strings.Contains(out, idOf("founder")) {
		t.Errorf("org show after rotation = %q; want founder-2 alone", out)
	}
	if _, err := cli(t, node, ks, "org", "admin", "add", "acme", "founder", "--key", "founder"); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("the rotated-out key adding itself back: %v; want unauthorized", err)
	}
}
