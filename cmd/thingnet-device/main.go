// Command thingnet-device is the minimal device program: the one a board
// vendor starts from. It keeps its key and state in a directory, waits to
// be claimed by an admin of its organisation if it is not registered yet,
// then wakes on its duty cycle, sends signed readings over MQTT, CoAP or
// HTTP (failing over between its gateways in order), and, given a trusted
// header, executes the commands the ledger proves are for it. It links the
// device SDK only: no server, no ledger application (docs/device-sdk.md).
//
//	thingnet-device -chain thingnet-devnet -org demo \
//	  -gateway http://127.0.0.1:26602,mqtt=127.0.0.1:26603,coap=127.0.0.1:26604 \
//	  -transport mqtt -trust 2:9F3A...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/record"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "thingnet-device:", err)
		os.Exit(1)
	}
}

// gateways is the repeatable -gateway flag: API[,mqtt=HOST:PORT][,coap=HOST:PORT].
type gateways []device.Gateway

func (g *gateways) String() string { return fmt.Sprint(*g) }

func (g *gateways) Set(s string) error {
	parts := strings.Split(s, ",")
	gw := device.Gateway{API: parts[0]}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		switch {
		case ok && k == "mqtt":
			gw.MQTT = v
		case ok && k == "coap":
			gw.CoAP = v
		default:
			return fmt.Errorf("%q: want API[,mqtt=HOST:PORT][,coap=HOST:PORT]", s)
		}
	}
	*g = append(*g, gw)
	return nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("thingnet-device", flag.ContinueOnError)
	var gws gateways
	state := fs.String("state", "thingnet-device", "directory of the device's key, trusted header and sequence numbers")
	chainID := fs.String("chain", "", "the network's chain id (required)")
	org := fs.String("org", "", "the organisation that claims the device (required until it is registered)")
	transport := fs.String("transport", "http", "http, mqtt or coap")
	trust := fs.String("trust", "", "HEIGHT:HASH of a header the device trusts: enables the light client and proved commands")
	wake := fs.Duration("wake", 10*time.Second, "time between wakes")
	class := fs.String("class", device.ClassTemperature, "simulated sensor: temperature, motion or meter")
	verbose := fs.Bool("v", false, "log every wake")
	fs.Var(&gws, "gateway", "a gateway, in order of preference: API[,mqtt=HOST:PORT][,coap=HOST:PORT] (repeatable; at least one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *chainID == "" || len(gws) == 0 {
		return errors.New("-chain and at least one -gateway are required (see -h)")
	}
	tr, err := device.ParseTransport(*transport)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	k, created, err := device.LoadOrCreateKey(*state, identity.Ed25519)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(out, "new key: device id %s (state in %s)\n", k.ID(), *state)
	}
	opts := []device.Option{device.WithGateways(gws...), device.WithTransport(tr), device.WithChainID(*chainID), device.WithStateDir(*state)}
	if *trust != "" {
		to, err := lightclient.ParseTrust(*trust)
		if err != nil {
			return err
		}
		opts = append(opts, device.WithTrust(to))
	}
	d, err := device.New(k, opts...)
	if err != nil {
		return err
	}
	defer d.Close()

	if err := device.WaitClaimed(ctx, client.New(gws[0].API), k, *chainID, *org, 15*time.Minute, 2*time.Second, func(code string) {
		fmt.Fprintf(out, "not registered: claim it as an admin of %s (valid 15 minutes):\n\n  thingnet device claim %s\n\n", *org, code)
	}); err != nil {
		return err
	}
	sensor, err := device.NewSensor(*class, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "device %s: %s sensor, waking every %v, sending over %s\n", k.ID(), *class, *wake, tr)
	a := &device.Agent{Device: d, Sensors: []device.Sensor{sensor}, Wake: *wake, Jitter: 0.1, Log: log,
		OnSend: func(rc *device.Receipt) {
			fmt.Fprintf(out, "sent seq %v to %s over %s\n", rc.Seqs, rc.Gateway.API, rc.Transport)
		}}
	if *trust != "" {
		a.Actuator = printActuator{out}
	}
	return a.Run(ctx)
}

// printActuator executes a proved command by printing it: a board
// replaces it with its relay, valve or motor.
type printActuator struct{ out io.Writer }

func (p printActuator) Execute(_ context.Context, c record.Command) error {
	fmt.Fprintf(p.out, "command %d of agreement %d (%s): %s\n", c.ID, c.Agreement, c.Transition, c.Payload)
	return nil
}
