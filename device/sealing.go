package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/atomicfile"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Confidential readings (docs/privacy.md): with WithSealing the device
// seals every reading's value to its organisation's current data key
// (reading.SealReading), so the gateways that verify, store, anchor and
// prove its readings cannot read them.

// DataKeyFile is the name of the cached data key in the state directory:
// the CBOR of record.DataKey as the ledger published it, and when it was
// fetched.
const DataKeyFile = "datakey.cbor"

// DefaultDataKeyRefresh is how long a device seals to a data key before it
// asks the ledger again for the current one (a rotation is picked up
// within this time).
const DefaultDataKeyRefresh = time.Hour

// WithSealing makes the device seal every reading's value to its
// organisation's current data key, fetched from a gateway and, when the
// device has a trust anchor (WithTrust, or a saved trusted state),
// verified with the light client: the key's record and the policy naming
// it current, proved in the same verified state. Without a trust anchor
// the device takes the gateway's word for the key. The key is cached in
// the state directory and refreshed every refresh (0: DefaultDataKeyRefresh).
func WithSealing(refresh time.Duration) Option {
	return func(c *config) {
		c.seal = true
		c.sealRefresh = refresh
		if refresh <= 0 {
			c.sealRefresh = DefaultDataKeyRefresh
		}
	}
}

type cachedDataKey struct {
	Key     record.DataKey `cbor:"1,keyasint"`
	Fetched int64          `cbor:"2,keyasint"` // Unix ms
	Chain   string         `cbor:"3,keyasint"`
}

// Sealing reports whether the device seals its readings.
func (d *Device) Sealing() bool { return d.cfg.seal }

// DataKey returns the data key the device seals to: the cached one while
// it is fresh, else its organisation's current one from the ledger.
func (d *Device) DataKey(ctx context.Context) (*record.DataKey, error) {
	d.mu.Lock()
	k := d.dataKey
	d.mu.Unlock()
	if k == nil {
		if c, err := d.loadDataKey(); err != nil {
			d.cfg.log.Warn("device: ignoring the cached data key", "err", err)
		} else if c != nil {
			k = c
		}
	}
	if k != nil && d.cfg.now().Sub(time.UnixMilli(k.Fetched)) < d.cfg.sealRefresh {
		d.mu.Lock()
		d.dataKey = k
		d.mu.Unlock()
		return &k.Key, nil
	}
	fresh, err := d.fetchDataKey(ctx)
	if err != nil {
		if k != nil {
			// Keep sealing to the key we have: a rotation is an
			// organisation's decision, not an emergency, and the old key
			// still opens for its readers.
			d.cfg.log.Warn("device: cannot refresh the data key; sealing to the cached one", "version", k.Key.Version, "err", err)
			return &k.Key, nil
		}
		return nil, err
	}
	chainID, _ := d.ChainID(ctx)
	c := &cachedDataKey{Key: *fresh, Fetched: d.cfg.now().UnixMilli(), Chain: chainID}
	d.mu.Lock()
	d.dataKey = c
	d.mu.Unlock()
	if err := d.saveDataKey(c); err != nil {
		d.cfg.log.Warn("device: cannot cache the data key", "err", err)
	}
	return fresh, nil
}

