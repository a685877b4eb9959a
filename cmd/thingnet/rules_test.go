package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/export/webhook"
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

// TestRulesActOnANode: a devnet node restarted with a [[rules]] table runs
// it on the readings its gateway stores: the condition becoming true once
// gives one webhook delivery, signed by the gateway's key on the ledger,
// and the firing is counted on /metrics; readings that keep it true give
// no second delivery.
func TestRulesActOnANode(t *testing.T) {
	d, node0, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node0, ks, args...) }
	run("keys", "new", "asensor")
	run("keys", "new", "astranger")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "asensor", "--class", "asensor")
	var mu sync.Mutex
	var deliveries []*http.Request
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		deliveries, bodies = append(deliveries, r), append(bodies, b)
		mu.Unlock()
	}))
	defer hook.Close()
	c := d.Net().Config(0)
	c.Rules = []rules.Rule{{Name: "hot", Org: "demo", When: "count(temperature, 1m) >= 2 && mean(temperature, 1m) > 30.0",
		Devices: rules.Selector{Classes: []string{"asensor"}}, Action: rules.Action{Webhook: hook.URL, Alert: true}}}
	if err := d.StopNode(0); err != nil {
		t.Fatal(err)
	}
	d.Net().SetConfig(0, c)
	if err := d.StartNode(0); err != nil {
		t.Fatal(err)
	}
	key, err := identity.Keystore{Dir: ks}.Load("asensor", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, v := range []float64{25, 40, 41, 42} { // true from the second reading on
		raw, err := reading.Sign(key, key.ID(), reading.Reading{Seq: uint64(i + 1), Time: now.Add(time.Duration(i) * time.Second), ContentType: "temperature/celsius", Value: &v})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Post(node0+"/v1/readings", "application/cose", bytes.NewReader(raw))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("reading %d not stored after the restart: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	metric := `thingnet_rules_fired_total{rule="hot"} 1`
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(deliveries)
		mu.Unlock()
		resp, err := http.Get(node0 + "/metrics")
		var m []byte
		if err == nil {
			m, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if n >= 1 && strings.Contains(string(m), metric) && strings.Contains(string(m), `thingnet_rules_readings_observed_total 4`) &&
			strings.Contains(string(m), `thingnet_rules_alerts_total{outcome="stored"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries; /metrics has %q: %v", n, metric, strings.Contains(string(m), metric))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The alert record: a reading of the gateway itself, in its log.
	var alerts struct{ Items []client.ReadingItem }
	out := run("--identity", "demo-admin", "-o", "json", "readings", "query", "--device", d.Gateway(0).ID(), "--type", rules.AlertType)
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&alerts); err != nil || len(alerts.Items) != 1 {
		t.Fatalf("alert records: %v, %d; want 1\n%s", err, len(alerts.Items), out)
	}
	var alert rules.Firing
	if err := json.Unmarshal(alerts.Items[0].Bytes, &alert); err != nil || alert.Rule != "hot" || alert.Seq != 2 || alert.Device != key.ID() {
		t.Fatalf("the alert record holds %+v, %v; want rule hot at seq 2", alert, err)
	}
	var hist []rules.Firing
	out = run("--identity", "demo-admin", "-o", "json", "rules", "history", "--device", "asensor")
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&hist); err != nil || len(hist) != 1 || hist[0].Seq != 2 {
		t.Fatalf("rules history: %v, %+v; want the one firing at seq 2\n%s", err, hist, out)
	}
	if out, err := cli(t, node0, ks, "--identity", "astranger", "rules", "history", "--device", "asensor"); err == nil || strings.Contains(out, "hot") {
		t.Fatalf("rules history for a reader without a grant: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 1 {
		t.Fatalf("%d deliveries; want 1 (once per transition)", len(deliveries))
	}
	var got rules.Delivery
	if err := json.Unmarshal(bodies[0], &got); err != nil || got.Rule != "hot" || got.Seq != 2 || got.Device != key.ID() {
		t.Fatalf("delivery %+v, %v; want rule hot at seq 2 of %s", got, err, key.ID())
	}
	st, err := d.App(0).View(0)
	if err != nil {
		t.Fatal(err)
	}
	onLedger := func(id string) (identity.PublicKey, error) { // the signer's key as the ledger has it
		rec, err := st.Device(id)
		if err != nil {
			return identity.PublicKey{}, err
		}
		return identity.ParseDID(rec.Key)
	}
	signer, err := webhook.Verify(deliveries[0].Header, bodies[0], onLedger, time.Now(), time.Minute)
	if err != nil {
		t.Fatalf("the delivery's signature does not verify with the gateway's key on the ledger: %v", err)
	}
	if signer != d.Gateway(0).ID() {
		t.Fatalf("signed by %s; want the gateway %s", signer, d.Gateway(0).ID())
	}
}
