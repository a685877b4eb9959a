package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/rules"
)

// TestFleetRuleAddedToANode: an operator (an admin of the gateway's
// organisation) adds a fleet rule to a running devnet node with `rules
// add`; when more than one of the organisation's devices of a class goes
// silent it fires once (one signed webhook delivery naming the class and
// the count) and one agreement call signed by the gateway's key (the
// agreement's history shows it), /metrics counts the devices by
// organisation, class and state,
// and after a restart the rule is still there and, its state restored,
// does not fire again (and the gateway, seeded from its data log, still
// counts the two silent). Others may not add rules; `rules remove` removes it.
func TestFleetRuleAddedToANode(t *testing.T) {
	d, node0, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node0, ks, args...) }
	run("keys", "new", "fstranger")
	var keys []*identity.Key
	for _, name := range []string{"fs1", "fs2", "fs3"} {
		run("keys", "new", name)
		run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", name, "--class", "fsensor")
		k, err := identity.Keystore{Dir: ks}.Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	var mu sync.Mutex
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer hook.Close()
	deliveries := func() int { mu.Lock(); defer mu.Unlock(); return len(bodies) }

	// Silent after one missed second; a census every 200 ms.
	c := d.Net().Config(0)
	c.Fleet = node.FleetConfig{Missed: 1, Wake: node.Duration{Duration: time.Second}, Every: node.Duration{Duration: 200 * time.Millisecond}}
	restart := func() {
		t.Helper()
		if err := d.StopNode(0); err != nil {
			t.Fatal(err)
		}
		d.Net().SetConfig(0, c)
		if err := d.StartNode(0); err != nil {
			t.Fatal(err)
		}
	}
	restart()

	// An agreement the gateway may call: it counts the alarms.
	doc := filepath.Join(t.TempDir(), "alarms.yaml")
	os.WriteFile(doc, []byte(`agreement: alarms
parties:
  watcher: device
  owner: org
state:
  alarms: {type: int, init: '0'}
transitions:
  alarm:
    on: {call: watcher}
    args: {level: int}
    when: args.level > 0
    do:
      - set: {alarms: state.alarms + args.level}
`), 0o600)
	out := run("agreement", "deploy", doc, "--key", "demo-admin", "--party", "watcher=device:"+d.Gateway(0).ID(), "--party", "owner=org:demo")
	m := regexp.MustCompile(`agreement (\d+) deployed`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("deploy: %s", out)
	}
	agreement := m[1]

	file := filepath.Join(t.TempDir(), "quiet.toml")
	os.WriteFile(file, []byte(`
[[rules]]
name = "quiet"
org = "demo"
clear_after = "1m"
[rules.fleet]
class = "fsensor"
silent_over = 1
[rules.action]
webhook = "`+hook.URL+`"
[rules.action.call]
agreement = `+agreement+`
transition = "alarm"
args = { level = 2 }
`), 0o600)
	if out, err := cli(t, node0, ks, "rules", "add", "--rule", file); err == nil || !strings.Contains(out+err.Error(), "unauthenticated") {
		t.Fatalf("rules add without an identity: %v\n%s", err, out)
	}
	if out, err := cli(t, node0, ks, "--identity", "fstranger", "rules", "add", "--rule", file); err == nil || !strings.Contains(out+err.Error(), "forbidden") {
		t.Fatalf("rules add by a stranger: %v\n%s", err, out)
	}
	// Two devices report once; the third never does.
	now := time.Now().UTC()
	for i, k := range keys[:2] {
		v := float64(20 + i)
		raw, err := reading.Sign(k, k.ID(), reading.Reading{Seq: 1, Time: now, ContentType: "temperature/celsius", Value: &v})
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
	}
	run("--identity", "demo-admin", "rules", "add", "--rule", file)
	if out := run("--identity", "demo-admin", "rules", "list", "--running"); !strings.Contains(out, "quiet") || !strings.Contains(out, "silent > 1") {
		t.Fatalf("rules list --running:\n%s", out)
	}
	waitFor(t, "the fleet rule's delivery", func() bool { return deliveries() == 1 })
	var got rules.Delivery
	mu.Lock()
	err := json.Unmarshal(bodies[0], &got)
	mu.Unlock()
	if err != nil || got.Rule != "quiet" || got.Class != "fsensor" || got.Value != 2 || got.Type != rules.FleetType {
		t.Fatalf("delivery %+v, %v; want rule quiet, class fsensor, 2 silent", got, err)
	}
	waitFor(t, "the agreement call", func() bool {
		out, err := cli(t, node0, ks, "agreement", "history", agreement)
		return err == nil && strings.Contains(out, "call alarm")
	})
	if out := run("-o", "json", "agreement", "show", agreement); !regexp.MustCompile(`"alarms":\s*2\b`).MatchString(out) {
		t.Fatalf("agreement show after the call: want alarms 2\n%s", out)
	}
	metrics := func() string {
		resp, err := http.Get(node0 + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, "fleet metrics", func() bool {
		m := metrics()
		return strings.Contains(m, `thingnet_fleet_devices{class="fsensor",org="demo",state="silent"} 2`) &&
			strings.Contains(m, `thingnet_fleet_devices{class="fsensor",org="demo",state="never"} 1`)
	})

	// A restart: the rule is still there, its state too: no second firing.
	restart()
	censuses := regexp.MustCompile(`thingnet_rules_fleet_censuses_total (\d+)`)
	waitFor(t, "three censuses after the restart", func() bool {
		m := censuses.FindStringSubmatch(metrics())
		n, _ := strconv.Atoi(append(m, "", "0")[1])
		return len(m) > 1 && n >= 3
	})
	if n := deliveries(); n != 1 {
		t.Fatalf("%d deliveries after a restart; want still 1 (the rule's state survives it)", n)
	}
	// The tracker was seeded from the data log: the two are still silent, not never.
	if m := metrics(); !strings.Contains(m, `thingnet_fleet_devices{class="fsensor",org="demo",state="silent"} 2`) {
		t.Fatalf("after a restart, the fleet metrics lost the last-seen times:\n%s", regexp.MustCompile(`(?m)^thingnet_fleet_devices.*fsensor.*$`).FindAllString(m, -1))
	}
	if out := run("--identity", "demo-admin", "rules", "list", "--running"); !strings.Contains(out, "quiet") {
		t.Fatalf("after a restart, rules list --running:\n%s", out)
	}
	run("--identity", "demo-admin", "rules", "remove", "quiet")
	if out, err := cli(t, node0, ks, "--identity", "demo-admin", "rules", "remove", "quiet"); err == nil || !strings.Contains(out+err.Error(), "no rule") {
		t.Fatalf("removing it twice: %v\n%s", err, out)
	}
	if out := run("--identity", "demo-admin", "rules", "list", "--running"); strings.Contains(out, "quiet") {
		t.Fatalf("removed, still listed:\n%s", out)
	}
}

// waitFor polls cond every 50 ms for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
