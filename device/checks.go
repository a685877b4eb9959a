package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/record"
)

// Authorization is what IsActiveAndGranted established, each fact proved
// against a header the light client verified.
type Authorization struct {
	Sender  string
	Height  int64         // the state the proofs are of
	Status  record.Status // the sender's status; "" if it is not a registered device
	Grant   *record.Grant // a grant in force letting it act; nil if none was found
	Granted bool
}

// Active reports whether the sender is a registered, active device.
func (a *Authorization) Active() bool { return a.Status == record.StatusActive }

// IsActiveAndGranted reports whether sender is an active device holding a
// grant for action on this device (a grant to the sender or to its
// organisation, on this device or on this device's organisation). The
// sender's record and the grant come with state proofs, verified by the
// light client; a gateway whose answer does not verify is set aside and
// the next one asked. A gateway can withhold a grant (the answer is then
// "not granted"), never invent one.
func (d *Device) IsActiveAndGranted(ctx context.Context, sender, action string) (bool, error) {
	a, err := d.Authorize(ctx, sender, action)
	if err != nil {
		return false, err
	}
	return a.Active() && a.Granted, nil
}

// Authorize is IsActiveAndGranted with the facts.
func (d *Device) Authorize(ctx context.Context, sender, action string) (*Authorization, error) {
	var out *Authorization
	err := d.verified(ctx, "checking "+sender, func(gw Gateway) error {
		a, err := d.authorize(ctx, d.apiClient(gw), sender, action)
		out = a
		return err
	})
	return out, err
}

func (d *Device) authorize(ctx context.Context, c *client.Client, sender, action string) (*Authorization, error) {
	org, err := d.ownOrg(ctx, c)
	if err != nil {
		return nil, err
	}
	before := d.lc.Trusted().Height
	rec, p, err := d.provedDevice(ctx, c, sender, 0)
	if err != nil {
		return nil, err
	}
	if err := d.fresh(p, before); err != nil {
		return nil, err
	}
	a := &Authorization{Sender: sender, Height: p.Height}
	if rec == nil {
		return a, nil
	}
	a.Status = rec.Status
	if !a.Active() {
		return a, nil
	}
	resources := map[string]bool{"device:" + d.id: true, "org:" + org: true}
	for _, subject := range []string{"device:" + sender, "org:" + rec.Org} {
		q := url.Values{"subject": {subject}, "action": {action}, "height": {strconv.FormatInt(p.Height, 10)}, "limit": {"1000"}}
		var page struct {
			Items []record.Grant `json:"items"`
		}
		if err := c.Get(ctx, "/v1/grants?"+q.Encode(), &page); err != nil {
			return nil, fmt.Errorf("listing grants: %w", err)
		}
		for _, cand := range page.Items {
			if !resources[cand.Resource] {
				continue
			}
			g, err := d.provedGrant(ctx, c, cand.ID, p.Height)
			if err != nil {
				return nil, err
			}
			if g != nil && g.Subject == subject && g.Action == action && resources[g.Resource] && g.ActiveAt(p.Height+1) {
				a.Grant, a.Granted = g, true
				return a, nil
			}
		}
	}
	return a, nil
}

// ErrStale is returned when a gateway answers from a state older than the
// freshness bounds (WithFreshness) allow.
var ErrStale = errors.New("device: the gateway answered from a stale state")

// fresh checks that a verified proof is recent enough for a live decision:
// at most maxLag blocks below the header trusted before the check, and the
// header now trusted (which carries its app hash, or a later one) within
// maxAge of the device's clock.
func (d *Device) fresh(p *record.Proof, trustedBefore int64) error {
	if h := p.Height + 1; h < trustedBefore-d.cfg.maxLag {
		return fmt.Errorf("%w: the proof is of the state after block %d; the device already trusts header %d (at most %d blocks behind)",
			ErrStale, p.Height, trustedBefore, d.cfg.maxLag)
	}
	if d.cfg.maxAge > 0 {
		if t := d.lc.Trusted().Time; d.cfg.now().Sub(t) > d.cfg.maxAge {
			return fmt.Errorf("%w: the newest header it gave is of %v, more than %v ago", ErrStale, t.UTC().Format(time.RFC3339), d.cfg.maxAge)
		}
	}
	return nil
}

// ownOrg returns the device's organisation, proved once.
func (d *Device) ownOrg(ctx context.Context, c *client.Client) (string, error) {
	d.mu.Lock()
	org := d.org
	d.mu.Unlock()
	if org != "" {
		return org, nil
	}
	rec, _, err := d.provedDevice(ctx, c, d.id, 0)
	if err != nil {
		return "", err
	}
	if rec == nil {
		return "", fmt.Errorf("%w: this device (%s) is not registered on the ledger", ErrNotRegistered, d.id)
	}
	d.mu.Lock()
	d.org = rec.Org
	d.mu.Unlock()
	return rec.Org, nil
}

// ErrNotRegistered is returned by checks that need the device's own record
// before it is registered.
var ErrNotRegistered = errors.New("device: not registered")

