package devnet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/record"
	"github.com/thingnet/thingnet/relay"
)

// DefaultFleet is how many simulated devices `thingnet devnet` runs.
const DefaultFleet = 20

// FleetConfig describes the devnet's simulated fleet.
type FleetConfig struct {
	// Agreement, with at least 2 devices, has the fleet's first
	// temperature sensor command its second device through an agreement
	// the ledger executes (FleetAgreement), fed by a relayer in this
	// process: readings → anchor → agreement → a proved command.
	Agreement bool
	Size      int           // devices; they keep their state in <home>/fleet and are the same on every start
	Wake      time.Duration // time between wakes; default 5 s
	Batch     int           // readings per wake; default 1
	OnSend    func(device int, rc *device.Receipt)
	OnCommand func(device int, c record.Command) error // the devices' actuator (simulated)

	// Exchange adds a camera (CameraName) and a sleeping display
	// (DisplayName) of the demo organisation, each with a mesh node,
	// granted each other's messages: every ClipEvery the camera records a
	// clip into a private file at its gateway, records the manifest on the
	// ledger and leaves the display a message in its mailbox asking to
	// wake it; the display, woken (or at its own wake, DisplayWake),
	// fetches the clip through another gateway, checks it and answers the
	// camera directly over the mesh. OnEvent is told each step.
	Exchange    bool
	ClipEvery   time.Duration // default 30 s
	ClipSize    int           // bytes; default 256 KiB
	DisplayWake time.Duration // default 60 s
	OnEvent     func(Event)
}

// Gateways are the devnet's gateways, as a device sees them.
func (d *Devnet) Gateways() []device.Gateway {
	gws := make([]device.Gateway, d.Size())
	for i := range gws {
		gws[i] = device.Gateway{API: d.APIURL(i), MQTT: d.MQTTAddr(i), CoAP: d.CoAPAddr(i)}
	}
	return gws
}

// Fleet is the devnet's running fleet.
type Fleet struct {
	*device.Fleet
	Agreement uint64 // the fleet's agreement, if any
	stopRelay func()
	exchange  *exchange
}

// Stop stops the exchange, the relayer and the devices.
func (f *Fleet) Stop() error {
	var err error
	if f.exchange != nil {
		err = f.exchange.stop()
	}
	if f.stopRelay != nil {
		f.stopRelay()
	}
	return errors.Join(err, f.Fleet.Stop())
}

// Exchange counts the steps of the fleet's exchange (zero without one).
func (f *Fleet) Exchange() ExchangeStats {
	if f.exchange == nil {
		return ExchangeStats{}
	}
	return f.exchange.stats()
}

// FleetAgreement is the agreement a devnet fleet runs when asked: the
// sensor's readings above the threshold switch the fan on, below it off.
const FleetAgreement = `agreement: fleet-fan
description: >
  A simulated temperature sensor switches a simulated fan of the devnet's
  fleet on when it reads more than the threshold, and off again below it.
parties:
  sensor: device
  fan: device
  owner: org
state:
  threshold: {type: int, init: "21"}
  on: bool
  switched: int
transitions:
  warm:
    on: {reading: sensor, type: temperature/celsius}
    when: reading.value > state.threshold && !state.on
    do:
      - command: {to: fan, payload: '"on"'}
      - set: {on: "true", switched: state.switched + 1}
  cool:
    on: {reading: sensor, type: temperature/celsius}
    when: reading.value <= state.threshold && state.on
    do:
      - command: {to: fan, payload: '"off"'}
      - set: {on: "false", switched: state.switched + 1}
  retune:
    on: {call: owner}
    args: {threshold: int}
    do:
      - set: {threshold: args.threshold}
`

