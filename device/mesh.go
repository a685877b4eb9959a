package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

// MeshAuthority answers the mesh's ledger questions for a device with no
// ledger: every answer is a state proof verified by the device's light
// client (IsActiveAndGranted), so no gateway is trusted. Proving waits for
// the next block, so answers are kept for TTL: a revocation reaches the
// device within TTL (the receiving gateway's mailbox checks on its side
// within one block).
type MeshAuthority struct {
	d   *Device
	TTL time.Duration

	mu      sync.Mutex
	devices map[string]cachedDevice
	grants  map[string]cachedGrant
}

type cachedDevice struct {
	d  *message.Device
	at time.Time
}

type cachedGrant struct {
	ok bool
	at time.Time
}

// MeshAuthority returns the device's light-client authority for the mesh,
// with answers kept for ttl (0: one minute).
func (d *Device) MeshAuthority(ttl time.Duration) *MeshAuthority {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &MeshAuthority{d: d, TTL: ttl, devices: map[string]cachedDevice{}, grants: map[string]cachedGrant{}}
}

func (a *MeshAuthority) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// ChainID is the chain the device belongs to.
func (a *MeshAuthority) ChainID() string {
	ctx, cancel := a.ctx()
	defer cancel()
	id, err := a.d.ChainID(ctx)
	if err != nil {
		return a.d.cfg.chainID
	}
	return id
}

// Device returns a device's proved record.
func (a *MeshAuthority) Device(id string) (*message.Device, error) {
	now := a.d.cfg.now()
	a.mu.Lock()
	c, ok := a.devices[id]
	a.mu.Unlock()
	if ok && now.Sub(c.at) < a.TTL {
		return c.d, nil
	}
	ctx, cancel := a.ctx()
	defer cancel()
	var rec *record.Device
	err := a.d.verified(ctx, "looking up "+id, func(gw Gateway) error {
		r, _, err := a.d.provedDevice(ctx, a.d.apiClient(gw), id, 0)
		rec = r
		return err
	})
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: %s (proved absent)", message.ErrUnknownSender, id)
	}
	key, err := identity.ParseDID(rec.Key)
	if err != nil {
		return nil, fmt.Errorf("device %s has an unreadable key: %w", id, err)
	}
	md := &message.Device{ID: rec.ID, Org: rec.Org, Class: rec.Class, Key: key, Active: rec.Status == record.StatusActive,
		AttestedBy: rec.AttestedBy, Labels: rec.Labels}
	a.mu.Lock()
	a.devices[id] = cachedDevice{md, now}
	a.mu.Unlock()
	return md, nil
}

// ErrResourceUnsupported: the light-client authority proves grants on this
// device only.
var ErrResourceUnsupported = errors.New("device: the light-client authority proves grants on this device only")

// Granted proves that sender (or its organisation) holds action (or, for
// "message", "command") on this device or its organisation.
func (a *MeshAuthority) Granted(sender *message.Device, action, resource string) (bool, error) {
	if resource != "device:"+a.d.id {
		return false, fmt.Errorf("%w (asked about %s)", ErrResourceUnsupported, resource)
	}
	key := sender.ID + "\x00" + action
	now := a.d.cfg.now()
	a.mu.Lock()
	c, ok := a.grants[key]
	a.mu.Unlock()
	if ok && now.Sub(c.at) < a.TTL {
		return c.ok, nil
	}
	ctx, cancel := a.ctx()
	defer cancel()
	actions := []string{action}
	if action == message.KindMessage {
		actions = append(actions, message.KindCommand)
	}
	granted := false
	for _, act := range actions {
		ok, err := a.d.IsActiveAndGranted(ctx, sender.ID, act)
		if err != nil {
			return false, err
		}
		if ok {
			granted = true
			break
		}
	}
	a.mu.Lock()
	a.grants[key] = cachedGrant{granted, now}
	a.mu.Unlock()
	return granted, nil
}

// ReplayStore opens the device's replay windows in its state directory
// (replay.json), so that a restarted device refuses messages it took
// before; nil (memory only) when it has no state directory. Its mailbox
// reads (Inbox) and its mesh node (package device/meshnode) keep them there.
func (d *Device) ReplayStore() (message.WindowStore, error) {
	if d.cfg.stateDir == "" {
		return nil, nil
	}
	fs, err := message.OpenFileWindowStore(filepath.Join(d.cfg.stateDir, "replay.json"))
	if err != nil {
		return nil, err
	}
	return fs, nil
}

// Logger is the device's logger (WithLogger).
func (d *Device) Logger() *slog.Logger { return d.cfg.log }

// GatewayMeshAddr asks the current gateway for its mesh address (GET
// /v1/mesh), for the device's mesh node (device/meshnode) to bootstrap
// from and to pull the mailbox at.
func (d *Device) GatewayMeshAddr(ctx context.Context) (id, addr string, err error) {
	err = d.each(ctx, "asking for the mesh address", func(_ int, gw Gateway) error {
		var info message.MeshInfo
		if err := d.apiClient(gw).Get(ctx, "/v1/mesh", &info); err != nil {
			return err
		}
		if len(info.Addrs) == 0 {
			return errors.New("the gateway runs no mesh")
		}
		id, addr = info.ID, info.Addrs[0]
		for _, a := range info.Addrs {
			if strings.Contains(a, "/tcp/") {
				addr = a
				break
			}
		}
		return nil
	})
	return id, addr, err
}
