package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Desired configuration (docs/management.md): an organisation's admin, or
// the holder of a "manage" grant, sets the desired configuration of one
// device, of a class or of a label of its devices with one config.set tx.
// A class- or label-wide change is one record, whatever the number of
// devices: each device proves the layers that apply to it against a header
// its light client verified and merges them (class, then labels, then the
// device itself; the later wins).
const KindConfigSet = "config.set"

// Config scopes: what a desired configuration is for.
const (
	ConfigDevice = "device" // Name: the device id
	ConfigClass  = "class"  // Name: the class
	ConfigLabel  = "label"  // Name: "key=value", every device with that label
)

// Bounds of a desired configuration.
const (
	MaxConfigSize     = 1024 // bytes of the settings' CBOR
	MaxConfigSettings = 32
	MaxConfigText     = 256 // bytes of a text value
	maxSettingName    = 64
)

const (
	prefixConfig     = "dc/" // dc/<org>/<scope>/<name> -> ConfigRecord (the current one)
	prefixConfigHist = "dh/" // dh/<org>/<scope>/<name>\x00<version u64 BE> -> ConfigRecord (every one)
)

// Reserved reading content types (docs/protocol.md, "Reported state"): a
// device reports what it applied, and its health, as ordinary signed
// readings whose Bytes are the CBOR of ConfigReport and StatusReport.
const (
	ContentConfigReported = "thingnet/config-reported"
	ContentStatus         = "thingnet/status"
)

// ConfigSet sets the desired configuration of Scope/Name in Org to
// Settings, at Version: strictly above the current version of that target
// (a replay or a stale write is refused). Settings replace the target's
// previous ones whole; an empty map clears the layer.
type ConfigSet struct {
	Org      string         `cbor:"1,keyasint" json:"org"`
	Scope    string         `cbor:"2,keyasint" json:"scope"`
	Name     string         `cbor:"3,keyasint" json:"name"`
	Version  uint64         `cbor:"4,keyasint" json:"version"`
	Settings map[string]any `cbor:"5,keyasint,omitempty" json:"settings,omitempty"`
}

func (*ConfigSet) Kind() string { return KindConfigSet }

func (m *ConfigSet) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if err := ValidateConfigTarget(m.Scope, m.Name); err != nil {
		return err
	}
	if m.Version == 0 {
		return errors.New("a configuration version is 1 or more")
	}
	return ValidateSettings(m.Settings)
}

// ValidateConfigTarget checks a scope and its name.
func ValidateConfigTarget(scope, name string) error {
	switch scope {
	case ConfigDevice:
		return checkDIDSyntax(name)
	case ConfigClass:
		if name == "" {
			return errors.New("a class configuration names the class")
		}
		return validateConfigName("class", name)
	case ConfigLabel:
		k, v, ok := strings.Cut(name, "=")
		if !ok {
			return fmt.Errorf("label %q: want key=value", name)
		}
		if err := validateLabelKey(k); err != nil {
			return err
		}
		return validateConfigName("label "+k, v)
	}
	return fmt.Errorf("configuration scope %q: want device, class or label", scope)
}

// validateConfigName keeps a name out of the key layout: no NUL, no '/'.
func validateConfigName(field, s string) error {
	if strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%s %q holds '/' or NUL", field, s)
	}
	return validateText(field, s, 256)
}

// ValidateSettings checks a settings map: at most MaxConfigSettings names
// of a-z, 0-9, '.', '_', '-' (1..64 bytes), each an integer, a finite
// number, a text of at most MaxConfigText bytes or a bool, MaxConfigSize
// bytes of CBOR in all.
func ValidateSettings(s map[string]any) error {
	if len(s) > MaxConfigSettings {
		return fmt.Errorf("%d settings; at most %d", len(s), MaxConfigSettings)
	}
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if err := ValidateSettingName(k); err != nil {
			return err
		}
		if _, err := ConfigValue(s[k]); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	b, err := Marshal(s)
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if len(b) > MaxConfigSize {
		return fmt.Errorf("settings are %d bytes of CBOR; at most %d", len(b), MaxConfigSize)
	}
	return nil
}

