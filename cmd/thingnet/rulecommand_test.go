package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestRuleCommandsADevice: a rule added to a running devnet node with a
// [rules.action.command] sends its command to the device whose readings
// made it fire: a job of that one device on the ledger, signed by the
// gateway's key through the "manage" grant the organisation gave it.
func TestRuleCommandsADevice(t *testing.T) {
	d, node0, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node0, ks, args...) }
	run("keys", "new", "csensor")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "csensor", "--class", "csensor")
	gw := d.Gateway(0).ID()
	run("grant", "add", "--key", "demo-admin", "--grantor", "org:demo", "--subject", "device:"+gw, "--action", "manage", "--resource", "org:demo")

	file := filepath.Join(t.TempDir(), "cool.toml")
	if err := os.WriteFile(file, []byte(`
[[rules]]
name = "cool-down"
org = "demo"
when = "mean(temperature, 1m) > 30.0"
[rules.devices]
classes = ["csensor"]
[rules.action.command]
name = "fan"
args = { speed = 3 }
timeout_blocks = 100
`), 0o600); err != nil {
		t.Fatal(err)
	}
	run("--identity", "demo-admin", "rules", "add", "--rule", file)
	if out := run("--identity", "demo-admin", "rules", "list", "--running"); !strings.Contains(out, "command fan") {
		t.Fatalf("rules list --running:\n%s", out)
	}

	key, err := identity.Keystore{Dir: ks}.Load("csensor", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := 35.0
	raw, err := reading.Sign(key, key.ID(), reading.Reading{Seq: 1, Time: time.Now().UTC(), ContentType: "temperature/celsius", Value: &v})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reading stored", func() bool {
		resp, err := http.Post(node0+"/v1/readings", "application/cose", bytes.NewReader(raw))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusAccepted
	})
	var jobs []record.JobRecord
	waitFor(t, "the rule's job", func() bool {
		out, err := cli(t, node0, ks, "-o", "json", "job", "list", "--org", "demo")
		return err == nil && json.Unmarshal([]byte(out), &jobs) == nil && len(jobs) > 0
	})
	j := jobs[0]
	if c := j.JobCreate; c.Command != "fan" || c.Args["speed"] != float64(3) ||
		len(c.Target.Devices) != 1 || c.Target.Devices[0] != key.ID() || j.Signer != gw || j.Grant == 0 || c.TimeoutBlocks != 100 {
		t.Fatalf("job %+v; want fan(speed 3) to %s alone, signed by the gateway %s through its grant", j, key.ID(), gw)
	}
	if out := run("job", "show", "demo/1"); !strings.Contains(out, "state active") || !strings.Contains(out, "fan") {
		t.Fatalf("job show:\n%s", out)
	}
}
