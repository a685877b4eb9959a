package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/bench"
)

func benchMeshCmd() *cobra.Command {
	var cfg bench.MeshBenchConfig
	var dc bench.MeshDistanceConfig
	var distance bool
	var dir string
	c := &cobra.Command{
		Use:   "mesh",
		Short: "Signed, authorized messages between two devices: direct over libp2p, next to the same messages through Mosquitto",
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
			if distance {
				dc.Mosquitto = cfg.Mosquitto
				rs, err := bench.MeshDistance(cmd.Context(), dir, dc, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%-40s %12s %10s %10s\n", "path (emulated links)", "msgs/s", "p50", "p99")
				for _, p := range rs {
					fmt.Fprintf(w, "%-40s %12.0f %10v %10v\n", p.Path, p.MsgsPerSec, p.P50, p.P99)
				}
				fmt.Fprintf(w, "the direct path delivers in %.1f%% of the brokered one-way time\n", 100*float64(rs[0].P50)/float64(rs[1].P50))
				return nil
			}
			res, err := bench.MeshBench(cmd.Context(), dir, cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			writeMeshReport(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&cfg.Messages, "messages", 20000, "messages per throughput run")
	f.IntVar(&cfg.Senders, "senders", 64, "messages in flight at once")
	f.IntVar(&cfg.Latency, "latency-messages", 2000, "messages sent one at a time for latency")
	f.IntVar(&cfg.Size, "size", 64, "body bytes")
	f.IntVar(&cfg.Rounds, "rounds", 3, "rounds of each path; medians are reported")
	f.StringVar(&cfg.Mosquitto, "mosquitto", "", `mosquitto binary ("-": skip the baseline)`)
	f.StringVar(&dir, "dir", "", "working directory (default: a temporary one)")
	f.BoolVar(&distance, "distance", false, "instead: two devices on one LAN, direct, next to the same messages through a broker as far away as a cloud region (emulated links)")
	f.DurationVar(&dc.LAN, "lan-delay", 250*time.Microsecond, "with --distance: one-way latency between the devices")
	f.DurationVar(&dc.Cloud, "cloud-delay", 20*time.Millisecond, "with --distance: one-way latency from a device to the broker")
	return c
}

func writeMeshReport(w io.Writer, r *bench.MeshBenchResult) {
	fmt.Fprintf(w, "%d-byte bodies, %d messages per run (%d in flight), %d one at a time for latency, median of %d rounds\n",
		r.Config.Size, r.Config.Messages, r.Config.Senders, r.Config.Latency, r.Config.Rounds)
	fmt.Fprintf(w, "%-40s %12s %10s %10s %10s\n", "path", "msgs/s", "p50", "p99", "rtt p50")
	for _, p := range r.Paths {
		rtt := "-"
		if p.RTTP50 > 0 {
			rtt = p.RTTP50.String()
		}
		fmt.Fprintf(w, "%-40s %12.0f %10v %10v %10s\n", p.Path, p.MsgsPerSec, p.P50, p.P99, rtt)
	}
	if len(r.Paths) == 2 && r.Paths[1].MsgsPerSec > 0 {
		fmt.Fprintf(w, "direct / brokered: %.2fx messages/s, %.2fx p50 latency\n",
			r.Paths[0].MsgsPerSec/r.Paths[1].MsgsPerSec, float64(r.Paths[0].P50)/float64(r.Paths[1].P50))
	}
}
