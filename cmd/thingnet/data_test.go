package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/audit"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestDataErase drives the privacy verbs on a devnet: org policy (marks
// sorted and deduplicated, retention) shown by org show; data erase of
// one device's readings, listed by data erasures; the erased entries
// answer "erased" at the gateway; and verify store of the stopped node
// reports them erased, nothing altered.
func TestDataErase(t *testing.T) {
	d, node, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	run("org", "policy", "demo", "--key", "demo-admin", "--public", "class:weather", "--public", "class:meter", "--public", "class:weather", "--retention", "720h")
	var org struct {
		ID     string
		Policy *record.Policy
	}
	if err := json.Unmarshal([]byte(run("org", "show", "demo", "-o", "json")), &org); err != nil || org.Policy == nil ||
		org.Policy.Retention != 720*3600 || strings.Join(org.Policy.Public, ",") != "class:meter,class:weather" {
		t.Fatalf("org show: %+v, %v", org.Policy, err)
	}
	if text := run("org", "show", "demo"); !strings.Contains(text, "retention: 720h0m0s") || !strings.Contains(text, "class:meter") {
		t.Fatalf("org show (text):\n%s", text)
	}

	run("keys", "new", "sensor-e")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "sensor-e")
	for seq := 1; seq <= 3; seq++ {
		run("readings", "send", "--key", "sensor-e", "--seq", strconv.Itoa(seq), "--value", strconv.Itoa(40+seq))
	}
	ctx := testutil.Context(t, 2*time.Minute)
	testutil.WaitFor(t, ctx, "the readings to be anchored", func() bool {
		out, err := cli(t, node, ks, "--identity", "demo-admin", "readings", "get", "2")
		return err == nil && strings.Contains(out, "anchor:  log size")
	})
	out := run("data", "erase", "--key", "demo-admin", "--org", "demo", "--device", "sensor-e", "--from", "0", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--reason", "test")
	if !strings.Contains(out, "data.erase committed") {
		t.Fatalf("data erase: %s", out)
	}
	var es []record.Erasure
	if err := json.Unmarshal([]byte(run("data", "erasures", "--org", "demo", "-o", "json")), &es); err != nil || len(es) != 1 || es[0].Seq != 1 || es[0].Reason != "test" {
		t.Fatalf("data erasures: %+v, %v", es, err)
	}
	if text := run("data", "erasures"); !strings.Contains(text, "#1  demo  did:key:") {
		t.Fatalf("data erasures (text):\n%s", text)
	}
	testutil.WaitFor(t, ctx, "the gateway to erase the readings", func() bool {
		return d.Gateway(0).Stats().Erased == 3
	})
	var p struct {
		Withheld struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(run("readings", "get", "1", "-o", "json")), &p); err != nil || p.Withheld.Code != "erased" || !strings.Contains(p.Withheld.Message, "erasure 1 ") {
		t.Fatalf("readings get of an erased entry: %+v, %v", p, err)
	}
	if err := d.WaitForHeight(ctx, d.App(0).Height()+2); err != nil {
		t.Fatal(err)
	}
	info, err := devnet.Keystore(d.Home()).Info(devnet.GatewayKey(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(d.Home(), "nodes", "node0")
	if _, err := os.Stat(home); err != nil {
		t.Fatal(err)
	}
	vctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := audit.Store(vctx, audit.Config{Home: home, Gateway: info.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean || rep.Readings == nil || len(rep.Readings.Erased) != 3 {
		t.Fatalf("verify store after erasure: clean %v, alterations %+v, erased %+v", rep.Clean, rep.Alterations, rep.Readings)
	}
	text, err := cli(t, node, ks, "verify", "store", "--home", home, "--gateway", info.ID)
	if err != nil || !strings.Contains(text, "erased:   3 entries (erasure 1: 3)") || !strings.Contains(text, "clean: nothing altered") {
		t.Fatalf("verify store text: %v\n%s", err, text)
	}
}
