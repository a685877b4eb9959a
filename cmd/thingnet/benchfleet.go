package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/bench"
	"github.com/thingnet/thingnet/device"
)

func benchFleetCmd() *cobra.Command {
	var cfg bench.FleetBenchConfig
	var dir, transport string
	c := &cobra.Command{
		Use:   "fleet",
		Short: "Simulated devices on one machine, registered in bulk, spread over a devnet's gateways: readings/s acknowledged vs offered, CPU and memory per device",
		Example: `  thingnet bench fleet --devices 1000 --gateways 4
  thingnet bench fleet --devices 10000 --gateways 4 --wake 60s --run 60s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tr, err := device.ParseTransport(transport)
			if err != nil {
				return err
			}
			cfg.Transport = tr
			if dir == "" {
				d, err := os.MkdirTemp("", "thingnet-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			res, err := bench.FleetBench(cmd.Context(), dir, cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			res.WriteReport(cmd.OutOrStdout())
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&cfg.Devices, "devices", 1000, "simulated devices")
	f.IntVar(&cfg.Gateways, "gateways", 4, "validators, each with a gateway")
	f.DurationVar(&cfg.Wake, "wake", 30*time.Second, "each device's wake interval: one signed reading per wake; the offered rate is devices / (wake·(1+jitter/2))")
	f.Float64Var(&cfg.Jitter, "jitter", 0.2, "fraction of the wake interval added at random to each sleep")
	f.StringVar(&transport, "transport", "http", "http, mqtt or coap")
	f.DurationVar(&cfg.Run, "run", time.Minute, "measured time, once every device has woken")
	f.DurationVar(&cfg.Baseline, "baseline", 10*time.Second, "the devnet alone, measured first")
	f.StringVar(&dir, "dir", "", "where the devnet and the devices' state live (default: a temporary directory)")
	return c
}
