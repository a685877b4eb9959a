package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"

	"github.com/BurntSushi/toml"

	"github.com/thingnet/thingnet/internal/textdur"
	"github.com/thingnet/thingnet/record"
)

// Rule is one [[rules]] table of thingnet.toml (or of a rules file).
type Rule struct {
	Name string `toml:"name" json:"name"`
	// Org is the organisation whose devices the rule watches: it applies
	// to no other organisation's devices, whatever the selector says.
	Org string `toml:"org" json:"org"`
	// When is the condition, in CEL with window functions.
	When    string   `toml:"when,omitempty" json:"when,omitempty"`
	Devices Selector `toml:"devices,omitempty" json:"devices,omitempty"`
	// Fleet makes it a fleet rule instead ([rules.fleet], no when): it
	// watches how many of the organisation's devices of a class are
	// silent, not a device's readings.
	Fleet *Fleet `toml:"fleet,omitempty" json:"fleet,omitempty"`
	// Cooldown is the least time between two firings for one device;
	// ClearAfter is how long the condition must be false before the rule
	// may fire again (0: one reading that makes it false). Both are
	// measured in the readings' own time.
	Cooldown   Duration `toml:"cooldown,omitempty" json:"cooldown,omitempty"`
	ClearAfter Duration `toml:"clear_after,omitempty" json:"clear_after,omitempty"`
	Action     Action   `toml:"action,omitempty" json:"action,omitempty"`
}

// Fleet is the condition of a fleet rule: true while more than SilentOver
// of the organisation's devices of Class ("": of every class) are silent
// (docs/management.md, "Fleet health": no reading for the configured
// number of their wake intervals). It is evaluated at each fleet census
// of the node (every 10 s), with the rule's cooldown and clear_after, as
// one (rule, class) state.
type Fleet struct {
	Class      string `toml:"class,omitempty" json:"class,omitempty"`
	SilentOver int    `toml:"silent_over" json:"silent_over"`
}

// FleetType is the content type of a fleet rule's firing: its Value is
// the number of silent devices.
const FleetType = "fleet/silent"

// Selector picks an organisation's devices: by id, by class, by labels (all
// must match); an empty selector picks all of them.
type Selector struct {
	IDs     []string          `toml:"ids,omitempty" json:"ids,omitempty"`
	Classes []string          `toml:"classes,omitempty" json:"classes,omitempty"`
	Labels  map[string]string `toml:"labels,omitempty" json:"labels,omitempty"`
}

// Action is what a firing does: it is always logged and counted; with
// Webhook it is POSTed there, signed with the node's gateway key; with
// Alert it is stored as an alert record (AlertType) in the gateway's own
// data log, anchored on the ledger with it.
type Action struct {
	Webhook string   `toml:"webhook,omitempty" json:"webhook,omitempty"`
	Alert   bool     `toml:"alert,omitempty" json:"alert,omitempty"`
	Timeout Duration `toml:"timeout,omitempty" json:"timeout,omitempty"` // per attempt; default 5s
	Retries int      `toml:"retries,omitempty" json:"retries,omitempty"` // attempts after the first; default 3, at most 10
	// Rate is the most deliveries a second to the webhook (default 10);
	// past it deliveries wait their turn.
	Rate float64 `toml:"rate,omitempty" json:"rate,omitempty"`
	// Call, if set, calls an agreement's transition with a tx signed by
	// the node's gateway key ([rules.action.call]).
	Call *Call `toml:"call,omitempty" json:"call,omitempty"`
	// Command, if set, sends a command to the firing's device
	// ([rules.action.command]).
	Command *Command `toml:"command,omitempty" json:"command,omitempty"`
}

// Command is a command a firing sends to the device it is about: a job of
// one device (docs/management.md, "Commands and jobs") created by a tx
// signed by the node's gateway key, which must hold a "manage" grant on the
// rule's organisation. The device proves the job against the ledger before
// it runs it, runs it once, and reports its outcome on the ledger, as for
// any job; `thingnet job show` follows it.
type Command struct {
	Name string         `toml:"name" json:"name"`
	Args map[string]any `toml:"args,omitempty" json:"args,omitempty"`
	// TimeoutBlocks is how many blocks the device has to report before the
	// job counts it as timed out; default 600.
	TimeoutBlocks uint32 `toml:"timeout_blocks,omitempty" json:"timeout_blocks,omitempty"`
}

// DefaultCommandTimeout is a rule command's timeout in blocks when the rule
// names none.
const DefaultCommandTimeout = 600

// Job is the job that sends c to device of org.
func (c *Command) Job(org, device string) *record.JobCreate {
	timeout := c.TimeoutBlocks
	if timeout == 0 {
		timeout = DefaultCommandTimeout
	}
	return &record.JobCreate{Org: org, Command: c.Name, Args: c.Args, Target: record.JobTarget{Devices: []string{device}},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: timeout}
}

