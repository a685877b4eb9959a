package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/thingnet/thingnet/ledger"
)

// Comparison is the ledger measured next to the kvstore baseline in the same
// run, several rounds alternating, reported as medians.
type Comparison struct {
	Txs      int
	Rate     int // tx/s offered; 0 = as fast as accepted
	Rounds   int
	Ledger   []FloodResult
	Baseline []FloodResult
}

// CompareConfig describes a Compare run.
type CompareConfig struct {
	Txs    int // transactions per flood
	Rate   int // tx/s offered; 0 = as fast as accepted
	Rounds int
	// ProfileDir, if set, receives a CPU profile of each flood
	// (kvstore-r<round>.pprof, ledger-r<round>.pprof), from its first
	// submission to its last commit.
	ProfileDir string
	// PreCheckBatch and PreCheckWait configure the ledger nodes' batches
	// of mempool signature checks (ledger.Config); 0 for the defaults.
	PreCheckBatch int
	PreCheckWait  time.Duration
}

// Compare runs rounds × (kvstore baseline, ledger) floods of txs each,
// alternating so that both see the same machine conditions.
func Compare(ctx context.Context, dir string, cfg CompareConfig, progress io.Writer) (*Comparison, error) {
	txs, rate, rounds := cfg.Txs, cfg.Rate, cfg.Rounds
	c := &Comparison{Txs: txs, Rate: rate, Rounds: rounds}
	profile := func(name string, round int) string {
		if cfg.ProfileDir == "" {
			return ""
		}
		return filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-r%d.pprof", name, round))
	}
	for r := range rounds {
		b, err := runKVStore(ctx, dir, txs, rate, profile("kvstore", r+1))
		if err != nil {
			return c, fmt.Errorf("round %d kvstore baseline: %w", r+1, err)
		}
		c.Baseline = append(c.Baseline, b)
		fmt.Fprintf(progress, "round %d  kvstore  %s\n", r+1, b)
		w, err := NewLedgerWorkload("bench-ledger", txs)
		if err != nil {
			return c, err
		}
		l, err := runLedgerNet(ctx, dir, w, rate, profile("ledger", r+1), ledger.Config{PreCheckBatch: cfg.PreCheckBatch, PreCheckWait: cfg.PreCheckWait})
		if err != nil {
			return c, fmt.Errorf("round %d ledger: %w", r+1, err)
		}
		c.Ledger = append(c.Ledger, l)
		fmt.Fprintf(progress, "round %d  ledger   %s\n", r+1, l)
	}
	return c, nil
}

func (r FloodResult) String() string {
	s := r.figures()
	if r.PreCheckBatches > 0 {
		s += fmt.Sprintf(" precheck batch %.1f sigs", float64(r.PreCheckSigs)/float64(r.PreCheckBatches))
	}
	if r.RejectReason != "" {
		s += " (first rejection: " + r.RejectReason + ")"
	}
	if r.FailReason != "" {
		s += " (first failure: " + r.FailReason + ")"
	}
	return s
}

func (r FloodResult) figures() string {
	return fmt.Sprintf("%6.0f tx/s  p50 %-8v p99 %-8v cpu/tx/node %-7v committed %d/%d rejected %d failed %d",
		r.TxPerSec, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), perNode(r.CPUPerTx()), r.Committed, r.Submitted, r.Rejected, r.Failed)
}

// Median is the median of each figure over rounds.
func Median(rs []FloodResult) FloodResult {
	if len(rs) == 0 {
		return FloodResult{}
	}
	tps := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	cpu := make([]time.Duration, len(rs))
	for i, r := range rs {
		tps[i], p50[i], p99[i], cpu[i] = r.TxPerSec, r.P50, r.P99, r.CPUPerTx()
	}
	slices.Sort(tps)
	slices.Sort(p50)
	slices.Sort(p99)
	slices.Sort(cpu)
	m := len(rs) / 2
	// Committed 1 with CPU the median per-tx figure keeps CPUPerTx meaningful.
	return FloodResult{TxPerSec: tps[m], P50: p50[m], P99: p99[m], Committed: 1, CPU: cpu[m]}
}

// WriteReport prints the medians and the ledger/baseline ratios.
func (c *Comparison) WriteReport(w io.Writer) {
	b, l := Median(c.Baseline), Median(c.Ledger)
	offered := "as fast as accepted"
	if c.Rate > 0 {
		offered = fmt.Sprintf("offered at %d tx/s", c.Rate)
	}
	fmt.Fprintf(w, "\n%d txs per flood, %s, %d validators, medians of %d rounds\n", c.Txs, offered, BaselineValidators, len(c.Ledger))
	fmt.Fprintf(w, "%-26s %10s %10s %10s %14s\n", "", "tx/s", "p50", "p99", "cpu/tx/node")
	fmt.Fprintf(w, "%-26s %10.0f %10v %10v %14v\n", "CometBFT kvstore baseline", b.TxPerSec, b.P50.Round(time.Millisecond), b.P99.Round(time.Millisecond), perNode(b.CPUPerTx()))
	fmt.Fprintf(w, "%-26s %10.0f %10v %10v %14v\n", "thingnet ledger", l.TxPerSec, l.P50.Round(time.Millisecond), l.P99.Round(time.Millisecond), perNode(l.CPUPerTx()))
	if b.TxPerSec > 0 {
		fmt.Fprintf(w, "ledger / baseline throughput: %.2f\n", l.TxPerSec/b.TxPerSec)
	}
}

// perNode is a whole-network CPU figure per node (the flood's own workers
// included), rounded to the microsecond.
func perNode(d time.Duration) time.Duration {
	return (d / BaselineValidators).Round(time.Microsecond)
}
