package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/bench"
)

func benchCmd() *cobra.Command {
	c := &cobra.Command{Use: "bench", Short: "Measure thingnet next to baselines on this machine"}
	var txs, rounds, rate int
	var dir, profileDir string
	var preBatch int
	var preWait time.Duration
	ledger := &cobra.Command{
		Use:   "ledger",
		Short: "Flood a 4-validator ledger network with device-signed txs, next to a bare CometBFT kvstore network",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "thingnet-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			cmp, err := bench.Compare(cmd.Context(), dir, bench.CompareConfig{Txs: txs, Rate: rate, Rounds: rounds, ProfileDir: profileDir, PreCheckBatch: preBatch, PreCheckWait: preWait}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cmp.WriteReport(cmd.OutOrStdout())
			return nil
		},
	}
	f := ledger.Flags()
	f.IntVar(&txs, "txs", 20000, "transactions per flood")
	f.IntVar(&rate, "rate", 0, "offered load in tx/s (0: as fast as the nodes accept; use e.g. 500 to measure latency below saturation)")
	f.IntVar(&rounds, "rounds", 3, "rounds of (baseline, ledger); medians are reported")
	f.StringVar(&dir, "dir", "", "where the networks live (default: a temporary directory)")
	f.StringVar(&profileDir, "cpuprofile-dir", "", "write a CPU profile of each round's floods here (kvstore-r<round>.pprof, ledger-r<round>.pprof)")
	f.IntVar(&preBatch, "precheck-batch", 0, "most mempool signature checks a ledger node verifies in one batch (0: the default, 64; 1: one at a time)")
	f.DurationVar(&preWait, "precheck-wait", 0, "how long a ledger node's batch of mempool signature checks waits to fill (0: only while the previous batch is verified)")
	c.AddCommand(ledger, benchGatewayCmd(), benchMeshCmd(), benchFleetCmd())
	return c
}
