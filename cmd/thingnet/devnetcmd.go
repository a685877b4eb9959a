package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/ratelimit"
)

func devnetCmd() *cobra.Command {
	var c devnet.Config
	var logLevel, logFormat string
	var fleet devnet.FleetConfig
	var lim limitFlags
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a whole local network: validating gateways and a demo organisation, in one command",
		Long: `Run a local thingnet network in this process: --validators nodes on 127.0.0.1,
each with its ledger, CometBFT and HTTP API, and a demo organisation whose admin
key is in the devnet's keystore. Ctrl-C stops it cleanly; running it again with
the same --home resumes the same chain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if err := checkLogFlags(logLevel, logFormat); err != nil {
				return err
			}
			if c.Limits, c.SourceLimits, err = devnetLimits(lim); err != nil {
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
			fmt.Fprintf(out, "gateway limits: %g envelopes/s per device (burst %d), %g/s per source address (burst %d); --per-device-rate, --per-address-rate\n",
				c.Limits.MsgsPerSec, c.Limits.Burst, c.SourceLimits.MsgsPerSec, c.SourceLimits.Burst)
			fmt.Fprintf(out, "explorer: %s/explorer/  (every node serves one; live events: %s/v1/events)\n", d.APIURL(0), d.APIURL(0))
			ks := devnet.Keystore(d.Home()).Dir
			fmt.Fprintf(out, `demo organisation %q, admin key %q (empty passphrase) in %s
try, in another terminal:
  export THINGNET_NODE=%s THINGNET_KEYSTORE=%s THINGNET_IDENTITY=%s
  thingnet keys new sensor-1
  thingnet device register --key %s --org %s --device-key sensor-1
  thingnet device show sensor-1 --prove
  thingnet readings send --key sensor-1 --seq 1 --type temperature/celsius --value 21.4
  thingnet readings verify 0 --via %s
Ctrl-C stops the devnet; run the same command again to resume it.
`, devnet.DemoOrg, devnet.DemoAdminKey, ks, d.APIURL(0), ks, devnet.DemoAdminKey, devnet.DemoAdminKey, devnet.DemoOrg, d.APIURL(min(1, d.Size()-1)))
			if fleet.Exchange {
				fleet.OnEvent = firstOfEachKind(out)
			}
			fl, err := startDevnetFleet(cmd.Context(), out, d, fleet)
			if err != nil {
				return errors.Join(err, d.Stop())
			}
			if fl != nil && fleet.Exchange {
				fmt.Fprintf(out, `exchange: %s records a clip every %v into a private file at node0 and leaves %s (asleep, waking every %v) a message in its mailbox at node1 asking for a wake-up;
  the display fetches the clip through node1, checks it and answers the camera directly over the mesh (--exchange=false: none). First of each step:
`, devnet.CameraName, fleet.ClipEvery, devnet.DisplayName, fleet.DisplayWake)
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
					fmt.Fprintf(out, "height %d%s%s\n", d.App(0).Height(), fleetStatus(fl), exchangeStatus(fl))
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
	f.BoolVar(&fleet.Exchange, "exchange", true, "with a fleet: a camera shares clips (files) with a sleeping display through its mailbox, and the display answers directly over the mesh")
	f.DurationVar(&fleet.ClipEvery, "clip-every", 30*time.Second, "time between the camera's clips")
	f.DurationVar(&fleet.DisplayWake, "display-wake", time.Minute, "the display's own wake interval (the camera's messages wake it earlier)")
	f.Float64Var(&lim.addrRate, "per-address-rate", 1000, "envelopes/s each gateway takes from one source address (every simulated device sends from 127.0.0.1)")
	f.IntVar(&lim.addrBurst, "per-address-burst", 0, "envelopes one source address may send at once (default: 2 s of --per-address-rate)")
	f.Float64Var(&lim.devRate, "per-device-rate", 10, "envelopes/s each gateway takes from one device")
	f.IntVar(&lim.devBurst, "per-device-burst", 20, "envelopes one device may send at once")
	return cmd
}

// firstOfEachKind prints the first exchange event of each kind (and the
// first error), with the time; the periodic status line counts them all.
func firstOfEachKind(out io.Writer) func(devnet.Event) {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(e devnet.Event) {
		mu.Lock()
		defer mu.Unlock()
		if seen[e.Kind] {
			return
		}
		seen[e.Kind] = true
		fmt.Fprintf(out, "  %s %-7s %s\n", time.Now().Format("15:04:05"), e.Kind, e.Text)
	}
}

// exchangeStatus is the exchange's part of the periodic status line.
func exchangeStatus(fl *devnet.Fleet) string {
	if fl == nil {
		return ""
	}
	x := fl.Exchange()
	if x == (devnet.ExchangeStats{}) {
		return ""
	}
	s := fmt.Sprintf("; exchange: %d clips, %d mailbox messages (%d woke the display), %d clips fetched and verified, %d direct answers",
		x.Clips, x.Deposited, x.Woken, x.Fetched, x.Direct)
	if x.Errors > 0 {
		s += fmt.Sprintf(", %d errors", x.Errors)
	}
	return s
}

// limitFlags are the devnet gateways' rate limits.
type limitFlags struct {
	addrRate, devRate   float64
	addrBurst, devBurst int
}

// devnetLimits turns the flags into the gateways' per-device and
// per-address limits.
func devnetLimits(l limitFlags) (dev, src ratelimit.Limits, err error) {
	if !(l.addrRate > 0) || !(l.devRate > 0) || math.IsInf(l.addrRate, 0) || math.IsInf(l.devRate, 0) {
		return dev, src, fmt.Errorf("--per-address-rate %v and --per-device-rate %v: both must be positive", l.addrRate, l.devRate)
	}
	if l.addrBurst == 0 {
		l.addrBurst = int(math.Min(math.Ceil(2*l.addrRate), math.MaxInt32))
	}
	if l.addrBurst < 1 || l.devBurst < 1 {
		return dev, src, fmt.Errorf("--per-address-burst %d and --per-device-burst %d: both must be 1 or more", l.addrBurst, l.devBurst)
	}
	dev = ratelimit.DefaultLimits()
	dev.MsgsPerSec, dev.Burst = l.devRate, l.devBurst
	src = devnet.SourceLimitsFor(l.addrRate, l.addrBurst)
	for _, x := range []ratelimit.Limits{dev, src} {
		if err := x.Validate(); err != nil {
			return dev, src, err
		}
	}
	return dev, src, nil
}
