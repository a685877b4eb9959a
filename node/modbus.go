package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thingnet/thingnet/gateway/modbus"
	"github.com/thingnet/thingnet/identity"
)

// ModbusConfig is [modbus]: legacy sensors the gateway polls over Modbus
// TCP and records as readings it attests (docs/devices.md).
type ModbusConfig struct {
	// Map is the register map file ([[sensor]] tables: gateway/modbus),
	// relative to the node's home; empty: no Modbus sensors. Each sensor
	// must be registered on the ledger with attested_by this gateway.
	Map string `toml:"map,omitempty"`
}

// startModbus starts polling the sensors of the register map, if there is
// one: each answer becomes one envelope of readings signed by the gateway
// key and ingested like any device's; a sensor that does not answer is
// logged and nothing is recorded for it.
func (n *Node) startModbus(c Config, key *identity.Key) error {
	if c.Modbus.Map == "" {
		return nil
	}
	path := c.Modbus.Map
	if !filepath.IsAbs(path) {
		path = filepath.Join(n.home, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("modbus.map: %w", err)
	}
	cfg, err := modbus.ParseConfig(b)
	if err != nil {
		return fmt.Errorf("modbus.map %s: %w", path, err)
	}
	log := n.log.With("module", "modbus")
	ctx, cancel := context.WithCancel(context.Background())
	ingest := func(ctx context.Context, dev string, raw []byte) error {
		_, err := n.gw.IngestIndex(ctx, dev, raw, "modbus")
		return err
	}
	p := modbus.NewPoller(cfg, modbus.Attest(ctx, key, cfg, ingest, log), log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	n.modbus = p
	n.stopModbus = func() { cancel(); <-done }
	log.Info("polling modbus sensors", "sensors", len(cfg.Sensors), "map", path)
	return nil
}

// Modbus is the node's Modbus poller (nil without [modbus] map): its
// sensors' status.
func (n *Node) Modbus() *modbus.Poller { return n.modbus }
