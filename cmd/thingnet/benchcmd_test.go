package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/bench"
)

// TestBenchRemoteFlags: `bench ledger-workload` writes a workload that
// `bench remote` can load and prints its admin for the genesis; `bench
// remote` wants exactly one of --workload and --kvstore, and process ids.
func TestBenchRemoteFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "w.json")
	out := mustCLI(t, "", "", "bench", "ledger-workload", "--txs", "400", "--chain-id", "c1", "--out", file)
	w, err := bench.LoadLedgerWorkload(file)
	if err != nil {
		t.Fatal(err)
	}
	if w.ChainID != "c1" || len(w.Flood) != 400 || !strings.HasPrefix(out, w.Admin+"\n") {
		t.Fatalf("workload for %s with %d txs, printed %q; want c1, 400, the admin %s first", w.ChainID, len(w.Flood), out, w.Admin)
	}
	for args, want := range map[string]string{
		"bench remote --nodes http://127.0.0.1:1":                              "one of --workload FILE and --kvstore",
		"bench remote --nodes http://127.0.0.1:1 --kvstore --workload " + file: "one of --workload FILE and --kvstore",
		"bench remote --nodes http://127.0.0.1:1 --kvstore --pids x":           "--pids",
		"bench ledger-workload":                                                "--out FILE",
	} {
		if out, err := cli(t, "", "", strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("thingnet %s: %v (%s); want an error about %s", args, err, out, want)
		}
	}
}