// ValidateSettingName checks a setting's name.
func ValidateSettingName(k string) error {
	if k == "" || len(k) > maxSettingName {
		return fmt.Errorf("setting name %q must be 1 to %d bytes", k, maxSettingName)
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("setting name %q may hold only a-z, 0-9, '.', '_' and '-'", k)
		}
	}
	return nil
}

// ConfigValue checks a setting's value and returns it in its one Go form:
// int64, float64, string or bool (a CBOR unsigned integer above 2^63-1 is
// refused).
func ConfigValue(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d is above 2^63-1", x)
		}
		return int64(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v is not a finite number", x)
		}
		return x, nil
	case float32:
		return ConfigValue(float64(x))
	case string:
		if err := validateText("text value", x, MaxConfigText); err != nil {
			return nil, err
		}
		return x, nil
	case bool:
		return x, nil
	}
	return nil, fmt.Errorf("a value of type %T: want an integer, a number, a text or a bool", v)
}

// SameConfigValue reports whether two setting values are equal in their
// one Go form; numbers compare by value, so an integer 30 read from JSON
// (a float64) equals 30 from CBOR.
func SameConfigValue(a, b any) bool {
	x, err1 := ConfigValue(a)
	y, err2 := ConfigValue(b)
	if err1 != nil || err2 != nil {
		return false
	}
	if fx, ok := asFloat(x); ok {
		fy, ok := asFloat(y)
		return ok && fx == fy
	}
	return x == y
}

func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// DesiredConfig is a device's effective desired configuration as the
// ledger computes it (GET /v1/devices/{id}/config): its layers in merge
// order (ConfigLayers), the layers whose right has ended (left out, as the
// device leaves them out: ConfigRightHolds), and the merge.
type DesiredConfig struct {
	Device   string          `json:"device"`
	Org      string          `json:"org"`
	Height   int64           `json:"height"`
	Layers   []ConfigRecord  `json:"layers"`
	Refused  []ConfigRefusal `json:"refused,omitempty"`
	Settings map[string]any  `json:"settings"`
}

// ConfigRecord is a desired configuration on the ledger: what was set, by
// whom and by what right. Grant is the "manage" grant the signer held (0:
// the signer was an admin of Org); a device refuses a layer whose right
// has since ended (the grant revoked or expired, the admin removed).
type ConfigRecord struct {
	Org      string         `cbor:"1,keyasint" json:"org"`
	Scope    string         `cbor:"2,keyasint" json:"scope"`
	Name     string         `cbor:"3,keyasint" json:"name"`
	Version  uint64         `cbor:"4,keyasint" json:"version"`
	Settings map[string]any `cbor:"5,keyasint,omitempty" json:"settings,omitempty"`
	Signer   string         `cbor:"6,keyasint" json:"signer"`
	Grant    uint64         `cbor:"7,keyasint,omitempty" json:"grant,omitempty"`
	Height   int64          `cbor:"8,keyasint" json:"height"`
	Tx       []byte         `cbor:"9,keyasint,omitempty" json:"tx,omitempty"`
}

// DecodeConfigRecord parses a stored configuration record (from a proof)
// strictly and checks its fields.
func DecodeConfigRecord(b []byte) (*ConfigRecord, error) {
	var r ConfigRecord
	if err := Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("configuration record: %w", err)
	}
	m := ConfigSet{Org: r.Org, Scope: r.Scope, Name: r.Name, Version: r.Version, Settings: r.Settings}
	if err := m.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("configuration record: %w", err)
	}
	return &r, nil
}

// ConfigKey is the state key of the current desired configuration of a
// target.
func ConfigKey(org, scope, name string) []byte {
	return []byte(prefixConfig + org + "/" + scope + "/" + name)
}