// StartFleet starts a simulated fleet: devices of the demo organisation of
// several classes (temperature, motion, meter), spread across the gateways
// (device i prefers gateway i mod N and falls back on the others) and the
// transports (HTTP, MQTT, CoAP), registered by the demo admin on the first
// start, each with a light client provisioned with the hash of block 1.
// Stop it before the devnet.
func (d *Devnet) StartFleet(ctx context.Context, c FleetConfig) (*Fleet, error) {
	admin, err := Keystore(d.Home()).Load(DemoAdminKey, nil)
	if err != nil {
		return nil, fmt.Errorf("devnet: fleet: %w", err)
	}
	if err := d.WaitForHeight(ctx, 2); err != nil {
		return nil, err
	}
	cl := client.New(d.APIURL(0))
	h, err := cl.Header(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("devnet: fleet: the header to trust: %w", err)
	}
	trust := lightclient.TrustOptions{Height: 1, Hash: h.SignedHeader.Hash(), Period: lightclient.DefaultTrustingPeriod}
	df, err := device.StartFleet(ctx, device.FleetConfig{
		Size: c.Size, Dir: filepath.Join(d.Home(), "fleet"), Name: "sim", ChainID: d.ChainID(), Org: DemoOrg, Admin: admin,
		Gateways: d.Gateways(), Wake: c.Wake, Batch: c.Batch, Trust: &trust, Log: d.log.With("module", "fleet"),
		OnSend: c.OnSend, OnCommand: c.OnCommand,
		// Jobs (thingnet job create --command ping) are proved, run and reported.
		Commands: map[string]device.CommandHandler{"ping": func(context.Context, map[string]any) error { return nil }},
	})
	if err != nil {
		return nil, err
	}
	f := &Fleet{Fleet: df}
	if c.Agreement && len(df.Devices) >= 2 {
		if err := f.startAgreement(ctx, d, cl, admin); err != nil {
			return nil, errors.Join(fmt.Errorf("devnet: the fleet's agreement: %w", err), f.Stop())
		}
	}
	if c.Exchange {
		if c.ClipEvery <= 0 {
			c.ClipEvery = 30 * time.Second
		}
		if c.ClipSize <= 0 {
			c.ClipSize = 256 << 10
		}
		if c.ClipSize > maxClipSize {
			return nil, errors.Join(fmt.Errorf("devnet: clips of %d bytes; at most %d", c.ClipSize, maxClipSize), f.Stop())
		}
		if c.DisplayWake <= 0 {
			c.DisplayWake = time.Minute
		}
		if err := f.startExchange(ctx, d, c, admin, &trust); err != nil {
			return nil, errors.Join(fmt.Errorf("devnet: the fleet's exchange: %w", err), f.Stop())
		}
	}
	return f, nil
}

// startAgreement deploys FleetAgreement between the fleet's first two
// devices (once: a resumed devnet finds it) and relays the sensor's
// anchored readings to it.
func (f *Fleet) startAgreement(ctx context.Context, d *Devnet, c *client.Client, admin *identity.Key) error {
	sensor, fan := f.Devices[0].Device.ID(), f.Devices[1].Device.ID()
	var page struct {
		Items []record.Agreement `json:"items"`
	}
	if err := c.Get(ctx, "/v1/agreements?limit=1000", &page); err != nil {
		return err
	}
	for _, a := range page.Items {
		if a.Name == "fleet-fan" && a.Status == record.AgreementActive {
			f.Agreement = a.ID
		}
	}
	if f.Agreement == 0 {
		res, err := c.Send(ctx, admin, "", &record.AgreementDeploy{Source: []byte(FleetAgreement),
			Parties: map[string]string{"sensor": "device:" + sensor, "fan": "device:" + fan, "owner": "org:" + DemoOrg}}, true)
		if err != nil {
			return err
		}
		if err := c.Get(ctx, "/v1/agreements?limit=1000", &page); err != nil {
			return err
		}
		for _, a := range page.Items {
			if a.Name == "fleet-fan" && a.Deployed == res.Height {
				f.Agreement = a.ID
			}
		}
		if f.Agreement == 0 {
			return errors.New("deployed, but not found")
		}
		// Set the threshold where the simulated sensor starts (the fleet
		// seeds device i's sensor with i+1), so that its drift crosses it.
		s, err := device.NewSensor(f.Devices[0].Class, 1)
		if err != nil {
			return err
		}
		th := int64(math.Floor(*s.Read(time.Now()).Value))
		if _, err := c.Send(ctx, admin, "", &record.AgreementCall{ID: f.Agreement, Transition: "retune", Args: map[string]any{"threshold": th}}, true); err != nil {
			return err
		}
	}
	r, err := relay.New(relay.Config{Client: c, Key: admin, Agreements: []uint64{f.Agreement}, Since: time.Now(),
		Poll: 500 * time.Millisecond, Logger: d.log.With("module", "relay")})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	f.stopRelay = func() { cancel(); <-done }
	return nil
}
