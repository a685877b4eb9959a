package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// `thingnet device config set|show|history` on a class and on a device:
// versions count up by themselves, the device's layer wins over its
// class's, a bad setting name is refused before it reaches the ledger.
func TestDeviceConfigCLI(t *testing.T) {
	_, node, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	var list []struct {
		ID    string `json:"id"`
		Class string `json:"class"`
	}
	if err := json.Unmarshal([]byte(run("device", "list", "--org", "demo", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 || list[0].Class == "" {
		t.Fatalf("the devnet has no device with a class: %+v", list)
	}
	dev, class := list[0].ID, list[0].Class
	run("device", "config", "set", "--key", "demo-admin", "--org", "demo", "--class", class, "--set", "wake_s=30", "--set", "mode=eco")
	run("device", "config", "set", "--key", "demo-admin", "--org", "demo", "--class", class, "--set", "wake_s=20", "--set", "mode=eco")
	if out := run("device", "config", "show", "--org", "demo", "--class", class); !strings.Contains(out, "v2") || !strings.Contains(out, "wake_s = 20") {
		t.Fatalf("show --class:\n%s", out)
	}
	if out := run("device", "config", "history", "--org", "demo", "--class", class); strings.Count(out, "class "+class+" of demo") != 2 {
		t.Fatalf("history --class:\n%s", out)
	}
	if _, err := cli(t, node, ks, "device", "config", "set", "--key", "demo-admin", "--org", "demo", "--class", class, "--set", "Bad=1"); err == nil {
		t.Error("a bad setting name was accepted")
	}
	run("device", "config", "set", dev, "--key", "demo-admin", "--set", "wake_s=5")
	out := run("device", "config", "show", dev, "--identity", "demo-admin")
	if !strings.Contains(out, "wake_s = 5") || !strings.Contains(out, "mode = eco") || !strings.Contains(out, "layer device") {
		t.Fatalf("show DEVICE:\n%s", out)
	}

	// Another organisation's admin can neither set the device's or its
	// class's configuration nor read what the device reported.
	run("keys", "new", "rival")
	run("org", "create", "rival-org", "--key", "rival")
	for _, args := range [][]string{
		{"device", "config", "set", dev, "--key", "rival", "--set", "wake_s=1"},
		{"device", "config", "set", "--key", "rival", "--org", "demo", "--class", class, "--set", "wake_s=1"},
	} {
		if _, err := cli(t, node, ks, args...); err == nil || !strings.Contains(err.Error(), "unauthorized") {
			t.Errorf("%v by another organisation's admin: %v; want unauthorized", args, err)
		}
	}
	if _, err := cli(t, node, ks, "device", "config", "diff", dev, "--identity", "rival"); err == nil {
		t.Error("another organisation's admin read what the device reported")
	}
}