// ConfigPrefix is the state prefix of an organisation's desired
// configurations of one scope ("" for all of them).
func ConfigPrefix(org, scope string) []byte {
	if scope == "" {
		return []byte(prefixConfig + org + "/")
	}
	return []byte(prefixConfig + org + "/" + scope + "/")
}

// ConfigHistoryPrefix is the state prefix of a target's configurations,
// in version order.
func ConfigHistoryPrefix(org, scope, name string) []byte {
	return []byte(prefixConfigHist + org + "/" + scope + "/" + name + "\x00")
}

// ConfigHistoryKey is the state key of one version of a target's
// configuration.
func ConfigHistoryKey(org, scope, name string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(ConfigHistoryPrefix(org, scope, name), version)
}

// ConfigLayer names one applied layer of a device's configuration.
type ConfigLayer struct {
	Scope   string `cbor:"1,keyasint" json:"scope"`
	Name    string `cbor:"2,keyasint" json:"name"`
	Version uint64 `cbor:"3,keyasint" json:"version"`
	Height  int64  `cbor:"4,keyasint" json:"height"` // when the ledger set it
}

// ConfigRefusal is a layer or a setting the device did not apply, and why.
type ConfigRefusal struct {
	Scope   string `cbor:"1,keyasint" json:"scope,omitempty"`
	Name    string `cbor:"2,keyasint,omitempty" json:"name,omitempty"`
	Setting string `cbor:"3,keyasint,omitempty" json:"setting,omitempty"`
	Version uint64 `cbor:"4,keyasint,omitempty" json:"version,omitempty"`
	Reason  string `cbor:"5,keyasint" json:"reason"`
}

// ConfigReport is what a device reports it applied: the Bytes of a
// reading of content type ContentConfigReported, signed by the device's
// key, stored, logged and anchored like any reading.
type ConfigReport struct {
	Height   int64           `cbor:"1,keyasint" json:"height"`                       // the state the layers were proved in
	Layers   []ConfigLayer   `cbor:"2,keyasint,omitempty" json:"layers,omitempty"`   // in merge order
	Applied  map[string]any  `cbor:"3,keyasint,omitempty" json:"applied,omitempty"`  // effective settings in force
	Refused  []ConfigRefusal `cbor:"4,keyasint,omitempty" json:"refused,omitempty"`  // layers and settings not applied
	Unproved []string        `cbor:"5,keyasint,omitempty" json:"unproved,omitempty"` // gateways whose answers failed the proof
}

// MaxConfigReport bounds a report's CBOR.
const MaxConfigReport = 8 << 10

// DecodeConfigReport parses a reported configuration strictly.
func DecodeConfigReport(b []byte) (*ConfigReport, error) {
	if len(b) > MaxConfigReport {
		return nil, fmt.Errorf("configuration report is %d bytes; at most %d", len(b), MaxConfigReport)
	}
	var r ConfigReport
	if err := Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("configuration report: %w", err)
	}
	if len(r.Applied) > 4*MaxConfigSettings {
		return nil, fmt.Errorf("configuration report applies %d settings; at most %d", len(r.Applied), 4*MaxConfigSettings)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Applied)) {
		if err := ValidateSettingName(k); err != nil {
			return nil, fmt.Errorf("configuration report: %w", err)
		}
		if _, err := ConfigValue(r.Applied[k]); err != nil {
			return nil, fmt.Errorf("configuration report: setting %s: %w", k, err)
		}
	}
	for _, l := range r.Layers {
		if err := ValidateConfigTarget(l.Scope, l.Name); err != nil {
			return nil, fmt.Errorf("configuration report: %w", err)
		}
	}
	return &r, nil
}

// ConfigDiff is one setting whose desired and reported values differ.
type ConfigDiff struct {
	Setting  string `json:"setting"`
	Desired  any    `json:"desired,omitempty"`  // nil: not desired (reported only)
	Reported any    `json:"reported,omitempty"` // nil: not reported applied
}

