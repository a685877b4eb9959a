package device

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/internal/atomicfile"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ConfigFile is the name of the applied configuration in the state
// directory: the CBOR of configState.
const ConfigFile = "config.state"

// Settings the SDK applies itself (docs/management.md). A handler given
// with WithConfigHandler for the same name replaces the SDK's.
const (
	SettingWake      = "wake_s"    // seconds between wakes, 1..86400 (Agent)
	SettingTransport = "transport" // "http", "mqtt" or "coap"
)

// ConfigHandler applies one setting's value: an int64, a float64, a
// string or a bool (record.ConfigValue). An error refuses the value; the
// device reports the refusal and keeps what it had.
type ConfigHandler func(value any) error

// WithConfigHandler registers the handler of one setting of the desired
// configuration. A setting with no handler is refused ("no handler") and
// reported so.
func WithConfigHandler(name string, h ConfigHandler) Option {
	return func(c *config) {
		if c.handlers == nil {
			c.handlers = map[string]ConfigHandler{}
		}
		c.handlers[name] = h
	}
}

// configState is what the device applied, kept across restarts: the
// version of each layer (a lower one is stale and refused), the values in
// force, and the last report sent (sent again only when it changes).
type configState struct {
	Versions map[string]uint64 `cbor:"1,keyasint,omitempty"` // "scope/name" -> version
	Applied  map[string]any    `cbor:"2,keyasint,omitempty"`
	Reported []byte            `cbor:"3,keyasint,omitempty"` // CBOR of the last report sent, without its height
}

// ProvedConfig is a device's desired configuration as it proved it: the
// layers (class, labels, itself) of one state, each checked against a
// header the light client verified, and those it refused.
type ProvedConfig struct {
	Height   int64                  // the state the proofs are of
	Layers   []record.ConfigRecord  // accepted, in merge order
	Refused  []record.ConfigRefusal // layers not accepted, and why
	Settings map[string]any         // the merge of Layers
	Unproved []string               // gateways whose answers failed the proofs
}

// DesiredConfig proves the device's desired configuration: its record,
// then each layer that applies to it (record.ConfigLayers), from one
// gateway's proofs of one state; a gateway that lies or omits a layer
// (its proof does not verify) is set aside and the next one asked, and
// named in Unproved. A layer whose version is below the one the device
// applied (stale), or whose right has ended (record.ConfigRightHolds: a
// revoked grant, a removed admin), is refused.
func (d *Device) DesiredConfig(ctx context.Context) (*ProvedConfig, error) {
	st, err := d.loadConfig()
	if err != nil {
		return nil, err
	}
	var out *ProvedConfig
	var unproved []string
	err = d.verified(ctx, "proving the desired configuration", func(gw Gateway) error {
		pc, err := d.desiredConfig(ctx, d.apiClient(gw), st)
		if err != nil && isBadProof(err) {
			unproved = append(unproved, gw.API)
		}
		out = pc
		return err
	})
	if err != nil {
		return nil, err
	}
	out.Unproved = unproved
	return out, nil
}

func (d *Device) desiredConfig(ctx context.Context, c *client.Client, st *configState) (*ProvedConfig, error) {
	self, p, err := d.provedSelf(ctx, c)
	if err != nil {
		return nil, err
	}
	pc := &ProvedConfig{Height: p.Height}
	h := p.Height + 1
	rights := d.rights(c, self.Org, p.Height)
	keys := [][]byte{record.OrgKey(self.Org)}
	for _, t := range record.ConfigLayers(self) {
		keys = append(keys, record.ConfigKey(self.Org, t[0], t[1]))
	}
	d.prefetch(ctx, c, p.Height, keys...)
	var layers []map[string]any
	for _, t := range record.ConfigLayers(self) {
		scope, name := t[0], t[1]
		var r record.ConfigRecord
		found, err := d.provedKey(ctx, c, record.ConfigKey(self.Org, scope, name), p.Height, &r)
		if err != nil {
			return nil, fmt.Errorf("the %s configuration %s: %w", scope, name, err)
		}
		if !found {
			continue
		}
		if r.Org != self.Org || r.Scope != scope || r.Name != name {
			return nil, fmt.Errorf("%w: the record under the %s configuration %s of %s is of %s %s of %s", record.ErrBadProof, scope, name, self.Org, r.Scope, r.Name, r.Org)
		}
		refuse := func(why string) {
			pc.Refused = append(pc.Refused, record.ConfigRefusal{Scope: scope, Name: name, Version: r.Version, Reason: why})
		}
		if err := (&record.ConfigSet{Org: r.Org, Scope: r.Scope, Name: r.Name, Version: r.Version, Settings: r.Settings}).ValidateBasic(); err != nil {
			refuse(err.Error())
			continue
		}
		if v := st.Versions[scope+"/"+name]; r.Version < v {
			refuse(fmt.Sprintf("stale: version %d is below the applied version %d", r.Version, v))
			continue
		}
		mr := record.ManageRight{Org: r.Org, Signer: r.Signer, Grant: r.Grant}
		if scope == record.ConfigDevice {
			mr.Device = d.id
		}
		if err := rights.check(ctx, mr, h); err != nil {
			if errors.Is(err, errRightEnded) {
				refuse(strings.TrimPrefix(err.Error(), errRightEnded.Error()+": "))
				continue
			}
			return nil, err
		}
		pc.Layers = append(pc.Layers, r)
		layers = append(layers, r.Settings)
	}
	pc.Settings = record.MergeConfig(layers...)
	return pc, nil
}

