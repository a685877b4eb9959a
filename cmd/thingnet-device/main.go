// Command thingnet-device is the minimal device program: the one a board
// vendor starts from. It keeps its key and state in a directory, waits to
// be claimed by an admin of its organisation if it is not registered yet,
// then wakes on its duty cycle, sends signed readings over MQTT, CoAP or
// HTTP (failing over between its gateways in order), and, given a trusted
// header, applies the desired configuration it proves (its wake interval,
// its transport), executes the commands the ledger proves are for it and (with
// -firmware-every) installs the firmware its organisation rolls out into
// the image slots in its state directory. It links the device SDK only: no
// server, no ledger application (docs/device-sdk.md), and builds with
// CGO_ENABLED=0 for every linux architecture (docs/devices.md); build it
// for a board with -tags grpcnotrace, 5–6 MiB smaller (deps_test.go). Built
// with -tags pkcs11 (and cgo) its key can be in a PKCS#11 token (-key
// pkcs11:..., a P-256 or an Ed25519 key).
// -measure prints what a signed reading and a header update cost it.
//
//	thingnet-device -chain thingnet-devnet -org demo \
//	  -gateway http://127.0.0.1:26602,mqtt=127.0.0.1:26603,coap=127.0.0.1:26604 \
//	  -transport mqtt -trust 2:9F3A... -firmware-every 6
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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
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
	fwEvery := fs.Int("firmware-every", 0, "check the firmware rollout every N wakes and install what it offers into the image slots in the state directory (needs -trust; 0: never)")
	stats := fs.Bool("stats", false, "print the CPU time and the Go runtime's memory when it stops")
	keyURI := fs.String("key", "", "a PKCS#11 token URI (RFC 7512) of the device's key, made there on first use (builds with -tags pkcs11); default: a key file in the state directory")
	keyAlg := fs.String("key-alg", "", "the algorithm of a key made on first use: ed25519 or p256 (default: ed25519 for a key file, p256 in a token); a key already there keeps its own")
	devID := fs.String("id", "", "the device's id when it is not its key's (after a key rotation the id stays the first key's)")
	measureFor := fs.Duration("measure", 0, "measure the CPU cost of a signed reading and of a light-client header update (each for about this long), print it and exit")
	cfgEvery := fs.Int("config-every", 1, "prove and apply the desired configuration every N wakes (wake_s, transport; needs -trust; 0: never), reporting what it applied")
	seal := fs.Bool("seal", false, "seal every reading's value to the organisation's data key (HPKE; verified with the light client with -trust): gateways store, anchor and prove it without reading it")
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
	if *fwEvery < 0 {
		return fmt.Errorf("-firmware-every %d: want a number of wakes, or 0 for no updates", *fwEvery)
	}
	if *fwEvery > 0 && *trust == "" {
		return errors.New("-firmware-every needs -trust: the device proves what its rollout offers with the light client")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(*state, 0o700); err != nil {
		return err
	}
	k, created, tok, err := loadKey(*keyURI, *state, *keyAlg)
	if err != nil {
		return err
	}
	if tok != nil {
		defer tok.Close()
	}
	id := k.ID()
	if *devID != "" {
		id = *devID
	}
	if created {
		fmt.Fprintf(out, "new key: device id %s (state in %s)\n", id, *state)
	}
	if *measureFor > 0 {
		return measure(ctx, out, k, *chainID, gws[0].API, *measureFor)
	}
	if *stats {
		defer printStats(out)
	}
	opts := []device.Option{device.WithID(id), device.WithGateways(gws...), device.WithTransport(tr), device.WithChainID(*chainID), device.WithStateDir(*state)}
	if *trust != "" {
		to, err := lightclient.ParseTrust(*trust)
		if err != nil {
			return err
		}
		opts = append(opts, device.WithTrust(to))
	}
	if *seal {
		opts = append(opts, device.WithSealing(0))
	}
	sensor, err := device.NewSensor(*class, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	var d *device.Device
	opts = append(opts, jobHandlers(out, &d, sensor)...)
	d, err = device.New(k, opts...)
	if err != nil {
		return err
	}
	defer d.Close()

	if *devID != "" {
		// A rotated key: the device was registered under its first key.
	} else if err := device.WaitClaimed(ctx, client.New(gws[0].API), k, *chainID, *org, 15*time.Minute, 2*time.Second, func(code string) {
		fmt.Fprintf(out, "not registered: claim it as an admin of %s (valid 15 minutes):\n\n  thingnet device claim %s\n\n", *org, code)
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "device %s: %s sensor, waking every %v, sending over %s\n", id, *class, *wake, tr)
	a := &device.Agent{Device: d, Sensors: []device.Sensor{sensor}, Wake: *wake, Jitter: 0.1, Log: log,
		OnSend: func(rc *device.Receipt) {
			fmt.Fprintf(out, "sent seq %v to %s over %s\n", rc.Seqs, rc.Gateway.API, rc.Transport)
		}}
	if *trust != "" {
		a.Actuator = printActuator{out}
		a.ConfigEvery = max(*cfgEvery, 0)
		a.OnConfig = func(rep *record.ConfigReport, sent bool) {
			if sent {
				fmt.Fprintf(out, "applied configuration %v (proved at height %d; %d refused), reported\n", rep.Applied, rep.Height, len(rep.Refused))
			}
		}
		a.OnJobs = func(res *device.JobsResult) {
			for _, r := range res.Ran {
				fmt.Fprintf(out, "job %d of %s (%s): %s %s, reported %v\n", r.ID, r.Org, r.Command, r.Outcome, r.Reason, r.Reported)
			}
		}
	}
	if *fwEvery > 0 {
		if a.Firmware, err = firmwareUpdater(out, *state, *fwEvery); err != nil {
			return err
		}
	}
	return a.Run(ctx)
}

// firmwareUpdater opens the image slots in the state directory and prints
// each update check that does something.
func firmwareUpdater(out io.Writer, state string, every int) (*device.FirmwareUpdater, error) {
	dir := filepath.Join(state, device.FirmwareSlotsDir)
	slots, err := device.OpenSlots(dir, device.Firmware{Version: "factory"})
	if err != nil {
		return nil, err
	}
	run, err := slots.Running()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "runs firmware %s (seq %d); checks its rollout every %d wakes (image slots in %s)\n", run.Version, run.Seq, every, dir)
	return &device.FirmwareUpdater{Installer: slots, Every: every, OnResult: func(r device.UpdateResult) {
		switch r.Action {
		case device.UpdateInstalled:
			fmt.Fprintf(out, "installed firmware %s (seq %d, sha256 %x), reported on the ledger\n", r.Running.Version, r.Running.Seq, r.Running.Digest)
		case device.UpdateReported:
			fmt.Fprintf(out, "reported firmware %s on the ledger\n", r.Running.Version)
		case device.UpdateRetry:
			fmt.Fprintf(out, "firmware %s attempt %d failed, trying again later: %v\n", r.Offer.Release.Manifest.Version, r.Attempt, r.Err)
		case device.UpdateGaveUp:
			fmt.Fprintf(out, "gave up on firmware %s after %d attempt(s), reported as failed: %v\n", r.Offer.Release.Manifest.Version, r.Attempt, r.Err)
		}
	}}, nil
}

// jobHandlers are the commands this program runs for jobs
// (docs/management.md, "Commands and jobs"), at the configuration's
// wakes: "ping" answers on its output; "report-now" sends a reading of
// its sensor at once (argument "note", optional, is printed).
func jobHandlers(out io.Writer, d **device.Device, sensor device.Sensor) []device.Option {
	return []device.Option{
		device.WithCommandHandler("ping", func(_ context.Context, args map[string]any) error {
			fmt.Fprintf(out, "ping %v: pong\n", args)
			return nil
		}),
		device.WithCommandHandler("report-now", func(ctx context.Context, args map[string]any) error {
			if note, ok := args["note"].(string); ok {
				fmt.Fprintf(out, "report-now: %s\n", note)
			}
			_, err := (*d).Send(ctx, sensor.Read(time.Now()))
			return err
		}),
	}
}

// printActuator executes a proved command by printing it: a board
// replaces it with its relay, valve or motor.
type printActuator struct{ out io.Writer }

func (p printActuator) Execute(_ context.Context, c record.Command) error {
	fmt.Fprintf(p.out, "command %d of agreement %d (%s): %s\n", c.ID, c.Agreement, c.Transition, c.Payload)
	return nil
}
