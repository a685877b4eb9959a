package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/ledger"
)

// TestRemoteLedger floods a ledger network over its nodes' RPC, as
// `thingnet bench remote` floods validators in other processes: the
// workload goes through a file, the devices are registered, every flood
// tx commits, and the CPU is that of the named processes (this one).
func TestRemoteLedger(t *testing.T) {
	w, err := NewLedgerWorkload("bench-remote", LedgerDevices)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "workload.json")
	if err := SaveLedgerWorkload(file, w); err != nil {
		t.Fatal(err)
	}
	if w, err = LoadLedgerWorkload(file); err != nil {
		t.Fatal(err)
	}
	net, err := chain.StartLocalNet(chain.LocalNetConfig{
		Dir: t.TempDir(), Validators: BaselineValidators, ChainID: w.ChainID, FastBlocks: true, AppState: w.Genesis,
		NewApp: func(_ int, home string) (abci.Application, error) {
			return ledger.NewApp(ledger.Config{Dir: filepath.Join(home, "data", "ledger")})
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := net.Stop(); err != nil {
			t.Error(err)
		}
	}()
	r := Remote{PIDs: []int{os.Getpid()}}
	for _, n := range net.Nodes() {
		r.Addrs = append(r.Addrs, strings.Replace(n.Config().RPCListen, "tcp://", "http://", 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Ledger(ctx, w, 0)
	t.Logf("remote ledger flood: %s", res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed != len(w.Flood) || res.Failed != 0 || res.Rejected != 0 || res.CPU <= 0 || res.P50 <= 0 {
		t.Fatalf("flood: %s (cpu %v); want all %d committed, with CPU and latency", res, res.CPU, len(w.Flood))
	}

	if _, err := LoadLedgerWorkload(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("LoadLedgerWorkload of a missing file: no error")
	}
	if err := os.WriteFile(file, []byte(`{"ChainID":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLedgerWorkload(file); err == nil || !strings.Contains(err.Error(), "not a ledger workload") {
		t.Errorf("LoadLedgerWorkload of an empty workload: %v", err)
	}
}

// TestProcessesCPU: this process's CPU from /proc matches getrusage's to
// within the clock tick, and an unknown process counts nothing.
func TestProcessesCPU(t *testing.T) {
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; { // burn some CPU
	}
	got, want := ProcessesCPU([]int{os.Getpid()}), processCPU()
	if got <= 0 || got > want || want-got > 50*time.Millisecond {
		t.Errorf("ProcessesCPU = %v, getrusage %v", got, want)
	}
	if got := ProcessesCPU([]int{1 << 30}); got != 0 {
		t.Errorf("ProcessesCPU(no such process) = %v", got)
	}
}