// errRightEnded wraps ManageRightHolds' refusal: the right a record was
// written by has ended (a revoked grant, a removed admin).
var errRightEnded = errors.New("right ended")

// rightChecker proves what record.ManageRightHolds needs — the
// organisation, the grant, the grantee organisation — in one state, each
// once, and asks it: the one check of desired configurations and jobs.
type rightChecker struct {
	d      *Device
	c      *client.Client
	org    string
	height int64
	o      *record.Org
}

func (d *Device) rights(c *client.Client, org string, height int64) *rightChecker {
	return &rightChecker{d: d, c: c, org: org, height: height}
}

// check returns nil when the right holds at h, an error wrapping
// errRightEnded when it has ended, any other error when a proof failed.
func (rc *rightChecker) check(ctx context.Context, r record.ManageRight, h int64) error {
	if rc.o == nil {
		rc.o = new(record.Org)
		if ok, err := rc.d.provedKey(ctx, rc.c, record.OrgKey(rc.org), rc.height, rc.o); err != nil || !ok {
			rc.o = nil
			return fmt.Errorf("organisation %s: %w", rc.org, errors.Join(err, errIf(!ok, "not on the ledger")))
		}
	}
	var g *record.Grant
	var sub *record.Org
	if r.Grant != 0 {
		g = new(record.Grant)
		if ok, err := rc.d.provedKey(ctx, rc.c, record.GrantKey(r.Grant), rc.height, g); err != nil {
			return fmt.Errorf("grant %d: %w", r.Grant, err)
		} else if !ok {
			g = nil
		}
		if g != nil && strings.HasPrefix(g.Subject, "org:") {
			sub = new(record.Org)
			if ok, err := rc.d.provedKey(ctx, rc.c, record.OrgKey(strings.TrimPrefix(g.Subject, "org:")), rc.height, sub); err != nil {
				return fmt.Errorf("organisation %s: %w", g.Subject, err)
			} else if !ok {
				sub = nil
			}
		}
	}
	if err := record.ManageRightHolds(r, rc.o, g, sub, h); err != nil {
		return fmt.Errorf("%w: %w", errRightEnded, err)
	}
	return nil
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}

// ApplyConfig proves the desired configuration (DesiredConfig), calls the
// handler of each setting whose value changed, keeps what it applied in
// the state directory, and, when the outcome differs from the last one it
// reported, reports it as a reading of content type
// record.ContentConfigReported (signed, stored, logged and anchored like
// any reading). It returns the report and whether it was sent.
func (d *Device) ApplyConfig(ctx context.Context) (*record.ConfigReport, bool, error) {
	pc, err := d.DesiredConfig(ctx)
	if err != nil {
		return nil, false, err
	}
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	st, err := d.loadConfigLocked()
	if err != nil {
		return nil, false, err
	}
	rep := &record.ConfigReport{Height: pc.Height, Refused: pc.Refused, Unproved: pc.Unproved, Applied: map[string]any{}}
	for _, l := range pc.Layers {
		rep.Layers = append(rep.Layers, record.ConfigLayer{Scope: l.Scope, Name: l.Name, Version: l.Version, Height: l.Height})
	}
	for _, k := range slices.Sorted(maps.Keys(pc.Settings)) {
		v := pc.Settings[k]
		if old, ok := st.Applied[k]; ok && record.SameConfigValue(old, v) {
			rep.Applied[k] = old
			continue
		}
		if err := d.applySetting(k, v); err != nil {
			rep.Refused = append(rep.Refused, record.ConfigRefusal{Setting: k, Reason: err.Error()})
			if old, ok := st.Applied[k]; ok {
				rep.Applied[k] = old // it keeps what it had
			}
			continue
		}
		rep.Applied[k] = v
	}
	next := &configState{Versions: map[string]uint64{}, Applied: rep.Applied}
	maps.Copy(next.Versions, st.Versions)
	for _, l := range rep.Layers {
		next.Versions[l.Scope+"/"+l.Name] = l.Version
	}
	// The report is sent again only when what it says (all but the height) changed.
	cmp := *rep
	cmp.Height = 0
	sig, err := record.Marshal(&cmp)
	if err != nil {
		return nil, false, err
	}
	next.Reported = st.Reported
	send := string(sig) != string(st.Reported)
	if send {
		b, err := record.Marshal(rep)
		if err != nil {
			return nil, false, err
		}
		if _, err := d.Send(ctx, reading.Reading{Time: d.cfg.now(), ContentType: record.ContentConfigReported, Bytes: b}); err != nil {
			// What was applied is kept; the report goes at the next wake.
			if serr := d.saveConfigLocked(next); serr != nil {
				return nil, false, errors.Join(err, serr)
			}
			return rep, false, fmt.Errorf("device: reporting the applied configuration: %w", err)
		}
		next.Reported = sig
	}
	return rep, send, d.saveConfigLocked(next)
}

