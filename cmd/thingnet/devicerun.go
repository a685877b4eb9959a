package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/record"
)

// runConfig is the TOML file of `thingnet device run`.
type runConfig struct {
	Name      string           `toml:"name"`      // the device's name: its state directory under state_dir
	Key       string           `toml:"key"`       // keystore name of the device's key (default: a key file in its state directory)
	StateDir  string           `toml:"state_dir"` // where devices keep their key, trusted header and seq
	ChainID   string           `toml:"chain_id"`
	Org       string           `toml:"org"`
	Class     string           `toml:"class"` // temperature, motion, meter; "mixed" cycles them in a fleet
	Wake      time.Duration    `toml:"wake"`  // time between wakes
	Batch     int              `toml:"batch"` // readings per wake, sent under one signature
	Transport string           `toml:"transport"`
	Trust     string           `toml:"trust"` // HEIGHT:HASH of a header the device trusts
	Admin     string           `toml:"admin"` // keystore name of an admin key that registers the device(s); else the device shows a claim code
	Gateways  []device.Gateway `toml:"gateway"`
	// Firmware updates (needs trust): check the rollout every N wakes (0: off).
	FirmwareEvery int `toml:"firmware_every"`
	// Desired configuration (needs trust): prove and apply it every N
	// wakes, reporting what was applied (0: off; docs/management.md).
	ConfigEvery int      `toml:"config_every"`
	VendorKeys  []string `toml:"vendor_keys"` // ORG=DID: pin vendors' signing keys (default: the release's signer on the ledger)
}

const runExample = `# thingnet device run --config device.toml
name = "sensor-7"
org = "demo"
class = "temperature"      # temperature, motion, meter (a fleet: "mixed")
wake = "10s"               # duty cycle: wake, read, send, sleep
batch = 1                  # readings per wake, under one signature
transport = "mqtt"         # http, mqtt or coap
# trust = "2:9F3A..."      # HEIGHT:HASH of a header: enables the light-client checks
# admin = "demo-admin"     # register directly instead of showing a claim code
# firmware_every = 6       # with trust: check the firmware rollout every 6 wakes, install what it offers
# config_every = 1         # with trust: prove and apply the desired configuration every wake (wake_s, transport)
# vendor_keys = ["acme=did:key:z6Mk..."]  # pin vendors' signing keys

[[gateway]]                # in order of preference
api = "http://127.0.0.1:26602"
mqtt = "127.0.0.1:26603"
coap = "127.0.0.1:26604"

[[gateway]]
api = "http://127.0.0.1:26612"
mqtt = "127.0.0.1:26613"
coap = "127.0.0.1:26614"
`

