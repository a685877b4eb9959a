package devnet

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/lightclient"
)

// DefaultFleet is how many simulated devices `thingnet devnet` runs.
const DefaultFleet = 20

// FleetConfig describes the devnet's simulated fleet.
type FleetConfig struct {
	Size      int           // devices; they keep their state in <home>/fleet and are the same on every start
	Wake      time.Duration // time between wakes; default 5 s
	Batch     int           // readings per wake; default 1
	OnSend    func(device int, rc *device.Receipt)
	OnCommand func(device int, c ledger.Command) error // the devices' actuator (simulated)
}

// Gateways are the devnet's gateways, as a device sees them.
func (d *Devnet) Gateways() []device.Gateway {
	gws := make([]device.Gateway, d.Size())
	for i := range gws {
		gws[i] = device.Gateway{API: d.APIURL(i), MQTT: d.MQTTAddr(i), CoAP: d.CoAPAddr(i)}
	}
	return gws
}

// StartFleet starts a simulated fleet: devices of the demo organisation of
// several classes (temperature, motion, meter), spread across the gateways
// (device i prefers gateway i mod N and falls back on the others) and the
// transports (HTTP, MQTT, CoAP), registered by the demo admin on the first
// start, each with a light client provisioned with the hash of block 1.
// Stop it before the devnet.
func (d *Devnet) StartFleet(ctx context.Context, c FleetConfig) (*device.Fleet, error) {
	admin, err := Keystore(d.Home()).Load(DemoAdminKey, nil)
	if err != nil {
		return nil, fmt.Errorf("devnet: fleet: %w", err)
	}
	if err := d.WaitForHeight(ctx, 2); err != nil {
		return nil, err
	}
	h, err := api.NewClient(d.APIURL(0)).Header(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("devnet: fleet: the header to trust: %w", err)
	}
	trust := lightclient.TrustOptions{Height: 1, Hash: h.SignedHeader.Hash(), Period: lightclient.DefaultTrustingPeriod}
	return device.StartFleet(ctx, device.FleetConfig{
		Size: c.Size, Dir: filepath.Join(d.Home(), "fleet"), Name: "sim", ChainID: d.ChainID(), Org: DemoOrg, Admin: admin,
		Gateways: d.Gateways(), Wake: c.Wake, Batch: c.Batch, Trust: &trust, Log: d.log.With("module", "fleet"), OnSend: c.OnSend, OnCommand: c.OnCommand,
	})
}
