package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestAuditExportVerify: an organisation admin exports a bundle of its
// devices' readings; it verifies offline from a header whose hash comes
// from the node (`tx block`), is refused with a byte changed, and an
// outsider's export holds no values.
func TestAuditExportVerify(t *testing.T) {
	_, node, ks := testDevnetWith(t, devnet.Config{Validators: 2})
	run := func(args ...string) string {
		t.Helper()
		out, err := cli(t, node, ks, args...)
		if err != nil {
			t.Fatalf("thingnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	from := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	run("keys", "new", "probe")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "probe")
	run("readings", "send", "--key", "probe", "--seq", "1", "--type", "temperature/celsius", "--value", "19.5")
	run("readings", "send", "--key", "probe", "--seq", "2", "--type", "temperature/celsius", "--value", "20.25")
	ctx := testutil.Context(t, 2*time.Minute)
	// Anonymous, the public part of the proof: enough to wait for the anchor.
	if _, err := client.New(node).WaitReadingProof(ctx, 1, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "demo.bundle")
	out := run("audit", "export", "--org", "demo", "--from", from, "-o", file, "--identity", "demo-admin")
	m := regexp.MustCompile(`--trust (\d+):([0-9A-F]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("audit export printed no trust:\n%s", out)
	}
	// The auditor takes the header's hash from the node, not the bundle.
	var blk struct{ Hash string }
	if err := json.Unmarshal([]byte(run("tx", "block", m[1], "-o", "json")), &blk); err != nil {
		t.Fatal(err)
	}
	trust := m[1] + ":" + blk.Hash
	out = run("audit", "verify", file, "--trust", trust)
	if !strings.Contains(out, "2 reading(s) in 2 log entries verified") || !strings.HasSuffix(out, "verified\n") {
		t.Errorf("audit verify:\n%s", out)
	}
	var s struct{ Verified, Readings int }
	if err := json.Unmarshal([]byte(run("audit", "verify", file, "--trust", trust, "-o", "json")), &s); err != nil || s.Verified != 2 {
		t.Errorf("audit verify -o json: %+v, %v", s, err)
	}

	// One byte changed in a reading's envelope (inside its base64).
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(data), `"envelope":"`) + len(`"envelope":"`) + 40
	forged := append([]byte(nil), data...)
	if forged[i] == 'A' {
		forged[i] = 'B'
	} else {
		forged[i] = 'A'
	}
	bad := filepath.Join(t.TempDir(), "forged.bundle")
	if err := os.WriteFile(bad, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = cli(t, node, ks, "audit", "verify", bad, "--trust", trust)
	var coded interface{ ExitCode() int }
	if !errors.As(err, &coded) || coded.ExitCode() != 3 || !strings.Contains(err.Error(), "reading 0 (gateway ") {
		t.Errorf("a forged bundle: %v\n%s", err, out)
	}

	// An outsider: no values.
	run("keys", "new", "outsider")
	outsider := filepath.Join(t.TempDir(), "outsider.bundle")
	run("audit", "export", "--org", "demo", "-o", outsider, "--identity", "outsider")
	data, err = os.ReadFile(outsider)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"envelope"`) {
		t.Error("the outsider's bundle holds envelopes")
	}
}
