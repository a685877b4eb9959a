package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/client"
)

// TestReadingsQueryNetwork: a device's readings stored by two real
// gateways (some by one, some by both, as a device that fails over sends
// again) are answered by readings query --network once each, from the
// gateways the ledger lists (their api labels), with buckets computed
// from the de-duplicated readings; with one gateway down, the answer says
// so and holds what the other has.
func TestReadingsQueryNetwork(t *testing.T) {
	d, node0, ks := testDevnet(t, 2)
	node1 := d.APIURL(1)
	run := func(args ...string) string { return mustCLI(t, node0, ks, args...) }
	run("keys", "new", "qsensor")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "qsensor", "--class", "qsensor")
	for i, u := range []string{node0, node1} { // the devnet labels its gateways at genesis
		if out := run("device", "show", d.Gateway(i).ID()); !strings.Contains(out, client.GatewayAPILabel+"="+u) {
			t.Fatalf("gateway %d has no %s label %s:\n%s", i, client.GatewayAPILabel, u, out)
		}
	}
	syncNodes(t, d)
	dir := t.TempDir()
	post := func(url, file string) {
		t.Helper()
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(url+"/v1/readings", "application/cose", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s to %s: HTTP %d", file, url, resp.StatusCode)
		}
	}
	// Seqs 1, 2 at gateway 0; 3, 4 at both; 5, 6 at gateway 1.
	sum := 0.0
	for seq := 1; seq <= 6; seq++ {
		f := filepath.Join(dir, strconv.Itoa(seq))
		run("readings", "send", "--key", "qsensor", "--seq", strconv.Itoa(seq), "--value", strconv.Itoa(10*seq), "--type", "temperature/celsius", "--out", f)
		sum += float64(10 * seq)
		if seq <= 4 {
			post(node0, f)
		}
		if seq >= 3 {
			post(node1, f)
		}
	}

	decode := func(out string, v any) {
		t.Helper()
		if err := json.NewDecoder(strings.NewReader(out)).Decode(v); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
	}
	var a client.NetworkAnswer
	out := run("--identity", "demo-admin", "readings", "query", "--device", "qsensor", "--network", "-o", "json")
	decode(out, &a)
	if len(a.Items) != 6 || a.Duplicates != 2 || len(a.Gateways) != 2 {
		t.Fatalf("network query: %d readings, %d duplicates, gateways %+v; want 6, 2, 2 gateways\n%s", len(a.Items), a.Duplicates, a.Gateways, out)
	}
	for k, it := range a.Items {
		if it.Seq != uint64(k+1) {
			t.Fatalf("reading %d has seq %d: each reading once, in order", k, it.Seq)
		}
	}
	for _, g := range a.Gateways {
		if !g.Answered || g.Readings != 4 {
			t.Fatalf("gateway %+v; want answered with 4 readings", g)
		}
	}
	out = run("--identity", "demo-admin", "readings", "query", "--device", "qsensor", "--network", "--bucket", "1d", "-o", "json")
	decode(out, &a)
	if n := len(a.Buckets); n < 1 || n > 2 {
		t.Fatalf("network buckets: %+v", a.Buckets)
	}
	var count uint64
	var got float64
	for _, b := range a.Buckets {
		count += b.Count
		got += *b.Sum
	}
	if count != 6 || got != sum {
		t.Fatalf("network buckets count %d readings summing to %g; want 6 summing to %g", count, got, sum)
	}
	// CSV and the table.
	if out := run("--identity", "demo-admin", "readings", "query", "--device", "qsensor", "--network", "-o", "csv"); strings.Count(out, "\n") < 7 || !strings.HasPrefix(out, "device,seq,time") {
		t.Fatalf("CSV:\n%s", out)
	}
	if out := run("--identity", "demo-admin", "readings", "query", "--device", "qsensor", "--bucket", "1h"); !strings.Contains(out, "temperature/celsius") || !strings.Contains(out, "buckets") {
		t.Fatalf("table:\n%s", out)
	}
	// Anonymous: nothing, and the refusal says why.
	if out, err := cli(t, node0, ks, "readings", "query", "--device", "qsensor"); err == nil || !strings.Contains(out+err.Error(), "unauthenticated") {
		t.Fatalf("anonymous query: %v\n%s", err, out)
	}

	// Gateway 1 down: reported, and gateway 0's readings still answered.
	if err := d.StopNode(1); err != nil {
		t.Fatal(err)
	}
	out = run("--identity", "demo-admin", "readings", "query", "--device", "qsensor", "--network", "-o", "json")
	decode(out, &a)
	if len(a.Items) != 4 || !strings.Contains(out, "NOT ANSWERED") {
		t.Fatalf("with gateway 1 down: %d readings; want 4 and gateway 1 reported\n%s", len(a.Items), out)
	}
}