// DiffConfig lists the settings whose desired and reported values
// differ, by name.
func DiffConfig(desired, reported map[string]any) []ConfigDiff {
	ks := slices.Sorted(maps.Keys(desired))
	for k := range reported {
		if _, ok := desired[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	var out []ConfigDiff
	for _, k := range ks {
		d, dok := desired[k]
		r, rok := reported[k]
		if dok && rok && SameConfigValue(d, r) {
			continue
		}
		out = append(out, ConfigDiff{Setting: k, Desired: d, Reported: r})
	}
	return out
}

// MergeConfig merges layers in order (class, labels in key order, the
// device): a later layer's value of a setting wins.
func MergeConfig(layers ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, l := range layers {
		for k, v := range l {
			if n, err := ConfigValue(v); err == nil {
				out[k] = n
			}
		}
	}
	return out
}

// ConfigLayers lists the targets whose configuration applies to device d,
// in merge order: its class, its labels in key order, itself. The ledger
// merges exactly these, and a device proves exactly these keys.
func ConfigLayers(d *Device) [][2]string {
	var out [][2]string
	if d.Class != "" {
		out = append(out, [2]string{ConfigClass, d.Class})
	}
	for _, k := range sortedKeys(d.Labels) {
		out = append(out, [2]string{ConfigLabel, k + "=" + d.Labels[k]})
	}
	return append(out, [2]string{ConfigDevice, d.ID})
}

// ConfigRightHolds checks that the right a configuration was set by still
// holds at height h (ManageRightHolds); a device-scope layer may also have
// been set through a "manage" grant on that device alone. The ledger's
// view of a device's desired configuration and the device's own check
// both use it.
func ConfigRightHolds(r *ConfigRecord, device string, o *Org, g *Grant, subjectOrg *Org, h int64) error {
	mr := ManageRight{Org: r.Org, Signer: r.Signer, Grant: r.Grant}
	if r.Scope == ConfigDevice {
		mr.Device = device
	}
	return ManageRightHolds(mr, o, g, subjectOrg, h)
}

// ManageRight is the right a record was written by: its organisation,
// its signer, and the "manage" grant the signer held (0: the signer was an
// admin of Org). Device, if set, is the one device the record is for: a
// "manage" grant on that device alone then covers it too.
type ManageRight struct {
	Org    string
	Signer string
	Grant  uint64
	Device string
}

// ManageRightHolds checks that the right a record (a desired
// configuration, a job) was written by still holds at height h (the state
// o and g are from): for a record written by an admin (Grant 0), o is the
// organisation and the signer is still one of its admins; for one written
// through a grant, g is that grant, in force at h, a "manage" grant on the
// organisation (or on r.Device), held by the signer itself or by an
// organisation whose admin it is (then subjectOrg is that organisation's
// record). The ledger and the device both ask it: one rule.
func ManageRightHolds(r ManageRight, o *Org, g *Grant, subjectOrg *Org, h int64) error {
	if r.Grant == 0 {
		if o == nil || o.ID != r.Org || !o.IsAdmin(r.Signer) {
			return fmt.Errorf("set by %s, no longer an admin of %s", r.Signer, r.Org)
		}
		return nil
	}
	if g == nil || g.ID != r.Grant {
		return fmt.Errorf("set through grant %d, which does not exist", r.Grant)
	}
	if !g.ActiveAt(h) {
		return fmt.Errorf("set through grant %d, revoked or expired", r.Grant)
	}
	if g.Action != ActionManage {
		return fmt.Errorf("set through grant %d, a %q grant, not %q", r.Grant, g.Action, ActionManage)
	}
	if g.Resource != "org:"+r.Org && !(r.Device != "" && g.Resource == "device:"+r.Device) {
		return fmt.Errorf("set through grant %d on %s, which does not cover it", r.Grant, g.Resource)
	}
	switch {
	case g.Subject == "device:"+r.Signer:
		return nil
	case subjectOrg != nil && g.Subject == "org:"+subjectOrg.ID && subjectOrg.IsAdmin(r.Signer):
		return nil
	}
	return fmt.Errorf("set through grant %d to %s, which %s does not hold", r.Grant, g.Subject, r.Signer)
}
