package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// `thingnet job create|show|list|cancel`: a class-wide job with a
// threshold in percent, its progress per wave, its cancel; another
// organisation's admin can neither create a job on the demo's devices
// nor cancel one.
func TestJobCLI(t *testing.T) {
	_, node, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	var list []struct {
		Class string `json:"class"`
	}
	if err := json.Unmarshal([]byte(run("device", "list", "--org", "demo", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 || list[0].Class == "" {
		t.Fatalf("the devnet has no device with a class: %+v", list)
	}
	class := list[0].Class
	out := run("job", "create", "--key", "demo-admin", "--org", "demo", "--class", class, "--command", "ping", "--arg", "n=3",
		"--waves", "3", "--wave-blocks", "50", "--max-failures", "50%")
	if !strings.Contains(out, "job 1 of demo created") || !strings.Contains(out, "3 wave(s)") {
		t.Fatalf("job create:\n%s", out)
	}
	out = run("job", "show", "demo/1")
	if !strings.Contains(out, "state active") || !strings.Contains(out, "ping") || strings.Count(out, "\n") < 6 {
		t.Fatalf("job show:\n%s", out)
	}
	if out := run("job", "list", "--org", "demo"); !strings.Contains(out, "1\tactive\tping\tclass "+class) {
		t.Fatalf("job list:\n%s", out)
	}
	if _, err := cli(t, node, ks, "job", "create", "--key", "demo-admin", "--org", "demo", "--class", class, "--command", "Bad Name"); err == nil {
		t.Error("a bad command name was accepted")
	}
	run("keys", "new", "rival")
	run("org", "create", "rival-org", "--key", "rival")
	for _, args := range [][]string{
		{"job", "create", "--key", "rival", "--org", "demo", "--class", class, "--command", "ping"},
		{"job", "cancel", "1", "--org", "demo", "--key", "rival"},
	} {
		if _, err := cli(t, node, ks, args...); err == nil || !strings.Contains(err.Error(), "unauthorized") {
			t.Errorf("%v by another organisation's admin: %v; want unauthorized", args, err)
		}
	}
	run("job", "cancel", "1", "--org", "demo", "--key", "demo-admin")
	if out := run("job", "show", "1", "--org", "demo"); !strings.Contains(out, "state cancelled") {
		t.Fatalf("job show after cancel:\n%s", out)
	}
}