// fetchDataKey asks the gateways for the organisation's current data key,
// verified with the light client when the device has a trust anchor.
func (d *Device) fetchDataKey(ctx context.Context) (*record.DataKey, error) {
	d.checkMu.Lock()
	trusted := d.lc != nil || d.cfg.trust != nil
	d.checkMu.Unlock()
	var out *record.DataKey
	if !trusted {
		err := d.each(ctx, "fetching the data key", func(_ int, gw Gateway) error {
			c := d.apiClient(gw)
			var rec struct {
				Record *record.Device `json:"record"`
			}
			if err := c.Get(ctx, "/v1/devices/"+d.id, &rec); err != nil {
				return err
			}
			if rec.Record == nil {
				return fmt.Errorf("%w: this device (%s) is not registered on the ledger", ErrNotRegistered, d.id)
			}
			ans, err := c.DataKey(ctx, rec.Record.Org, 0, false)
			if err != nil {
				return err
			}
			out = ans.Record
			return nil
		})
		return out, err
	}
	err := d.verified(ctx, "fetching the data key", func(gw Gateway) error {
		c := d.apiClient(gw)
		org, err := d.ownOrg(ctx, c)
		if err != nil {
			return err
		}
		before := d.lc.Trusted().Height
		ans, err := c.DataKey(ctx, org, 0, true)
		if err != nil {
			return err
		}
		if err := d.verifyProof(ctx, ans.PolicyProof, record.PolicyKey(org)); err != nil {
			return fmt.Errorf("the policy of %q: %w", org, err)
		}
		if err := d.fresh(ans.PolicyProof, before); err != nil {
			return err
		}
		var p record.Policy
		if ans.PolicyProof.Value == nil {
			return fmt.Errorf("organisation %q has published no data key (proved at height %d)", org, ans.PolicyProof.Height)
		}
		if err := record.Unmarshal(ans.PolicyProof.Value, &p); err != nil {
			return err
		}
		if p.DataKey == 0 {
			return fmt.Errorf("organisation %q has published no data key (proved at height %d)", org, ans.PolicyProof.Height)
		}
		if ans.Proof == nil || ans.Proof.Height != ans.PolicyProof.Height {
			return fmt.Errorf("%w: the gateway sent no proof of data key version %d of the policy's state", record.ErrBadProof, p.DataKey)
		}
		if err := d.verifyProof(ctx, ans.Proof, record.DataKeyKey(org, p.DataKey)); err != nil {
			return fmt.Errorf("the data key of %q: %w", org, err)
		}
		var k record.DataKey
		if ans.Proof.Value == nil {
			return fmt.Errorf("%w: data key version %d of %q proved absent", record.ErrBadProof, p.DataKey, org)
		}
		if err := record.Unmarshal(ans.Proof.Value, &k); err != nil {
			return err
		}
		if k.Org != org || k.Version != p.DataKey {
			return fmt.Errorf("%w: the record under %q is of %q version %d", record.ErrBadProof, ans.Proof.Key, k.Org, k.Version)
		}
		out = &k
		return nil
	})
	return out, err
}

func (d *Device) dataKeyPath() string {
	if d.cfg.stateDir == "" {
		return ""
	}
	return filepath.Join(d.cfg.stateDir, DataKeyFile)
}

func (d *Device) loadDataKey() (*cachedDataKey, error) {
	p := d.dataKeyPath()
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c cachedDataKey
	if err := record.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if d.chainID != "" && c.Chain != d.chainID {
		return nil, fmt.Errorf("%s is of chain %q", p, c.Chain)
	}
	if err := identity.CheckHPKEPublicKey(identity.Suite(c.Key.Suite), c.Key.Key); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &c, nil
}

func (d *Device) saveDataKey(c *cachedDataKey) error {
	p := d.dataKeyPath()
	if p == "" {
		return nil
	}
	b, err := record.Marshal(c)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, b)
}

// seal seals the values of rs (sequence numbers assigned) to the cached
// data key; DataKey must have been called.
func (d *Device) seal(rs []reading.Reading) error {
	d.mu.Lock()
	c, chainID := d.dataKey, d.chainID
	d.mu.Unlock()
	if c == nil || chainID == "" {
		return errors.New("device: sealing: no data key yet (Device.DataKey fetches it; SendBatch does)")
	}
	k := reading.DataKey{Version: c.Key.Version, Suite: identity.Suite(c.Key.Suite), Key: c.Key.Key}
	for i := range rs {
		if rs[i].Sealed != nil {
			continue
		}
		s, err := reading.SealReading(rs[i], chainID, d.id, k)
		if err != nil {
			return fmt.Errorf("device: sealing reading %d: %w", rs[i].Seq, err)
		}
		rs[i] = s
	}
	return nil
}
