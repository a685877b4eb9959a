package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
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
	c.AddCommand(ledger, benchWorkloadCmd(), benchRemoteCmd(), benchGatewayCmd(), benchMeshCmd(), benchFleetCmd())
	return c
}

func benchWorkloadCmd() *cobra.Command {
	var chainID, out string
	var txs int
	c := &cobra.Command{
		Use:   "ledger-workload --out FILE",
		Short: "Sign a ledger flood (device registrations and grant.add txs) for `bench remote`; prints the bench organisation's admin for the genesis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is needed")
			}
			w, err := bench.NewLedgerWorkload(chainID, txs)
			if err != nil {
				return err
			}
			if err := bench.SaveLedgerWorkload(out, w); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", w.Admin)
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d devices, %d flood txs for chain %s; the genesis needs --org bench:%s\n", out, len(w.Register), len(w.Flood), chainID, w.Admin)
			return nil
		},
	}
	c.Flags().StringVar(&chainID, "chain-id", "bench-ledger", "chain id the txs are signed for")
	c.Flags().IntVar(&txs, "txs", 20000, "flood transactions (rounded up to whole rounds of the devices)")
	c.Flags().StringVar(&out, "out", "", "file to write")
	return c
}

func benchRemoteCmd() *cobra.Command {
	var nodes, pids []string
	var workload string
	var kvstore bool
	var txs, rate, mempool int
	c := &cobra.Command{
		Use:   "remote --nodes URL,... (--workload FILE | --kvstore)",
		Short: "Flood a network of validators in other processes over their CometBFT RPC: the ledger with a `bench ledger-workload` file, or CometBFT's kvstore",
		Long: `Flood a running network over CometBFT's RPC (BroadcastTxSync round-robin, commits
from the nodes' NewBlock events over the websocket), as 'bench ledger' floods its
in-process networks. With --pids, CPU per tx and node is the validators' own
(utime + stime from /proc/PID/stat over the flood, divided by 4 nodes). scripts/bench-ledger-netns.sh
uses it for validators in network namespaces.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := bench.Remote{Addrs: nodes, MempoolSize: mempool}
			for _, p := range pids {
				pid, err := strconv.Atoi(p)
				if err != nil || pid <= 0 {
					return fmt.Errorf("--pids %q: want process ids", p)
				}
				r.PIDs = append(r.PIDs, pid)
			}
			var res bench.FloodResult
			var err error
			switch {
			case kvstore == (workload != ""):
				return errors.New("give one of --workload FILE and --kvstore")
			case kvstore:
				res, err = r.KVStore(cmd.Context(), txs, rate)
			default:
				w, lerr := bench.LoadLedgerWorkload(workload)
				if lerr != nil {
					return lerr
				}
				res, err = r.Ledger(cmd.Context(), w, rate)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", res)
			return err
		},
	}
	f := c.Flags()
	f.StringSliceVar(&nodes, "nodes", nil, "the validators' CometBFT RPC, http://host:26657, comma-separated")
	f.StringSliceVar(&pids, "pids", nil, "the validators' process ids on this machine, comma-separated, for their CPU")
	f.StringVar(&workload, "workload", "", "a `bench ledger-workload` file: register its devices, then flood its txs")
	f.BoolVar(&kvstore, "kvstore", false, "flood CometBFT's kvstore with --txs txs of 150 bytes")
	f.IntVar(&txs, "txs", 20000, "with --kvstore: transactions")
	f.IntVar(&rate, "rate", 0, "offered load in tx/s (0: as fast as the nodes accept)")
	f.IntVar(&mempool, "mempool-size", 0, "the nodes' mempool size, bounding the txs outstanding (0: thingnet's default, 20000)")
	return c
}