func deviceRun(g *globals) *cobra.Command {
	var file string
	var fleet int
	var duration time.Duration
	rc := runConfig{}
	c := &cobra.Command{
		Use:   "run",
		Short: "Run a simulated device (or --fleet N of them): sensors, duty-cycled sleep, readings to the gateways",
		Long: `Run a device agent: it keeps its key, trusted header and sequence number in
its state directory, wakes every --wake, reads its simulated sensor (temperature,
motion or meter), sends the readings in one signed envelope to the first gateway
that answers, and sleeps. A new device that no admin registers shows a claim
code and waits until it is claimed ('thingnet device claim CODE'). --fleet N runs
N devices of mixed classes across the gateways, registered by --admin.

With --trust (a light client), the device's simulated actuator executes the
commands agreements on the ledger issue to it: each proved, run once (the last
one executed is kept in the state directory), and printed. With --trust and
--firmware-every N it also checks, every N wakes, which firmware release its
organisation's rollout offers it (proved with the light client); a release
newer than the one it runs is fetched from the gateways, checked (vendor
signature, class, sequence number, digest and size) and installed in the
inactive one of two image slots under its state directory (firmware/), the
previous kept for rollback; then reported on the ledger. A failed install is
retried a few times, then reported once as failed.

Without gateways in the config, --node is the only gateway, with MQTT on the API
port + 1 and CoAP on + 2 (as devnet lays them out). Example config:

` + runExample,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				flags := rc
				if _, err := toml.DecodeFile(file, &rc); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				mergeRunFlags(cmd, &rc, flags)
			}
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			return g.runDevices(ctx, cmd.OutOrStdout(), rc, fleet)
		},
	}
	f := c.Flags()
	f.StringVar(&file, "config", "", "TOML config (see the example above); flags given too override it")
	f.IntVar(&fleet, "fleet", 0, "run this many devices instead of one")
	f.DurationVar(&duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	f.StringVar(&rc.Name, "name", "device", "device name (its state directory); a fleet's devices are NAME-0000, ...")
	f.StringVar(&rc.Key, "key", "", "the device's key in the keystore (default: one made in its state directory)")
	f.StringVar(&rc.StateDir, "state-dir", filepath.Join(defaultHome(), "devices"), "directory of the devices' state")
	f.StringVar(&rc.Org, "org", "", "organisation of the device(s)")
	f.StringVar(&rc.Class, "class", "temperature", "sensor class: temperature, motion, meter, or mixed")
	wake := 10 * time.Second
	f.DurationVar(&wake, "wake", wake, "time between wakes")
	f.IntVar(&rc.Batch, "batch", 1, "readings per wake, sent under one signature")
	f.StringVar(&rc.Transport, "transport", "http", "http, mqtt or coap")
	f.StringVar(&rc.Trust, "trust", "", "HEIGHT:HASH of a header the device trusts (light-client checks)")
	f.StringVar(&rc.Admin, "admin", "", "admin key that registers the device(s) (else: a claim code)")
	f.StringVar(&rc.ChainID, "chain-id", "", "chain id (default: asked from the gateway)")
	f.IntVar(&rc.ConfigEvery, "config-every", 1, "prove and apply the desired configuration every N wakes (wake_s, transport), reporting what it applied (with --trust; 0: never)")
	f.IntVar(&rc.FirmwareEvery, "firmware-every", 0, "check the firmware rollout every N wakes and install what it offers (needs --trust; 0: never)")
	f.StringArrayVar(&rc.VendorKeys, "vendor-key", nil, "ORG=DID: accept firmware of vendor ORG only signed by this key (repeatable; default: the release's signer on the ledger)")
	c.PreRun = func(*cobra.Command, []string) { rc.Wake = wake }
	return c
}

// mergeRunFlags lets flags set on the command line override the file.
func mergeRunFlags(cmd *cobra.Command, rc *runConfig, flags runConfig) {
	set := func(name string, apply func()) {
		if cmd.Flags().Changed(name) {
			apply()
		}
	}
	set("name", func() { rc.Name = flags.Name })
	set("key", func() { rc.Key = flags.Key })
	set("state-dir", func() { rc.StateDir = flags.StateDir })
	set("org", func() { rc.Org = flags.Org })
	set("class", func() { rc.Class = flags.Class })
	set("wake", func() { rc.Wake = flags.Wake })
	set("batch", func() { rc.Batch = flags.Batch })
	set("transport", func() { rc.Transport = flags.Transport })
	set("trust", func() { rc.Trust = flags.Trust })
	set("admin", func() { rc.Admin = flags.Admin })
	set("chain-id", func() { rc.ChainID = flags.ChainID })
	set("firmware-every", func() { rc.FirmwareEvery = flags.FirmwareEvery })
	set("config-every", func() { rc.ConfigEvery = flags.ConfigEvery })
	set("vendor-key", func() { rc.VendorKeys = flags.VendorKeys })
	if rc.StateDir == "" {
		rc.StateDir = flags.StateDir
	}
	if rc.Name == "" {
		rc.Name = flags.Name
	}
}

// gatewayFromNode derives a gateway from an API URL as devnet lays ports out.
func gatewayFromNode(api string) (device.Gateway, error) {
	if !strings.Contains(api, "://") {
		api = "http://" + api
	}
	u, err := url.Parse(api)
	if err != nil {
		return device.Gateway{}, err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return device.Gateway{}, fmt.Errorf("--node %s: no port to derive the MQTT and CoAP ports from; list the gateways in a config", api)
	}
	h := u.Hostname()
	return device.Gateway{API: api, MQTT: net.JoinHostPort(h, strconv.Itoa(port+1)), CoAP: net.JoinHostPort(h, strconv.Itoa(port+2))}, nil
}

