package rules

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/BurntSushi/toml"
)

// Rule is one [[rules]] table of thingnet.toml (or of a rules file).
type Rule struct {
	Name string `toml:"name"`
	// Org is the organisation whose devices the rule watches: it applies
	// to no other organisation's devices, whatever the selector says.
	Org string `toml:"org"`
	// When is the condition, in CEL with window functions.
	When    string   `toml:"when"`
	Devices Selector `toml:"devices"`
	// Cooldown is the least time between two firings for one device;
	// ClearAfter is how long the condition must be false before the rule
	// may fire again (0: one reading that makes it false). Both are
	// measured in the readings' own time.
	Cooldown   Duration `toml:"cooldown"`
	ClearAfter Duration `toml:"clear_after"`
	Action     Action   `toml:"action"`
}

// Selector picks an organisation's devices: by id, by class, by labels (all
// must match); an empty selector picks all of them.
type Selector struct {
	IDs     []string          `toml:"ids"`
	Classes []string          `toml:"classes"`
	Labels  map[string]string `toml:"labels"`
}

// Action is what a firing does: it is always logged and counted; with
// Webhook it is POSTed there, signed with the node's gateway key; with
// Alert it is stored as an alert record (AlertType) in the gateway's own
// data log, anchored on the ledger with it.
type Action struct {
	Webhook string   `toml:"webhook"`
	Alert   bool     `toml:"alert"`
	Timeout Duration `toml:"timeout"` // per attempt; default 5s
	Retries int      `toml:"retries"` // attempts after the first; default 3, at most 10
}

// AlertType is the content type of an alert record: a reading of the
// gateway itself whose bytes are the firing as JSON (Firing).
const AlertType = "alert/rule"

// Duration is a time.Duration written as "5m" in TOML.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Device is what a rule knows of a device: from the ledger.
type Device struct {
	ID, Org, Class string
	Labels         map[string]string
}

// Picks says whether the rule applies to the device.
func (r *Rule) Picks(d Device) bool {
	if d.Org != r.Org {
		return false
	}
	if len(r.Devices.IDs) > 0 && !slices.Contains(r.Devices.IDs, d.ID) {
		return false
	}
	if len(r.Devices.Classes) > 0 && !slices.Contains(r.Devices.Classes, d.Class) {
		return false
	}
	for k, v := range r.Devices.Labels {
		if d.Labels[k] != v {
			return false
		}
	}
	return true
}

// Check validates a rule and compiles its condition.
func (r *Rule) Check(lim Limits) (*Condition, error) {
	switch {
	case r.Name == "":
		return nil, errors.New("a rule has no name")
	case len(r.Name) > 64:
		return nil, fmt.Errorf("rule %.64q...: a name is at most 64 bytes", r.Name)
	case r.Org == "":
		return nil, fmt.Errorf("rule %q: org is missing (a rule watches one organisation's devices)", r.Name)
	case r.Cooldown.Duration < 0 || r.ClearAfter.Duration < 0 || r.Action.Timeout.Duration < 0:
		return nil, fmt.Errorf("rule %q: cooldown, clear_after and action.timeout may not be negative", r.Name)
	case r.Action.Retries < 0 || r.Action.Retries > 10:
		return nil, fmt.Errorf("rule %q: action.retries is %d; 0 to 10", r.Name, r.Action.Retries)
	}
	if r.Action.Webhook != "" {
		u, err := url.Parse(r.Action.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("rule %q: action.webhook %q is not an http(s) URL", r.Name, r.Action.Webhook)
		}
	}
	return Compile(r.Name, r.When, lim)
}

// File is a rules file: [[rules]] tables, as in thingnet.toml.
type File struct {
	Rules []Rule `toml:"rules"`
}

// Parse reads a rules file and checks every rule; names must be unique.
func Parse(src []byte, lim Limits) ([]Rule, error) {
	var f File
	md, err := toml.Decode(string(src), &f)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("rules file: unknown key %s", und[0])
	}
	if err := CheckAll(f.Rules, lim); err != nil {
		return nil, err
	}
	return f.Rules, nil
}

// CheckAll checks rules and that their names are unique.
func CheckAll(rs []Rule, lim Limits) error {
	seen := map[string]bool{}
	for i := range rs {
		if _, err := rs[i].Check(lim); err != nil {
			return err
		}
		if seen[rs[i].Name] {
			return fmt.Errorf("rule %q is defined twice", rs[i].Name)
		}
		seen[rs[i].Name] = true
	}
	return nil
}
