package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestUpgrade: a 4-validator network under tx load is upgraded from this
// binary to a build with a state migration (-tags upgradetest). The
// validators plan it on the ledger; every node stops at the planned height
// saying why; restarted on the new binary they migrate the state and go
// on: no fork, no acknowledged tx lost, the migration visible on every
// node; the old binary refuses the upgraded state.
func TestUpgrade(t *testing.T) {
	long(t)
	start := time.Now()
	n := StartNet(t, Manifest{Name: "upgrade", Validators: 4, Orgs: []string{"acme"}, Devices: []Device{{Name: "sensor-1", Org: "acme", Class: "sensor"}}})
	r := result{Scenario: "upgrade", Invariant: "no fork; 0 acked txs lost; migrated everywhere"}
	defer func() { report(t, start, r) }()

	newBin := filepath.Join(t.TempDir(), "thingnet-v2")
	if out, err := exec.Command("go", "build", "-tags", "upgradetest", "-o", newBin, "github.com/thingnet/thingnet/cmd/thingnet").CombinedOutput(); err != nil {
		t.Fatalf("building the upgrade: %v\n%s", err, out)
	}
	oldBin := n.Bin

	ctx, cancel := context.WithCancel(context.Background())
	load := n.StartTxLoad(ctx, 2, 100*time.Millisecond)
	defer func() { cancel(); load.Stop() }()

	at := n.MaxHeight() + 25
	var files []string
	for i := range 3 { // 30 of 40
		out, err := n.CLIAt(i, "upgrade", "approve", "--home", n.Nodes[i].Home, "--chain-id", n.ChainID, "--seq", "1",
			"--name", "e2e-v2", "--height", fmt.Sprint(at), "--app-version", "2", "--info", "thingnet-v2 (test build)")
		if err != nil {
			t.Fatalf("upgrade approve on node %d: %v\n%s", i, err, out)
		}
		f := filepath.Join(t.TempDir(), "approval.json")
		if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	n.MustCLI(append([]string{"upgrade", "plan", "--key", "acme-admin"}, files...)...)
	if out := n.MustCLI("upgrade", "show"); !strings.Contains(out, fmt.Sprintf("pending: e2e-v2 at height %d", at)) {
		t.Fatalf("upgrade show = %q", out)
	}

	// Every node stops at the planned height and says why.
	wctx, wcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer wcancel()
	var halted int64 // the highest height a node reported before stopping
	testutil.WaitFor(t, wctx, "every node stopped at the upgrade height", func() bool {
		running := false
		for i := range n.Nodes {
			if n.Running(i) {
				running = true
				halted = max(halted, n.Height(i))
			}
		}
		return !running
	})
	for i, nd := range n.Nodes {
		log, _ := os.ReadFile(filepath.Join(nd.Home, "node.log"))
		if !strings.Contains(string(log), `UPGRADE "e2e-v2"`) {
			t.Errorf("node %d's log does not say which upgrade it needs", i)
		}
		n.Kill(i) // reap
	}
	if halted >= at {
		t.Errorf("a node reported height %d; the network must stop before %d, the upgrade's block", halted, at)
	}

	// The new binary migrates at the planned height and goes on.
	n.Bin = newBin
	for i := range n.Nodes {
		n.Start(i)
	}
	for i := range n.Nodes {
		n.WaitHeight(wctx, i, at+5)
	}
	var u api.Upgrades
	if err := n.Nodes[3].Client.Get(wctx, "/v1/upgrade", &u); err != nil {
		t.Fatal(err)
	}
	if u.AppVersion != 2 || u.Pending != nil || len(u.Done) != 1 || u.Done[0].Height != at {
		t.Errorf("upgrade state on node 3: %+v", u)
	}
	sensor := n.Key("sensor-1").ID()
	for i, nd := range n.Nodes {
		var rec struct {
			Record record.Device `json:"record"`
		}
		if err := nd.Client.Get(wctx, "/v1/devices/"+sensor, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Record.Labels["upgraded"] != "e2e-v2" {
			t.Errorf("node %d: the device's labels after the upgrade: %v", i, rec.Record.Labels)
		}
	}
	time.Sleep(2 * time.Second) // the load keeps committing on the new binary
	cancel()
	load.Stop()

	// The old binary refuses the upgraded state.
	n.Kill(3)
	n.Bin = oldBin
	n.Start(3)
	testutil.WaitFor(t, wctx, "the old binary exits", func() bool { return !n.Running(3) })
	n.Kill(3)
	if log, _ := os.ReadFile(filepath.Join(n.Nodes[3].Home, "node.log")); !strings.Contains(string(log), "application version 2") {
		t.Errorf("the old binary on the upgraded state did not say why it stopped")
	}
	n.Bin = newBin
	n.Start(3)
	n.WaitHeight(wctx, 3, n.MaxHeight())

	heights := n.CheckNoFork(wctx)
	lost := load.CheckAcked(wctx, t)
	tried, acked, failed := load.Counts()
	if lost > 0 {
		t.Errorf("%d acknowledged txs lost", lost)
	}
	r.Load = fmt.Sprintf("2 workers, %d txs acked", acked)
	r.Faults = fmt.Sprintf("upgrade at %d, all 4 restarted", at)
	r.Inputs = fmt.Sprintf("%d txs (%d unacked)", tried, failed)
	t.Logf("upgrade at height %d: the network stopped at %d and went on on the new binary; %d txs tried, %d acknowledged, %d lost; no fork over %d heights; took %v",
		at, halted, tried, acked, lost, heights, time.Since(start).Round(time.Second))
}