func (g *globals) runDevices(ctx context.Context, out io.Writer, rc runConfig, fleet int) error {
	if rc.Org == "" {
		return errors.New("the device's organisation is required (--org or org in the config)")
	}
	if len(rc.Gateways) == 0 {
		gw, err := gatewayFromNode(g.node)
		if err != nil {
			return err
		}
		rc.Gateways = []device.Gateway{gw}
	}
	tr, err := device.ParseTransport(rc.Transport)
	if err != nil {
		return err
	}
	if rc.Wake <= 0 {
		rc.Wake = 10 * time.Second
	}
	var trust *lightclient.TrustOptions
	if rc.Trust != "" {
		t, err := parseTrust(rc.Trust)
		if err != nil {
			return err
		}
		trust = &t
	}
	if rc.ChainID == "" {
		st, err := client.New(rc.Gateways[0].API).Status(ctx)
		if err != nil {
			return fmt.Errorf("asking the chain id: %w (or set chain_id)", err)
		}
		rc.ChainID = st.ChainID
	}
	if rc.FirmwareEvery < 0 {
		return fmt.Errorf("--firmware-every %d: want a number of wakes, or 0 for no updates", rc.FirmwareEvery)
	}
	if rc.FirmwareEvery > 0 && trust == nil {
		return errors.New("--firmware-every needs --trust: the device proves what its rollout offers with the light client")
	}
	if rc.FirmwareEvery > 0 && fleet > 0 {
		return errors.New("--firmware-every runs with one device, not --fleet")
	}
	vendorKeys, err := parseVendorKeys(rc.VendorKeys)
	if err != nil {
		return err
	}
	var admin *identity.Key
	if rc.Admin != "" {
		if admin, err = g.loadKey(rc.Admin); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	printSend := func(name string, r *device.Receipt) {
		mu.Lock()
		defer mu.Unlock()
		seqs := fmt.Sprint(r.Seqs[0])
		if n := len(r.Seqs); n > 1 {
			seqs += fmt.Sprintf("..%d (%d readings, one signature)", r.Seqs[n-1], n)
		}
		fmt.Fprintf(out, "%s %s: sent seq %s to %s over %s\n", time.Now().Format("15:04:05"), name, seqs, r.Gateway.API, r.Transport)
	}
	if fleet > 0 {
		if admin == nil {
			return errors.New("--fleet needs an admin key to register the devices (--admin NAME or admin in the config)")
		}
		classes := device.SensorClasses
		if rc.Class != "" && rc.Class != "mixed" {
			classes = []string{rc.Class}
		}
		fmt.Fprintf(out, "starting a fleet of %d devices (%s) in %s, waking every %v ...\n", fleet, strings.Join(classes, ", "), rc.StateDir, rc.Wake)
		fl, err := device.StartFleet(ctx, device.FleetConfig{Size: fleet, Dir: rc.StateDir, Name: rc.Name, ChainID: rc.ChainID, Org: rc.Org,
			Admin: admin, Gateways: rc.Gateways, Classes: classes, Transports: []device.Transport{tr}, Wake: rc.Wake, Batch: rc.Batch, Trust: trust,
			OnSend: func(i int, r *device.Receipt) { printSend(fmt.Sprintf("%s-%04d", rc.Name, i), r) },
			OnCommand: func(i int, cmd record.Command) error {
				return printActuator{out: out, name: fmt.Sprintf("%s-%04d", rc.Name, i)}.Execute(ctx, cmd)
			}})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "fleet running: %d devices, %d newly registered in %s\n", len(fl.Devices), fl.Registered, rc.Org)
		<-ctx.Done()
		env, rd := fl.Sent()
		fmt.Fprintf(out, "stopping: %d envelopes, %d readings sent\n", env, rd)
		return fl.Stop()
	}
	return g.runOne(ctx, out, rc, tr, trust, admin, vendorKeys, printSend)
}

// parseVendorKeys reads ORG=DID pairs.
func parseVendorKeys(pairs []string) (map[string]identity.PublicKey, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := map[string]identity.PublicKey{}
	for _, p := range pairs {
		org, did, ok := strings.Cut(p, "=")
		if !ok || org == "" {
			return nil, fmt.Errorf("--vendor-key %q: want ORG=DID", p)
		}
		k, err := identity.ParseDID(did)
		if err != nil {
			return nil, fmt.Errorf("--vendor-key %q: %w", p, err)
		}
		out[org] = k
	}
	return out, nil
}