// applySetting calls the setting's handler: the program's, else the SDK's.
func (d *Device) applySetting(name string, v any) error {
	if h, ok := d.cfg.handlers[name]; ok {
		return h(v)
	}
	switch name {
	case SettingWake:
		s, ok := v.(int64)
		if !ok || s < 1 || s > 86400 {
			return fmt.Errorf("%s %v: want whole seconds, 1 to 86400", name, v)
		}
		d.mu.Lock()
		d.wake = time.Duration(s) * time.Second
		d.mu.Unlock()
		return nil
	case SettingTransport:
		s, _ := v.(string)
		t, err := ParseTransport(s)
		if err != nil {
			return err
		}
		for _, g := range d.cfg.gateways {
			if t == MQTT && g.MQTT == "" || t == CoAP && g.CoAP == "" {
				return fmt.Errorf("transport %s: gateway %s has no %s address", t, g.API, t)
			}
		}
		d.mu.Lock()
		d.transport = t
		d.mu.Unlock()
		return nil
	}
	return errors.New("no handler")
}

// Wake is the wake interval the desired configuration set (SettingWake),
// or 0 when none was applied.
func (d *Device) Wake() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wake
}

// Transport is how readings are sent: WithTransport's, unless the desired
// configuration set another (SettingTransport).
func (d *Device) Transport() Transport {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.transport != "" {
		return d.transport
	}
	return d.cfg.transport
}

// AppliedConfig returns the settings the device applied (what it keeps
// in its state directory).
func (d *Device) AppliedConfig() (map[string]any, error) {
	st, err := d.loadConfig()
	if err != nil {
		return nil, err
	}
	return maps.Clone(st.Applied), nil
}

func (d *Device) loadConfig() (*configState, error) {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.loadConfigLocked()
}

// loadConfigLocked reads the applied configuration; the caller holds cfgMu.
// Without a state directory it lives in memory.
func (d *Device) loadConfigLocked() (*configState, error) {
	if d.applied != nil {
		return d.applied, nil
	}
	st := &configState{}
	if b, err := d.readState(ConfigFile, "the applied configuration"); err != nil {
		return nil, err
	} else if b != nil {
		if st, err = parseConfigState(b); err != nil {
			return nil, fmt.Errorf("device: %s: %w (remove it: the device applies its desired configuration again)", filepath.Join(d.cfg.stateDir, ConfigFile), err)
		}
	}
	// Settings applied before a restart are in force again: the SDK's own
	// are restored (the program's handlers are not called until a value changes).
	for k, v := range st.Applied {
		if _, own := d.cfg.handlers[k]; !own && (k == SettingWake || k == SettingTransport) {
			if n, err := record.ConfigValue(v); err == nil {
				_ = d.applySetting(k, n) // a value that no longer applies is applied again at the next change
			}
		}
	}
	d.applied = st
	return st, nil
}

// parseConfigState decodes config.state strictly: layer versions, and
// applied settings that are valid settings.
func parseConfigState(b []byte) (*configState, error) {
	st := &configState{}
	if err := record.Unmarshal(b, st); err != nil {
		return nil, err
	}
	if len(st.Applied) > 4*record.MaxConfigSettings || len(st.Versions) > 64 {
		return nil, fmt.Errorf("%d applied settings and %d layers: more than a configuration holds", len(st.Applied), len(st.Versions))
	}
	for k, v := range st.Applied {
		if err := record.ValidateSettingName(k); err != nil {
			return nil, err
		}
		if _, err := record.ConfigValue(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return st, nil
}

func (d *Device) saveConfigLocked(st *configState) error {
	d.applied = st
	return d.saveState(ConfigFile, "the applied configuration", st)
}

// readState reads file name of the state directory: nil when there is no
// state directory or no such file yet.
func (d *Device) readState(name, what string) ([]byte, error) {
	if d.cfg.stateDir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(d.cfg.stateDir, name))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("device: reading %s: %w", what, err)
	}
	return b, nil
}

// saveState replaces file name of the state directory with v's CBOR
// (nothing without a state directory).
func (d *Device) saveState(name, what string, v any) error {
	if d.cfg.stateDir == "" {
		return nil
	}
	b, err := record.Marshal(v)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(d.cfg.stateDir, name), b); err != nil {
		return fmt.Errorf("device: saving %s: %w", what, err)
	}
	return nil
}
