package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
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

// Compare runs rounds × (kvstore baseline, ledger) floods of txs each,
// alternating so that both see the same machine conditions.
func Compare(ctx context.Context, dir string, txs, rate, rounds int, progress io.Writer) (*Comparison, error) {
	c := &Comparison{Txs: txs, Rate: rate, Rounds: rounds}
	for r := range rounds {
		b, err := RunKVStoreBaseline(ctx, dir, txs, rate)
		if err != nil {
			return c, fmt.Errorf("round %d kvstore baseline: %w", r+1, err)
		}
		c.Baseline = append(c.Baseline, b)
		fmt.Fprintf(progress, "round %d  kvstore  %s\n", r+1, b)
		w, err := NewLedgerWorkload("bench-ledger", txs)
		if err != nil {
			return c, err
		}
		l, err := RunLedger(ctx, dir, w, rate)
		if err != nil {
			return c, fmt.Errorf("round %d ledger: %w", r+1, err)
		}
		c.Ledger = append(c.Ledger, l)
		fmt.Fprintf(progress, "round %d  ledger   %s\n", r+1, l)
	}
	return c, nil
}

func (r FloodResult) String() string {
	return fmt.Sprintf("%6.0f tx/s  p50 %-8v p99 %-8v committed %d/%d rejected %d failed %d",
		r.TxPerSec, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Committed, r.Submitted, r.Rejected, r.Failed)
}

// Median is the median of each figure over rounds.
func Median(rs []FloodResult) FloodResult {
	if len(rs) == 0 {
		return FloodResult{}
	}
	tps := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	for i, r := range rs {
		tps[i], p50[i], p99[i] = r.TxPerSec, r.P50, r.P99
	}
	slices.Sort(tps)
	slices.Sort(p50)
	slices.Sort(p99)
	m := len(rs) / 2
	return FloodResult{TxPerSec: tps[m], P50: p50[m], P99: p99[m]}
}

// WriteReport prints the medians and the ledger/baseline ratios.
func (c *Comparison) WriteReport(w io.Writer) {
	b, l := Median(c.Baseline), Median(c.Ledger)
	offered := "as fast as accepted"
	if c.Rate > 0 {
		offered = fmt.Sprintf("offered at %d tx/s", c.Rate)
	}
	fmt.Fprintf(w, "\n%d txs per flood, %s, %d validators, medians of %d rounds\n", c.Txs, offered, BaselineValidators, len(c.Ledger))
	fmt.Fprintf(w, "%-26s %10s %10s %10s\n", "", "tx/s", "p50", "p99")
	fmt.Fprintf(w, "%-26s %10.0f %10v %10v\n", "CometBFT kvstore baseline", b.TxPerSec, b.P50.Round(time.Millisecond), b.P99.Round(time.Millisecond))
	fmt.Fprintf(w, "%-26s %10.0f %10v %10v\n", "thingnet ledger", l.TxPerSec, l.P50.Round(time.Millisecond), l.P99.Round(time.Millisecond))
	if b.TxPerSec > 0 {
		fmt.Fprintf(w, "ledger / baseline throughput: %.2f\n", l.TxPerSec/b.TxPerSec)
	}
}