func (g *globals) runOne(ctx context.Context, out io.Writer, rc runConfig, tr device.Transport, trust *lightclient.TrustOptions, admin *identity.Key,
	vendorKeys map[string]identity.PublicKey, printSend func(string, *device.Receipt)) error {
	class := rc.Class
	if class == "" || class == "mixed" {
		class = device.ClassTemperature
	}
	dir := filepath.Join(rc.StateDir, rc.Name)
	var k *identity.Key
	var created bool
	var err error
	if rc.Key != "" {
		k, err = g.loadKey(rc.Key)
	} else {
		k, created, err = device.LoadOrCreateKey(dir, identity.Ed25519)
	}
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(out, "%s: new key, device id %s (state in %s)\n", rc.Name, k.ID(), dir)
	}
	opts := []device.Option{device.WithGateways(rc.Gateways...), device.WithTransport(tr), device.WithChainID(rc.ChainID), device.WithStateDir(dir)}
	if trust != nil {
		opts = append(opts, device.WithTrust(*trust))
	}
	d, err := device.New(k, opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	c := client.New(rc.Gateways[0].API)
	known, err := device.Registered(ctx, c, k.ID())
	if err != nil {
		return err
	}
	if !known && admin != nil {
		proof, err := k.Sign(record.PossessionMessage(rc.ChainID, rc.Org, k.ID()))
		if err != nil {
			return err
		}
		if _, err := device.RegisterAll(ctx, c, admin, rc.ChainID, []*record.DeviceRegister{{Org: rc.Org, Device: k.ID(), Class: class, Proof: proof}}); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: registered in %s by %s\n", rc.Name, rc.Org, admin.ID())
		known = true
	}
	if !known {
		err := device.WaitClaimed(ctx, c, k, rc.ChainID, rc.Org, 15*time.Minute, 2*time.Second, func(code string) {
			fmt.Fprintf(out, "%s is not registered. Claim it as an admin of %s (the code is valid 15 minutes; QR codes need a QR module this build does not have):\n\n  thingnet device claim %s\n\nwaiting to be claimed ...\n", rc.Name, rc.Org, code)
		})
		if errors.Is(err, context.Canceled) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	s, err := device.NewSensor(class, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s sensor, waking every %v, sending over %s to %s\n", rc.Name, class, rc.Wake, tr, rc.Gateways[0].API)
	a := &device.Agent{Device: d, Sensors: []device.Sensor{s}, Wake: rc.Wake, Batch: rc.Batch, Jitter: 0.1,
		Log: newLogger("warn", "text"), OnSend: func(r *device.Receipt) { printSend(rc.Name, r) }}
	if trust != nil {
		a.Actuator = printActuator{out: out, name: rc.Name}
		a.ConfigEvery = max(rc.ConfigEvery, 0) // proves what it applies with the light client
	}
	if rc.FirmwareEvery > 0 {
		if a.Firmware, err = firmwareUpdater(out, rc.Name, dir, rc.FirmwareEvery, vendorKeys); err != nil {
			return err
		}
	}
	return a.Run(ctx)
}

// firmwareUpdater opens the device's image slots and prints each update
// check that does something.
func firmwareUpdater(out io.Writer, name, dir string, every int, vendorKeys map[string]identity.PublicKey) (*device.FirmwareUpdater, error) {
	slots, err := device.OpenSlots(filepath.Join(dir, device.FirmwareSlotsDir), device.Firmware{Version: "factory"})
	if err != nil {
		return nil, err
	}
	run, _ := slots.Running()
	fmt.Fprintf(out, "%s: runs firmware %s (seq %d); checks its rollout every %d wakes (image slots in %s)\n",
		name, run.Version, run.Seq, every, filepath.Join(dir, device.FirmwareSlotsDir))
	return &device.FirmwareUpdater{Installer: slots, Every: every, VendorKeys: vendorKeys, OnResult: func(r device.UpdateResult) {
		now := time.Now().Format("15:04:05")
		switch r.Action {
		case device.UpdateInstalled:
			fmt.Fprintf(out, "%s %s: installed firmware %s (seq %d, sha256 %x), reported on the ledger\n", now, name, r.Running.Version, r.Running.Seq, r.Running.Digest)
		case device.UpdateReported:
			fmt.Fprintf(out, "%s %s: reported firmware %s on the ledger\n", now, name, r.Running.Version)
		case device.UpdateRetry:
			fmt.Fprintf(out, "%s %s: firmware %s attempt %d failed, trying again later: %v\n", now, name, r.Offer.Release.Manifest.Version, r.Attempt, r.Err)
		case device.UpdateGaveUp:
			fmt.Fprintf(out, "%s %s: gave up on firmware %s after %d attempt(s), reported as failed: %v\n", now, name, r.Offer.Release.Manifest.Version, r.Attempt, r.Err)
		}
	}}, nil
}

// startDevnetFleet starts the devnet's simulated fleet and says so; it
// returns nil for a fleet of 0.
func startDevnetFleet(ctx context.Context, out io.Writer, d *devnet.Devnet, c devnet.FleetConfig) (*devnet.Fleet, error) {
	if c.Size <= 0 {
		fmt.Fprintln(out, "no simulated fleet (--fleet 0)")
		return nil, nil
	}
	fmt.Fprintf(out, "starting a simulated fleet of %d devices in organisation %s (--fleet 0: none) ...\n", c.Size, devnet.DemoOrg)
	var mu sync.Mutex
	announced := map[device.Transport]bool{}
	c.OnSend = func(i int, r *device.Receipt) {
		mu.Lock()
		defer mu.Unlock()
		if !announced[r.Transport] { // the first reading over each transport; then the periodic summary
			announced[r.Transport] = true
			fmt.Fprintf(out, "  %s reading  sim-%04d's first over %s (seq %d) stored by %s\n", time.Now().Format("15:04:05"), i, r.Transport, r.Seqs[0], r.Gateway.API)
		}
	}
	c.OnCommand = func(i int, cmd record.Command) error {
		return printActuator{out: out, name: fmt.Sprintf("sim-%04d", i)}.Execute(ctx, cmd)
	}
	c.Agreement = c.Size >= 2
	fl, err := d.StartFleet(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("devnet: simulated fleet: %w", err)
	}
	count := map[string]int{}
	for _, fd := range fl.Devices {
		count[fd.Class+" over "+string(fd.Transport)]++
	}
	fmt.Fprintf(out, "fleet: %d devices (%d newly registered), waking every %v, each preferring one of the %d gateways and falling back on the others:\n",
		len(fl.Devices), fl.Registered, c.Wake, d.Size())
	for _, cl := range device.SensorClasses {
		for _, tr := range []device.Transport{device.HTTP, device.MQTT, device.CoAP} {
			if n := count[cl+" over "+string(tr)]; n > 0 {
				fmt.Fprintf(out, "  %2d %s sensors over %s\n", n, cl, tr)
			}
		}
	}
	if fl.Agreement != 0 {
		fmt.Fprintf(out, "agreement %d (fleet-fan): %s's temperature readings switch %s's fan on and off; a relayer here feeds it anchored readings, the fan executes the proved commands\n",
			fl.Agreement, fl.Devices[0].Name, fl.Devices[1].Name)
		fmt.Fprintf(out, "  thingnet agreement show %d --node %s\n", fl.Agreement, d.APIURL(0))
	}
	fmt.Fprintf(out, "  watch one: thingnet readings list --device %s --node %s\n", fl.Devices[0].Device.ID(), d.APIURL(0))
	return fl, nil
}

// fleetStatus is the fleet's part of the devnet's periodic status line.
func fleetStatus(fl *devnet.Fleet) string {
	if fl == nil {
		return ""
	}
	env, rd := fl.Sent()
	return fmt.Sprintf(", fleet: %d envelopes, %d readings sent", env, rd)
}

// printActuator is a simulated actuator: it prints the commands it runs.
type printActuator struct {
	out  io.Writer
	name string
}

func (p printActuator) Execute(_ context.Context, c record.Command) error {
	fmt.Fprintf(p.out, "%s %s: executing command %d of agreement %d (%s): %q\n", time.Now().Format("15:04:05"), p.name, c.ID, c.Agreement, c.Transition, c.Payload)
	return nil
}
