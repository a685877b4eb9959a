package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/atomicfile"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/record"
)

// KeyFile is the name of a simulated device's private key in its state
// directory (PKCS#8 DER, mode 0600). A real device keeps its key in a
// secure element or an encrypted keystore.
const KeyFile = "key"

// LoadOrCreateKey loads the key in dir, or generates one of alg and saves
// it there. created reports a new key.
func LoadOrCreateKey(dir string, alg identity.Algorithm) (k *identity.Key, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	der, err := os.ReadFile(path)
	if err == nil {
		k, err = identity.ParsePrivateKey(der)
		if err != nil {
			return nil, false, fmt.Errorf("device: %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if k, err = identity.GenerateKey(alg); err != nil {
		return nil, false, err
	}
	if der, err = identity.MarshalPrivateKey(k); err != nil {
		return nil, false, err
	}
	if err := atomicfile.WriteFile(path, der); err != nil {
		return nil, false, fmt.Errorf("device: saving its key: %w", err)
	}
	return k, true, nil
}

// FleetConfig describes a simulated fleet.
type FleetConfig struct {
	Size       int
	Dir        string // one state directory per device (key, trusted header, seq)
	Name       string // devices are Name-0000, Name-0001, ...; default "sim"
	ChainID    string
	Org        string
	Admin      *identity.Key // an admin of Org, who registers the devices
	Gateways   []Gateway     // device i prefers gateway i mod len, then the others in order
	Classes    []string      // device i simulates Classes[i mod len]; default SensorClasses
	Transports []Transport   // device i sends with Transports[i mod len]; default HTTP, MQTT, CoAP
	Wake       time.Duration // default 5 s
	Batch      int           // readings per wake; default 1
	// Jitter is the fraction of Wake added at random to each sleep, so the
	// devices do not wake in step: default 0.2; negative: none. A device
	// then wakes on average every Wake·(1+Jitter/2) plus its send time.
	Jitter float64
	Trust  *lightclient.TrustOptions
	Log    *slog.Logger
	// OnSend, if set, is called after each envelope is acknowledged.
	OnSend func(device int, rc *Receipt)
	// OnCommand, if set (with Trust), is each device's actuator: it is
	// called with every command the ledger holds for the device, once.
	OnCommand func(device int, c record.Command) error
	// ConfigEvery (with Trust): each device proves, applies and reports its
	// desired configuration every ConfigEvery wakes (Agent.ConfigEvery);
	// 0: every wake; negative: never.
	ConfigEvery int
	// OnConfig, if set, is called with each configuration report a device sent.
	OnConfig func(device int, rep *record.ConfigReport)
	// Commands (with Trust and configuration wakes): every device
	// registers these handlers (WithCommandHandler), so it proves, runs
	// and reports its jobs at its configuration wakes.
	Commands map[string]CommandHandler
}

// actuatorFunc adapts a function to an Actuator.
type actuatorFunc func(ctx context.Context, c record.Command) error

func (f actuatorFunc) Execute(ctx context.Context, c record.Command) error { return f(ctx, c) }

// FleetDevice is one device of a fleet.
type FleetDevice struct {
	Name      string
	Class     string
	Transport Transport
	Device    *Device
}

// Fleet is a running simulated fleet.
type Fleet struct {
	Devices    []FleetDevice
	Registered int // devices registered by this start (the others were already)

	envelopes, readings atomic.Int64
	cancel              context.CancelFunc
	wg                  sync.WaitGroup
}

// StartFleet creates (or reloads) the fleet's devices, registers those the
// ledger does not know yet, and runs one agent per device until Stop.
func StartFleet(ctx context.Context, c FleetConfig) (*Fleet, error) {
	switch {
	case c.Size <= 0:
		return nil, fmt.Errorf("device: fleet of %d devices", c.Size)
	case c.Dir == "" || c.Org == "" || c.Admin == nil || len(c.Gateways) == 0:
		return nil, errors.New("device: a fleet needs a directory, an organisation, its admin's key and gateways")
	}
	if c.Name == "" {
		c.Name = "sim"
	}
	if len(c.Classes) == 0 {
		c.Classes = SensorClasses
	}
	if len(c.Transports) == 0 {
		c.Transports = []Transport{HTTP, MQTT, CoAP}
	}
	if c.Wake <= 0 {
		c.Wake = 5 * time.Second
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = 0.2
	case c.Jitter < 0:
		c.Jitter = 0
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{}
	var regs []*record.DeviceRegister
	for i := range c.Size {
		name := fmt.Sprintf("%s-%04d", c.Name, i)
		dir := filepath.Join(c.Dir, name)
		k, _, err := LoadOrCreateKey(dir, identity.Ed25519)
		if err != nil {
			return nil, err
		}
		fd := FleetDevice{Name: name, Class: c.Classes[i%len(c.Classes)], Transport: c.Transports[i%len(c.Transports)]}
		gws := make([]Gateway, 0, len(c.Gateways))
		for j := range c.Gateways {
			gws = append(gws, c.Gateways[(i+j)%len(c.Gateways)])
		}
		opts := []Option{WithGateways(gws...), WithTransport(fd.Transport), WithChainID(c.ChainID), WithStateDir(dir), WithLogger(c.Log)}
		if c.Trust != nil {
			opts = append(opts, WithTrust(*c.Trust))
		}
		for name, h := range c.Commands {
			opts = append(opts, WithCommandHandler(name, h))
		}
		if fd.Device, err = New(k, opts...); err != nil {
			return nil, fmt.Errorf("device %s: %w", name, err)
		}
		f.Devices = append(f.Devices, fd)
		proof, err := k.Sign(record.PossessionMessage(c.ChainID, c.Org, k.ID()))
		if err != nil {
			return nil, err
		}
		regs = append(regs, &record.DeviceRegister{Org: c.Org, Device: k.ID(), Class: fd.Class, Proof: proof,
			Labels: map[string]string{"name": name, "simulated": "true"}})
	}
	n, err := RegisterAll(ctx, client.New(c.Gateways[0].API), c.Admin, c.ChainID, regs)
	if err != nil {
		return nil, fmt.Errorf("device: registering the fleet: %w", err)
	}
	f.Registered = n
	actx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for i, fd := range f.Devices {
		s, err := NewSensor(fd.Class, uint64(i)+1)
		if err != nil {
			cancel()
			return nil, err
		}
		a := &Agent{Device: fd.Device, Sensors: []Sensor{s}, Wake: c.Wake, Batch: c.Batch, Jitter: c.Jitter, Log: c.Log,
			OnSend: func(rc *Receipt) {
				f.envelopes.Add(1)
				f.readings.Add(int64(len(rc.Seqs)))
				if c.OnSend != nil {
					c.OnSend(i, rc)
				}
			}}
		if c.OnCommand != nil && c.Trust != nil {
			a.Actuator = actuatorFunc(func(_ context.Context, cmd record.Command) error { return c.OnCommand(i, cmd) })
		}
		if c.Trust != nil && c.ConfigEvery >= 0 {
			a.ConfigEvery = max(c.ConfigEvery, 1)
			a.OnConfig = func(rep *record.ConfigReport, sent bool) {
				if sent && c.OnConfig != nil {
					c.OnConfig(i, rep)
				}
			}
		}
		f.wg.Go(func() { _ = a.Run(actx) })
	}
	return f, nil
}

// Sent returns the envelopes and readings the fleet's gateways acknowledged.
func (f *Fleet) Sent() (envelopes, readings int64) { return f.envelopes.Load(), f.readings.Load() }

// Stop stops the agents and saves the devices' state.
func (f *Fleet) Stop() error {
	f.cancel()
	f.wg.Wait()
	var errs []error
	for _, d := range f.Devices {
		errs = append(errs, d.Device.Close())
	}
	return errors.Join(errs...)
}

// RegisterAll registers the devices of regs that the ledger does not know
// yet, signed by admin: the transactions go to c back to back with
// consecutive nonces and are then waited for together (one or two blocks
// for the lot, instead of one per device). It returns how many it
// registered.
func RegisterAll(ctx context.Context, c *client.Client, admin *identity.Key, chainID string, regs []*record.DeviceRegister) (int, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	if chainID != "" && st.ChainID != chainID {
		return 0, fmt.Errorf("the node is of chain %q, not %q", st.ChainID, chainID)
	}
	nonce, err := c.NextNonce(ctx, admin.ID())
	if err != nil {
		return 0, err
	}
	var sent []string
	inFlight := 0
	for _, m := range regs {
		known, err := Registered(ctx, c, m.Device)
		if err != nil {
			return 0, err
		}
		if known {
			continue
		}
		if inFlight == registerChunk { // stay well inside the node's mempool
			if err := waitNonce(ctx, c, admin.ID(), nonce-1); err != nil {
				return 0, err
			}
			if st, err = c.Status(ctx); err != nil {
				return 0, err
			}
			inFlight = 0
		}
		raw, err := record.NewTx(admin, "", st.ChainID, nonce, st.Height+client.TxLifetime, m)
		if err != nil {
			return 0, err
		}
		if _, err := c.Submit(ctx, raw, false); err != nil {
			return 0, fmt.Errorf("registering %s: %w", m.Device, err)
		}
		nonce++
		inFlight++
		sent = append(sent, m.Device)
	}
	if len(sent) > 0 {
		if err := waitNonce(ctx, c, admin.ID(), nonce-1); err != nil {
			return 0, err
		}
	}
	for _, id := range sent {
		if ok, err := Registered(ctx, c, id); err != nil || !ok {
			return 0, errors.Join(err, fmt.Errorf("%s: the registration was refused when executed", id))
		}
	}
	return len(sent), nil
}

// registerChunk is how many registrations RegisterAll has in flight at once.
const registerChunk = 500

// waitNonce waits until signer's committed nonce reaches n.
func waitNonce(ctx context.Context, c *client.Client, signer string, n uint64) error {
	for {
		var got client.Nonce
		if err := c.Get(ctx, "/v1/accounts/"+url.PathEscape(signer)+"/nonce", &got); err != nil {
			return err
		}
		if got.Nonce >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for nonce %d of %s to commit (at %d): %w", n, signer, got.Nonce, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
