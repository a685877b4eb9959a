package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// TokenSkew is the clock difference tolerated between a device and the gateway.
const TokenSkew = 30 * time.Second

// Authenticate checks a device's CWT: the device must be registered and
// active, and the token signed by its current key for this chain, and fresh.
func (g *Gateway) Authenticate(_ context.Context, deviceID string, token []byte) error {
	st, err := g.ledger.View()
	if err != nil {
		return err
	}
	_, pub, err := g.activeDevice(st, deviceID)
	if err != nil {
		return err
	}
	if _, err := identity.VerifyCWT(token, pub, g.ledger.ChainID(), g.clock.Now(), TokenSkew); err != nil {
		return fmt.Errorf("%w for %s: %v", ErrBadToken, deviceID, err)
	}
	return nil
}

// activeDevice looks a device up in the committed state: it must exist and
// be active; it returns the key that signs for it. The record it returns is
// shared (devices): callers must not change it.
func (g *Gateway) activeDevice(st *ledger.State, id string) (*record.Device, identity.PublicKey, error) {
	if c, ok := g.devices.get(st.Height, id); ok {
		return c.d, c.pub, nil
	}
	d, pub, err := g.lookupDevice(st, id)
	if err == nil {
		g.devices.put(st.Height, id, cachedDevice{d, pub}, g.cfg.MaxKeys)
	}
	return d, pub, err
}

// deviceCache holds the active devices activeDevice found in the state of
// one height. Every reading looks its device up, and at thousands of
// readings/s per block the same records were read from the state tree and
// decoded again and again (3% of the gateway's CPU with one-reading MQTT
// envelopes, issue 19). It is emptied when the height changes, so a device
// suspended or revoked in a block is refused from that block on, as before.
type deviceCache struct {
	mu     sync.Mutex
	height int64
	m      map[string]cachedDevice
}

type cachedDevice struct {
	d   *record.Device
	pub identity.PublicKey
}

func (c *deviceCache) get(height int64, id string) (cachedDevice, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.height != height {
		return cachedDevice{}, false
	}
	d, ok := c.m[id]
	return d, ok
}

// put notes id's device at height, dropping what was noted at another
// height, and everything once max devices are noted.
func (c *deviceCache) put(height int64, id string, d cachedDevice, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if height < c.height {
		return // an older state than the cache's: leave the newer entries
	}
	if c.height != height || len(c.m) >= max || c.m == nil {
		c.height, c.m = height, map[string]cachedDevice{}
	}
	c.m[id] = d
}

// lookupDevice is activeDevice without the cache.
func (g *Gateway) lookupDevice(st *ledger.State, id string) (*record.Device, identity.PublicKey, error) {
	d, err := st.Device(id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, identity.PublicKey{}, fmt.Errorf("%w: %s", ErrUnknownDevice, id)
	}
	if err != nil {
		return nil, identity.PublicKey{}, err
	}
	if d.Status != record.StatusActive {
		return d, identity.PublicKey{}, fmt.Errorf("%w: %s is %s", ErrInactiveDevice, id, d.Status)
	}
	pub, err := g.keys.Parse(d.Key)
	if err != nil {
		return d, pub, fmt.Errorf("device %s has an unreadable key: %w", id, err)
	}
	return d, pub, nil
}

// MaySubscribe allows a device to follow readings topics of devices whose
// readings the read rule (ledger.State.MayRead) lets it read: its own,
// those a grant lets it (or its organisation) read, and public ones.
// Wildcards are never allowed.
func (g *Gateway) MaySubscribe(deviceID, filter string) bool {
	target, ok := strings.CutPrefix(filter, "things/")
	if !ok {
		return false
	}
	target, ok = strings.CutSuffix(target, "/readings")
	if !ok || strings.ContainsAny(target, "#+/") {
		return false
	}
	st, err := g.ledger.View()
	if err != nil {
		return false
	}
	if _, _, err := g.activeDevice(st, deviceID); err != nil {
		return false
	}
	tgt, err := st.Device(target)
	if err != nil {
		return false
	}
	ok, err = g.allowRead(st, deviceID, tgt)
	return err == nil && ok
}
