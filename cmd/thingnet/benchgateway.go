package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/bench"
)

// benchGatewayCmd is `thingnet bench gateway`: readings/s through MQTT,
// CoAP or HTTP into one gateway's durable log, next to a plain server of the
// same transport with the same clients.
func benchGatewayCmd() *cobra.Command {
	var cfg bench.GatewayBenchConfig
	var seconds, warmup float64
	var dir string
	c := &cobra.Command{
		Use:   "gateway",
		Short: "Send signed readings over MQTT, CoAP or HTTP into one gateway, next to a plain server of the transport with the same clients",
		Long: `Measures, in one run: signed readings/s acknowledged (PUBACK, i.e. durably
stored) by one thingnet gateway over a 1-validator ledger network, and the
reading-to-anchored latency; the same MQTT clients against Debian's plain
mosquitto broker (started on a free 127.0.0.1 port; install it with
` + "`apt-get install mosquitto`" + `: without it the baseline is skipped); the machine's
raw Ed25519 verification rate; and the anchors' bytes on chain per 10,000
readings. It runs one-reading envelopes and envelopes of --batch readings.

With --transport coap the devices send confirmable POSTs to the gateway's
CoAP server (acknowledged by 2.04 once stored), against go-coap's own server
answering 2.04 at once; with --transport http they POST /v1/readings to the
node's API (acknowledged by 202 once stored), against a net/http server that
reads the body and answers 202. Both baselines run in this process.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "thingnet-bench-gateway-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			cfg.Duration = time.Duration(seconds * float64(time.Second))
			cfg.Warmup = time.Duration(warmup * float64(time.Second))
			if warmup == 0 {
				cfg.Warmup = -1 // no warm-up
			}
			cfg.Progress = cmd.ErrOrStderr()
			rep, err := bench.RunGateway(cmd.Context(), dir, cfg)
			if err != nil {
				return err
			}
			rep.WriteReport(cmd.OutOrStdout())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Transport, "transport", bench.TransportMQTT, "how the devices send: mqtt (QoS 1 PUBLISH), coap (confirmable POST) or http (POST /v1/readings)")
	f.IntVar(&cfg.Devices, "devices", 100, "devices, each its own client")
	f.Float64Var(&seconds, "seconds", 10, "measured publishing time of each run")
	f.Float64Var(&warmup, "warmup", 1, "publishing time before the measurement starts, in seconds")
	f.IntVar(&cfg.Batch, "batch", 10, "readings per envelope of the batched variant (1: one-reading envelopes only)")
	f.IntVar(&cfg.Window, "window", 0, "envelopes in flight per client (default 32 for mqtt, 16 for coap, 1 for http)")
	f.IntVar(&cfg.Rounds, "rounds", 3, "rounds of every measurement; medians are reported")
	f.IntVar(&cfg.MaxRate, "max-rate", 30000, "envelopes/s the pre-signed readings are sized for (the batched variant gets half)")
	f.DurationVar(&cfg.AnchorInterval, "anchor-interval", 0, "the gateway's anchor interval (default: a node's, 1s)")
	f.IntVar(&cfg.AnchorBudget, "anchor-budget", 0, "the gateway's anchor budget, bytes per 10,000 log entries (default: a node's, 1000; negative: none)")
	f.IntVar(&cfg.Rate, "rate", 0, "pace the load at this many envelopes/s over all devices (default: as fast as PUBACKs come back)")
	f.DurationVar(&cfg.BatchWindow, "batch-window", 0, "the gateway's batch window (experiments; default: the gateway's own, 2ms)")
	f.IntVar(&cfg.MaxBatch, "max-batch", 0, "the gateway's largest verification batch (experiments; default: the gateway's own, 1024)")
	f.StringVar(&cfg.Mosquitto, "mosquitto", "", "the mosquitto binary (default: mosquitto on PATH, or /usr/sbin/mosquitto)")
	f.BoolVar(&cfg.NoMosquitto, "no-mosquitto", false, "skip the baseline (Mosquitto, or the plain CoAP or HTTP server)")
	f.BoolVar(&cfg.Mochi, "mochi", false, "mqtt: also run a plain mochi-mqtt broker (the one the gateway embeds, allow-all hook, nothing else) in this process")
	f.BoolVar(&cfg.MosquittoPersistence, "mosquitto-persistence", false, "also run Mosquitto with persistence on")
	f.StringVar(&cfg.ProfileDir, "cpuprofile-dir", "", "write a CPU profile of each gateway run's measured window here")
	f.BoolVar(&cfg.Sealed, "sealed", false, "also run sealed readings (values sealed to the organisation's X25519 data key) in the same rounds, and report sealed vs plaintext readings/s")
	f.StringVar(&dir, "dir", "", "where the networks live (default: a temporary directory)")
	return c
}
