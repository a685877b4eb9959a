package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/devnet"
)

func devnetCmd() *cobra.Command {
	var c devnet.Config
	var logLevel, logFormat string
	var fleet devnet.FleetConfig
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a whole local network: validating gateways and a demo organisation, in one command",
		Long: `Run a local thingnet network in this process: --validators nodes on 127.0.0.1,
each with its ledger, CometBFT and HTTP API, and a demo organisation whose admin
key is in the devnet's keystore. Ctrl-C stops it cleanly; running it again with
the same --home resumes the same chain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLogFlags(logLevel, logFormat); err != nil {
				return err
			}
			c.Logger = newLogger(logLevel, logFormat)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "starting devnet in %s ...\n", c.Home)
			progress := progressBar(cmd.ErrOrStderr(), "devnet")
			c.Progress = func(done, total int, step string) { progress(done, total+1, step) }
			d, err := devnet.Start(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			err = d.WaitForHeight(ctx, 1)
			cancel()
			if err != nil {
				return errors.Join(fmt.Errorf("devnet: no block committed within a minute: %w", err), d.Stop())
			}
			progress(d.Size()+3, d.Size()+3, "first block committed")
			verb := "created"
			if d.Resumed {
				verb = "resumed"
			}
			fmt.Fprintf(out, "%s devnet: chain %s, %d validators, home %s\n", verb, d.ChainID(), d.Size(), d.Home())
			for i := range d.Size() {
				fmt.Fprintf(out, "  node%d  api %s  mqtt %s  coap %s  rpc %s  p2p %s\n", i, d.APIURL(i), d.MQTTAddr(i), d.CoAPAddr(i), d.RPCURL(i), d.P2PAddr(i))
				if m := d.Mesh(i); m != nil && len(m.Addrs()) > 0 {
					fmt.Fprintf(out, "         mesh %s\n", m.Addrs()[0])
				}
			}
			fmt.Fprintf(out, "explorer: %s/explorer/  (every node serves one; live events: %s/v1/events)\n", d.APIURL(0), d.APIURL(0))
			ks := devnet.Keystore(d.Home()).Dir
			fmt.Fprintf(out, `demo organisation %q, admin key %q (empty passphrase) in %s
try, in another terminal:
  export THINGNET_NODE=%s THINGNET_KEYSTORE=%s
  thingnet keys new sensor-1
  thingnet device register --key %s --org %s --device-key sensor-1
  thingnet device show sensor-1 --prove
  thingnet readings send --key sensor-1 --seq 1 --type temperature/celsius --value 21.4
  thingnet readings verify 0 --via %s
Ctrl-C stops the devnet; run the same command again to resume it.
`, devnet.DemoOrg, devnet.DemoAdminKey, ks, d.APIURL(0), ks, devnet.DemoAdminKey, devnet.DemoOrg, d.APIURL(1))
			fl, err := startDevnetFleet(cmd.Context(), out, d, fleet)
			if err != nil {
				return errors.Join(err, d.Stop())
			}
			tick := time.NewTicker(10 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-cmd.Context().Done():
					fmt.Fprintln(out, "stopping devnet ...")
					if fl != nil {
						if err := fl.Stop(); err != nil {
							fmt.Fprintf(out, "stopping the fleet: %v\n", err)
						}
					}
					if err := d.Stop(); err != nil {
						return err
					}
					fmt.Fprintln(out, "stopped; run again to resume")
					return nil
				case <-tick.C:
					fmt.Fprintf(out, "height %d%s\n", d.App(0).Height(), fleetStatus(fl))
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Home, "home", filepath.Join(defaultHome(), "devnet"), "directory for the devnet's keys and storage")
	f.IntVar(&c.Validators, "validators", 0, "number of validators (default 4; fixed once the devnet exists)")
	f.IntVar(&c.BasePort, "base-port", 0, "first port: node i uses base+10i (p2p), +1 (CometBFT RPC), +2 (API), +3 (MQTT), +4 (CoAP, UDP), +5 (mesh, TCP and QUIC); default 26600")
	f.StringVar(&c.ChainID, "chain-id", "", "chain id of a new devnet (default thingnet-devnet)")
	f.BoolVar(&c.FastBlocks, "fast", false, "short consensus timeouts (sub-second blocks)")
	f.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json (one object per line)")
	f.IntVar(&fleet.Size, "fleet", devnet.DefaultFleet, "simulated devices to run (temperature, motion and meter sensors across the gateways); 0: none")
	f.DurationVar(&fleet.Wake, "fleet-wake", 5*time.Second, "time between a simulated device's wakes")
	return cmd
}
