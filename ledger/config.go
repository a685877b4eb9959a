package ledger

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/record"
)

// configSet records a desired configuration (docs/management.md): one
// record for the target, whatever the number of devices it covers, and one
// history entry per version. The signer must manage the target
// (manageRight): for a device, as mayManage; for a class or a label, an
// admin of the organisation or a "manage" grant on the organisation.
func (x *txExec) configSet(m *record.ConfigSet) error {
	if x.device != nil {
		return record.Errf(record.CodeUnauthorized, "a device does not set desired configurations; it reports what it applied")
	}
	what := fmt.Sprintf("the %s configuration of %s/%s", m.Scope, m.Org, m.Name)
	resources := []string{"org:" + m.Org}
	if m.Scope == record.ConfigDevice {
		d, err := x.st.Device(m.Name)
		if err != nil {
			return notFound(err)
		}
		if d.Org != m.Org {
			return record.Errf(record.CodeInvalid, "device %s belongs to %q, not %q", d.ID, d.Org, m.Org)
		}
		what = "device " + d.ID + " of " + strconv.Quote(d.Org)
		resources = []string{"device:" + d.ID, "org:" + d.Org}
	}
	g, err := manageRight(x.st, x.actor(), m.Org, what, resources, x.height)
	if err != nil {
		return err
	}
	cur, err := x.st.Config(m.Org, m.Scope, m.Name)
	switch {
	case err == nil && m.Version <= cur.Version:
		return record.Errf(record.CodeConflict, "version %d is not above the current version %d of %s/%s/%s", m.Version, cur.Version, m.Org, m.Scope, m.Name)
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	rec := &record.ConfigRecord{Org: m.Org, Scope: m.Scope, Name: m.Name, Version: m.Version, Settings: m.Settings,
		Signer: x.tx.Signer, Height: x.height, Tx: x.tx.Hash[:]}
	if g != nil {
		rec.Grant = g.ID
	}
	x.buf.set(record.ConfigKey(m.Org, m.Scope, m.Name), rec)
	x.buf.set(record.ConfigHistoryKey(m.Org, m.Scope, m.Name, m.Version), rec)
	x.emit("config", "action", "set", "org", m.Org, "scope", m.Scope, "name", m.Name, "version", strconv.FormatUint(m.Version, 10))
	return nil
}

// Config returns the current desired configuration of a target.
func (s *State) Config(org, scope, name string) (*record.ConfigRecord, error) {
	var r record.ConfigRecord
	ok, err := s.get(record.ConfigKey(org, scope, name), &r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("configuration %s/%s/%s: %w", org, scope, name, ErrNotFound)
	}
	return &r, nil
}

// ConfigHistory returns up to limit versions of a target's configuration
// after version after, oldest first.
func (s *State) ConfigHistory(org, scope, name string, after uint64, limit int) ([]record.ConfigRecord, error) {
	p := record.ConfigHistoryPrefix(org, scope, name)
	return s.configs(record.ConfigHistoryKey(org, scope, name, after+1), prefixEnd(p), limit)
}

// Configs returns an organisation's current desired configurations of a
// scope ("" for every scope), in key order, at most limit.
func (s *State) Configs(org, scope string, limit int) ([]record.ConfigRecord, error) {
	p := record.ConfigPrefix(org, scope)
	return s.configs(p, prefixEnd(p), limit)
}

func (s *State) configs(start, end []byte, limit int) ([]record.ConfigRecord, error) {
	var out []record.ConfigRecord
	err := s.scan(start, end, func(_, v []byte) (bool, error) {
		var r record.ConfigRecord
		if err := record.Unmarshal(v, &r); err != nil {
			return false, err
		}
		out = append(out, r)
		return len(out) < limit, nil
	})
	return out, err
}

// DesiredConfig is record.DesiredConfig: the one shape of a device's
// effective desired configuration, served and read.
type DesiredConfig = record.DesiredConfig

// Desired returns device id's effective desired configuration: the
// layers of record.ConfigLayers whose right still holds
// (record.ConfigRightHolds), merged in order.
func (s *State) Desired(id string) (*DesiredConfig, error) {
	d, err := s.Device(id)
	if err != nil {
		return nil, err
	}
	out := &DesiredConfig{Device: d.ID, Org: d.Org, Height: s.Height, Layers: []record.ConfigRecord{}}
	var maps []map[string]any
	for _, t := range record.ConfigLayers(d) {
		r, err := s.Config(d.Org, t[0], t[1])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := s.configRight(r, d.ID); err != nil {
			out.Refused = append(out.Refused, record.ConfigRefusal{Scope: r.Scope, Name: r.Name, Version: r.Version, Reason: err.Error()})
			continue
		}
		out.Layers = append(out.Layers, *r)
		maps = append(maps, r.Settings)
	}
	out.Settings = record.MergeConfig(maps...)
	return out, nil
}

// configRight loads what record.ConfigRightHolds needs and asks it, at
// the next height (as the read rule does).
func (s *State) configRight(r *record.ConfigRecord, device string) error {
	o, err := s.Org(r.Org)
	if err != nil {
		return err
	}
	var g *record.Grant
	var sub *record.Org
	if r.Grant != 0 {
		if g, err = s.Grant(r.Grant); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if id, ok := strings.CutPrefix(grantSubject(g), "org:"); ok {
			if sub, err = s.Org(id); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
	}
	return record.ConfigRightHolds(r, device, o, g, sub, s.Height+1)
}

func grantSubject(g *record.Grant) string {
	if g == nil {
		return ""
	}
	return g.Subject
}