// check validates a command by the ledger's own rules for a job, and makes
// its whole numbers int64 (JSON reads them as float64).
func (c *Command) check(org string) error {
	if err := wholeArgs("action.command.args", c.Args); err != nil {
		return err
	}
	j := c.Job(org, "")
	j.Target = record.JobTarget{Class: "any"} // the device is the firing's
	if err := j.ValidateBasic(); err != nil {
		return fmt.Errorf("action.command: %w", err)
	}
	return nil
}

// Call is an agreement call a firing makes: transition Transition of
// agreement Agreement, with Args (ints, strings, bools), signed by the
// node's gateway key — which must speak for a party the transition may be
// called by (the gateway's device, or its organisation).
type Call struct {
	Agreement  uint64         `toml:"agreement" json:"agreement"`
	Transition string         `toml:"transition" json:"transition"`
	Args       map[string]any `toml:"args,omitempty" json:"args,omitempty"`
}

// check validates a call and makes its whole numbers int64 (JSON reads
// them as float64).
func (c *Call) check() error {
	if c.Agreement == 0 || c.Transition == "" {
		return errors.New("action.call needs agreement (its id) and transition")
	}
	return wholeArgs("action.call.args", c.Args)
}

// wholeArgs checks that args (named what) are ints, strings or bools, and
// makes whole float64s (as JSON reads numbers) int64.
func wholeArgs(what string, args map[string]any) error {
	for k, v := range args {
		switch x := v.(type) {
		case int64, string, bool:
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return fmt.Errorf("%s.%s is %v: arguments are ints, strings or bools", what, k, x)
			}
			args[k] = int64(x)
		default:
			return fmt.Errorf("%s.%s is a %T: arguments are ints, strings or bools", what, k, v)
		}
	}
	return nil
}

// AlertType is the content type of an alert record: a reading of the
// gateway itself whose bytes are the firing as JSON (Firing).
const AlertType = "alert/rule"

// Duration is a time.Duration written as text ("500ms", "5m") in TOML.
type Duration = textdur.Duration

// Device is what a rule knows of a device: from the ledger.
type Device struct {
	ID, Org, Class string
	Labels         map[string]string
}

// Picks says whether the rule applies to the device's readings (a fleet
// rule applies to none).
func (r *Rule) Picks(d Device) bool {
	if d.Org != r.Org || r.Fleet != nil {
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
	case r.Action.Rate < 0 || r.Action.Rate > 1000 || math.IsNaN(r.Action.Rate):
		return nil, fmt.Errorf("rule %q: action.rate is %v; 0 (the default, 10) to 1000 deliveries a second", r.Name, r.Action.Rate)
	}
	if c := r.Action.Call; c != nil {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, err)
		}
	}
	if c := r.Action.Command; c != nil {
		if r.Fleet != nil {
			return nil, fmt.Errorf("rule %q: a fleet rule's firing is about a class, not a device: it cannot send a command (use a job: thingnet job create)", r.Name)
		}
		if err := c.check(r.Org); err != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, err)
		}
	}
	if r.Action.Webhook != "" {
		u, err := url.Parse(r.Action.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("rule %q: action.webhook %q is not an http(s) URL", r.Name, r.Action.Webhook)
		}
	}
	if f := r.Fleet; f != nil {
		switch {
		case r.When != "":
			return nil, fmt.Errorf("rule %q: a fleet rule has no when (its condition is [rules.fleet])", r.Name)
		case len(r.Devices.IDs) > 0 || len(r.Devices.Classes) > 0 || len(r.Devices.Labels) > 0:
			return nil, fmt.Errorf("rule %q: a fleet rule has no [rules.devices] (it counts a class: fleet.class)", r.Name)
		case f.SilentOver < 0:
			return nil, fmt.Errorf("rule %q: fleet.silent_over is %d; it fires when more than that many devices are silent (0 or more)", r.Name, f.SilentOver)
		}
		return nil, nil
	}
	return Compile(r.Name, r.When, lim)
}

// File is a rules file: [[rules]] tables, as in thingnet.toml.
type File struct {
	Rules []Rule `toml:"rules" json:"rules"`
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

// DecodeJSON reads {"rules": [rule, ...]} (the JSON of [[rules]] tables,
// as POST /v1/rules takes it; unknown fields refused) and checks every
// rule, as Parse does a rules file.
func DecodeJSON(b []byte, lim Limits) ([]Rule, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("rules: the body is not {\"rules\": [rule, ...]}: %w", err)
	}
	if dec.More() {
		return nil, errors.New("rules: more than one JSON value")
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
