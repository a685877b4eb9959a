package rules

import (
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// Firing is one firing of a rule for a device, at the reading that made
// its condition true.
type Firing struct {
	Rule   string    `json:"rule"`
	Org    string    `json:"org"`
	Device string    `json:"device,omitempty"` // "" for a fleet rule's firing
	Class  string    `json:"class,omitempty"`  // a fleet rule's class`
	Type   string    `json:"type"`
	Seq    uint64    `json:"seq"`
	Value  float64   `json:"value"`
	Time   time.Time `json:"time"` // the reading's time (a fleet rule's: the census's)
}

// subject is what a firing is about: the device, or a fleet rule's class
// ("class:sensor"; "class:" for every class).
func (f *Firing) subject() string {
	if f.Device != "" {
		return f.Device
	}
	return "class:" + f.Class
}

// Config configures an engine.
type Config struct {
	Rules  []Rule
	Limits Limits // zero: DefaultLimits()
	// MaxPoints bounds the readings kept per device and type (the oldest
	// are dropped first); default 10000.
	MaxPoints int
	// MaxDevices bounds the devices with windows in memory; past it the
	// least recently updated is forgotten. Default 100000.
	MaxDevices int
	// Fire is called with each firing, in order, under no lock of the
	// engine's; it must not block (a Dispatcher queues).
	Fire   func(Firing)
	Logger *slog.Logger
}

type compiled struct {
	Rule
	cond *Condition
}

type state struct {
	active     bool      // fired, not yet cleared
	lastFire   time.Time // zero: never
	falseSince time.Time // zero: the condition is true, or not yet seen false while active
}

// key is a state's (rule, subject): the subject is a device, or a fleet
// rule's "class:<class>". Keyed by the rule's name so that a state
// outlives a change of the rule set (SetRules) and a restart (State).
type key struct {
	rule   string
	device string
}

// Engine evaluates rules on the readings given to Observe. It is safe for
// concurrent use.
type Engine struct {
	cfg Config

	mu    sync.Mutex
	rules []compiled
	devs  map[string]*deviceWindows
	seen  map[string]uint64 // device -> observation counter, for eviction
	tick  uint64
	state map[key]*state

	observed, fired, evalErrors, tooOld, censuses atomic.Uint64
}

// NewEngine checks and compiles the rules.
func NewEngine(c Config) (*Engine, error) {
	if c.Limits == (Limits{}) {
		c.Limits = DefaultLimits()
	}
	if c.MaxPoints <= 0 {
		c.MaxPoints = 10000
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = 100000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: c, devs: map[string]*deviceWindows{}, seen: map[string]uint64{}, state: map[key]*state{}}
	if err := e.SetRules(c.Rules); err != nil {
		return nil, err
	}
	return e, nil
}

// SetRules replaces the engine's rules (a rule added or removed on a
// running node). A rule kept with the same definition keeps its states;
// the states of a removed or changed rule are forgotten. The windows are
// kept; a new rule reading a longer window than any before sees what they
// hold.
func (e *Engine) SetRules(rs []Rule) error {
	if err := CheckAll(rs, e.cfg.Limits); err != nil {
		return err
	}
	out := make([]compiled, 0, len(rs))
	for _, r := range rs {
		cond, _ := r.Check(e.cfg.Limits) // checked above
		out = append(out, compiled{Rule: r, cond: cond})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	keep := map[string]bool{}
	for _, n := range out {
		for _, o := range e.rules {
			if o.Name == n.Name && reflect.DeepEqual(o.Rule, n.Rule) {
				keep[n.Name] = true
			}
		}
	}
	for k := range e.state {
		if !keep[k.rule] {
			delete(e.state, k)
		}
	}
	e.rules = out
	return nil
}

// Rules are the engine's rules, in order.
func (e *Engine) Rules() []Rule {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Rule, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.Rule
	}
	return out
}

// Observe takes a stored numeric reading of a device, adds it to the
// device's windows and evaluates the rules that pick the device. It
// returns the firings (also given to Config.Fire).
func (e *Engine) Observe(d Device, typ string, seq uint64, t time.Time, v float64) []Firing {
	defer e.observed.Add(1) // once evaluated and its firings given to Fire
	var picked []int
	e.mu.Lock()
	for i := range e.rules {
		if e.rules[i].Picks(d) {
			picked = append(picked, i)
		}
	}
	if len(picked) == 0 {
		e.mu.Unlock()
		return nil
	}
	var out []Firing
	w := e.devs[d.ID]
	if w == nil {
		if len(e.devs) >= e.cfg.MaxDevices {
			e.evict()
		}
		w = newDeviceWindows(e.cfg.Limits.MaxWindow, e.cfg.MaxPoints)
		e.devs[d.ID] = w
	}
	e.tick++
	e.seen[d.ID] = e.tick
	if !w.add(typ, t, v) {
		e.mu.Unlock()
		e.tooOld.Add(1)
		return nil
	}
	in := Input{Device: d, Type: typ, Value: v, Seq: seq, Time: t, windows: w, max: e.cfg.Limits.MaxWindow}
	for _, i := range picked {
		r := &e.rules[i]
		ok, err := r.cond.Eval(in)
		if err != nil {
			e.evalErrors.Add(1)
			e.cfg.Logger.Debug("rule condition", "rule", r.Name, "device", d.ID, "seq", seq, "err", err)
		}
		if e.stateOf(r.Name, d.ID).step(ok, t, r.Cooldown.Duration, r.ClearAfter.Duration) {
			out = append(out, Firing{Rule: r.Name, Org: r.Org, Device: d.ID, Type: typ, Seq: seq, Value: v, Time: t})
		}
	}
	e.mu.Unlock()
	return e.fire(out)
}

// stateOf is the state of (rule, subject), made if new. Called with e.mu
// held.
func (e *Engine) stateOf(rule, subject string) *state {
	k := key{rule, subject}
	s := e.state[k]
	if s == nil {
		s = &state{}
		e.state[k] = s
	}
	return s
}

// fire counts firings and gives them to Config.Fire, under no lock.
func (e *Engine) fire(out []Firing) []Firing {
	e.fired.Add(uint64(len(out)))
	if e.cfg.Fire != nil {
		for _, f := range out {
			e.cfg.Fire(f)
		}
	}
	return out
}

// FleetCount is how many of an organisation's devices of a class a fleet
// census found, and how many of them silent.
type FleetCount struct {
	Org, Class      string
	Devices, Silent int
}

// ObserveFleet evaluates the fleet rules on a census taken at t: a rule
// of organisation O and class C is true while more than its silent_over
// of O's devices of C (of every class when C is "") are silent. Cooldown,
// clear_after and de-duplication are as for a device, per (rule, class);
// the firing's Value is the silent count and its Seq the census time in
// Unix milliseconds.
func (e *Engine) ObserveFleet(counts []FleetCount, t time.Time) []Firing {
	defer e.censuses.Add(1)
	var out []Firing
	e.mu.Lock()
	for i := range e.rules {
		r := &e.rules[i]
		if r.Fleet == nil {
			continue
		}
		silent := 0
		for _, c := range counts {
			if c.Org == r.Org && (r.Fleet.Class == "" || c.Class == r.Fleet.Class) {
				silent += c.Silent
			}
		}
		if e.stateOf(r.Name, "class:"+r.Fleet.Class).step(silent > r.Fleet.SilentOver, t, r.Cooldown.Duration, r.ClearAfter.Duration) {
			out = append(out, Firing{Rule: r.Name, Org: r.Org, Class: r.Fleet.Class, Type: FleetType, Seq: uint64(t.UnixMilli()), Value: float64(silent), Time: t})
		}
	}
	e.mu.Unlock()
	return e.fire(out)
}

// step advances a (rule, device) state with the condition's value at t and
// reports whether the rule fires: when the condition is true, the rule
// is not active (it never fired, or the condition has since been false for
// clearAfter) and cooldown has passed since the last firing.
func (s *state) step(cond bool, t time.Time, cooldown, clearAfter time.Duration) bool {
	if !cond {
		if s.active {
			if s.falseSince.IsZero() {
				s.falseSince = t
			}
			if t.Sub(s.falseSince) >= clearAfter {
				s.active, s.falseSince = false, time.Time{}
			}
		}
		return false
	}
	s.falseSince = time.Time{}
	if s.active || (!s.lastFire.IsZero() && t.Sub(s.lastFire) < cooldown) {
		return false
	}
	s.active, s.lastFire = true, t
	return true
}

// evict forgets the least recently observed device and its rule states.
// Called with e.mu held.
func (e *Engine) evict() {
	var old string
	var at uint64
	for id, n := range e.seen {
		if old == "" || n < at {
			old, at = id, n
		}
	}
	delete(e.devs, old)
	delete(e.seen, old)
	for k := range e.state {
		if k.device == old {
			delete(e.state, k)
		}
	}
}

// Stats counts what an engine did.
type Stats struct {
	// Observed counts the readings evaluated (their firings given to
	// Config.Fire); TooOld those older than the longest window before the
	// device's newest, refused.
	Observed, Fired, EvalErrors, TooOld uint64
	// Censuses counts the fleet censuses given to ObserveFleet.
	Censuses uint64
	Devices  int
}

func (e *Engine) Stats() Stats {
	e.mu.Lock()
	n := len(e.devs)
	e.mu.Unlock()
	return Stats{Observed: e.observed.Load(), Fired: e.fired.Load(), EvalErrors: e.evalErrors.Load(), TooOld: e.tooOld.Load(), Censuses: e.censuses.Load(), Devices: n}
}