// provedDevice fetches a device record with its proof at height (0: the
// latest) and verifies it; nil means proved absent. The record is decoded
// from the proved value, never from the gateway's JSON.
// provedSelf is this device's own record, proved from c's answer at its
// latest state, which must not be stale; the device learns its org from it.
func (d *Device) provedSelf(ctx context.Context, c *client.Client) (*record.Device, *record.Proof, error) {
	before := d.lc.Trusted().Height
	self, p, err := d.provedDevice(ctx, c, d.id, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := d.fresh(p, before); err != nil {
		return nil, nil, err
	}
	if self == nil {
		return nil, nil, fmt.Errorf("%w: this device (%s) is not registered on the ledger", ErrNotRegistered, d.id)
	}
	d.mu.Lock()
	d.org = self.Org
	d.mu.Unlock()
	return self, p, nil
}

func (d *Device) provedDevice(ctx context.Context, c *client.Client, id string, height int64) (*record.Device, *record.Proof, error) {
	path := "/v1/devices/" + url.PathEscape(id)
	if height > 0 {
		path += "?height=" + strconv.FormatInt(height, 10)
	}
	p, _, err := c.ProvedRecord(ctx, path, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := d.verifyProof(ctx, p, record.DeviceKey(id)); err != nil {
		return nil, nil, fmt.Errorf("record of %s: %w", id, err)
	}
	if p.Value == nil {
		return nil, p, nil
	}
	var rec record.Device
	if err := record.Unmarshal(p.Value, &rec); err != nil {
		return nil, nil, fmt.Errorf("record of %s: %w", id, err)
	}
	if rec.ID != id {
		return nil, nil, fmt.Errorf("the record under %s is of %s", id, rec.ID)
	}
	return &rec, p, nil
}

func (d *Device) provedGrant(ctx context.Context, c *client.Client, id uint64, height int64) (*record.Grant, error) {
	p, _, err := c.ProvedRecord(ctx, "/v1/grants/"+strconv.FormatUint(id, 10)+"?height="+strconv.FormatInt(height, 10), nil)
	if err != nil {
		return nil, err
	}
	if err := d.verifyProof(ctx, p, record.GrantKey(id)); err != nil {
		return nil, fmt.Errorf("grant %d: %w", id, err)
	}
	if p.Value == nil {
		return nil, nil
	}
	var g record.Grant
	if err := record.Unmarshal(p.Value, &g); err != nil {
		return nil, fmt.Errorf("grant %d: %w", id, err)
	}
	if g.ID != id {
		return nil, fmt.Errorf("the record of grant %d is grant %d", id, g.ID)
	}
	return &g, nil
}

// Anchoring is what WasAnchored established.
type Anchoring struct {
	Anchored bool  // false: stored, not anchored yet (ask again in a block or two)
	Index    int64 // the envelope's index in the gateway's data log
	Height   int64 // the block that anchored it
	Header   int64 // the verified header carrying that block's app hash
}

// WasAnchored checks that the envelope of rc is in the data log of the
// gateway that stored it, under a root that gateway anchored on the
// ledger, signed by this device's key while it was active: the inclusion
// proof comes from the storing gateway (only it has the data), and the
// ledger proofs of the anchor and of the device's record are verified with
// the light client, whose headers may come from any gateway. Not anchored
// yet is Anchored false and no error.
func (d *Device) WasAnchored(ctx context.Context, rc *Receipt) (*Anchoring, error) {
	if rc == nil || len(rc.Envelope) == 0 {
		return nil, errors.New("device: WasAnchored: no receipt")
	}
	store := d.apiClient(rc.Gateway)
	idx := rc.Index
	if idx < 0 {
		var err error
		if idx, err = d.findIndex(ctx, store, rc); err != nil {
			return nil, err
		}
		rc.Index = idx
	}
	p, err := store.Reading(ctx, uint64(idx))
	if err != nil {
		return nil, fmt.Errorf("device: fetching the proof of entry %d: %w", idx, err)
	}
	if errors.Is(p.Err(), proof.ErrNotAnchored) {
		return &Anchoring{Index: idx}, nil
	}
	if p.Withheld != nil {
		return nil, fmt.Errorf("device: gateway %s withholds entry %d from the device (%s: %s)", rc.Gateway.API, idx, p.Withheld.Code, p.Withheld.Message)
	}
	if !bytes.Equal(p.Envelope, rc.Envelope) || p.Index != uint64(idx) {
		return nil, fmt.Errorf("device: gateway %s answered another envelope for entry %d", rc.Gateway.API, idx)
	}
	if rc.GatewayID != "" && p.Gateway != rc.GatewayID {
		return nil, fmt.Errorf("device: the proof is of gateway %s's log, the reading went to %s", p.Gateway, rc.GatewayID)
	}
	var out *Anchoring
	err = d.verified(ctx, "verifying the anchor of a reading", func(Gateway) error {
		v, err := proof.VerifyReading(ctx, lightChecker{d}, p)
		if err != nil {
			return err
		}
		if v.Envelope.Device != d.id {
			return fmt.Errorf("the envelope is of %s", v.Envelope.Device)
		}
		out = &Anchoring{Anchored: true, Index: idx, Height: v.AnchorHeight, Header: v.HeaderHeight}
		return nil
	})
	return out, err
}

// findIndex asks the storing gateway where an envelope sent without an
// index in the answer (MQTT, CoAP) is; WasAnchored then checks the bytes.
func (d *Device) findIndex(ctx context.Context, c *client.Client, rc *Receipt) (int64, error) {
	ms := rc.Time.UnixMilli()
	q := url.Values{"device": {d.id}, "from": {strconv.FormatInt(ms, 10)}, "to": {strconv.FormatInt(ms+1, 10)}, "limit": {"1000"}}
	var page struct {
		Items []client.ReadingItem `json:"items"`
	}
	if err := c.Get(ctx, "/v1/readings?"+q.Encode(), &page); err != nil {
		return 0, fmt.Errorf("device: finding the reading on %s: %w", rc.Gateway.API, err)
	}
	for _, it := range page.Items {
		if len(rc.Seqs) > 0 && it.Seq == rc.Seqs[0] {
			return int64(it.Index), nil
		}
	}
	return 0, fmt.Errorf("device: gateway %s has no reading of seq %v at %v", rc.Gateway.API, rc.Seqs, rc.Time)
}
