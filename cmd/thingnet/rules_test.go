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
	"github.com/thingnet/thingnet/rules"
)

// TestRulesTestOnStoredRange: a known series of twelve minute-spaced
// temperatures stored by a real devnet gateway, run through two rules by
// `rules test` (five readings a page): the rule without cooldown fires at
// minutes 2 and 11 (the mean over 5 minutes rises above 30 twice, with a
// fall below between), the one with a 10m cooldown only at minute 2. A
// reader without a grant gets no firings, only a refusal.
func TestRulesTestOnStoredRange(t *testing.T) {
	_, node0, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node0, ks, args...) }
	run("keys", "new", "rsensor")
	run("keys", "new", "rstranger")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "rsensor", "--class", "rsensor")
	key, err := identity.Keystore{Dir: ks}.Load("rsensor", nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UTC()
	vals := []float64{20, 40, 40, 40, 20, 20, 20, 20, 20, 40, 40, 40}
	for i, v := range vals {
		raw, err := reading.Sign(key, key.ID(), reading.Reading{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Minute), ContentType: "temperature/celsius", Value: &v})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(node0+"/v1/readings", "application/cose", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("reading %d: HTTP %d", i, resp.StatusCode)
		}
	}
	file := filepath.Join(t.TempDir(), "rules.toml")
	os.WriteFile(file, []byte(`
[[rules]]
name = "hot"
org = "demo"
when = "mean(temperature, 5m) > 30 && count(5m) >= 3"
[rules.devices]
classes = ["rsensor"]

[[rules]]
name = "hot-slow"
org = "demo"
when = "mean(temperature, 5m) > 30 && count(5m) >= 3"
cooldown = "10m"
`), 0o600)
	args := []string{"rules", "test", "--rule", file, "--device", "rsensor", "--from", t0.Format(time.RFC3339), "--to", t0.Add(time.Hour).Format(time.RFC3339), "--page-size", "5"}
	var fired []rules.Firing
	out := run(append([]string{"--identity", "demo-admin", "-o", "json"}, args...)...)
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&fired); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	var got []string
	for _, f := range fired {
		got = append(got, f.Rule+"@"+f.Time.Sub(t0).String())
	}
	if want := "hot@2m0s hot-slow@2m0s hot@11m0s"; strings.Join(got, " ") != want {
		t.Fatalf("firings %v; want %s", got, want)
	}
	if out, err := cli(t, node0, ks, append([]string{"--identity", "rstranger"}, args...)...); err == nil || strings.Contains(out, "hot") || !strings.Contains(err.Error()+out, "read") {
		t.Fatalf("a reader without a grant: err %v, output:\n%s", err, out)
	}
	if out, err := cli(t, node0, ks, "rules", "list", "--rule", file); err != nil || !strings.Contains(out, "hot-slow") || !strings.Contains(out, "classes=rsensor") {
		t.Fatalf("rules list: %v\n%s", err, out)
	}
}
