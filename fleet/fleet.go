// Package fleet is a gateway's own view of its devices' health: when it
// last stored a reading of each device and the device's last status
// report (a Tracker, fed by the gateway's stored-reading feed and seeded
// from the tail of its data log at start), and a Census that joins it with
// the ledger's device records into counts by organisation, class and state
// (client.HealthState: the one rule for ok, silent, never). The node
// exports the counts as Prometheus metrics, gives them to the rules engine
// (fleet rules: more than N devices of a class silent) and serves them,
// counts only, to callers who may not read the readings.
// docs/management.md, "Fleet health".
package fleet

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// Seen is what the gateway last stored of a device.
type Seen struct {
	Time   time.Time            // the latest reading's time, as the device dated it
	Status *record.StatusReport // its latest status report (nil: none stored)
}

// Tracker keeps, per device, the latest reading time and status report
// the gateway stored; at most Max devices (past it, the device seen
// longest ago is forgotten). It is safe for concurrent use.
type Tracker struct {
	max    int
	mu     sync.Mutex
	seen   map[string]*Seen
	status map[string]time.Time // device -> time of the status report kept
}

// NewTracker keeps at most max devices (default 1,000,000).
func NewTracker(max int) *Tracker {
	if max <= 0 {
		max = 1_000_000
	}
	return &Tracker{max: max, seen: map[string]*Seen{}, status: map[string]time.Time{}}
}

// Observe takes a stored reading: a later time moves the device's last
// seen; a status report (record.ContentStatus) later than the one kept
// replaces it. Readings dated far in the future are the gateway's to
// refuse (its skew rule); the tracker takes what it stored.
func (t *Tracker) Observe(it client.ReadingItem) {
	var st *record.StatusReport
	if it.ContentType == record.ContentStatus && it.Bytes != nil {
		if s, err := record.DecodeStatusReport(it.Bytes); err == nil {
			st = s
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.seen[it.Device]
	if s == nil {
		if len(t.seen) >= t.max {
			t.evict()
		}
		s = &Seen{}
		t.seen[it.Device] = s
	}
	if it.Time.After(s.Time) {
		s.Time = it.Time
	}
	if st != nil && !it.Time.Before(t.status[it.Device]) {
		s.Status = st
		t.status[it.Device] = it.Time
	}
}

// evict forgets the device seen longest ago. Called with t.mu held.
func (t *Tracker) evict() {
	var old string
	var at time.Time
	for id, s := range t.seen {
		if old == "" || s.Time.Before(at) || (s.Time.Equal(at) && id < old) {
			old, at = id, s.Time
		}
	}
	delete(t.seen, old)
	delete(t.status, old)
}

// Seen is what the tracker knows of device.
func (t *Tracker) Seen(device string) (Seen, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.seen[device]
	if !ok {
		return Seen{}, false
	}
	return *s, true
}

// Since is the earlier of device's latest reading time and its latest
// status report's (zero if the tracker does not know it): reading its
// readings from there finds both (client.FleetOptions.Since).
func (t *Tracker) Since(device string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.seen[device]
	if s == nil {
		return time.Time{}
	}
	if st, ok := t.status[device]; ok && st.Before(s.Time) {
		return st
	}
	return s.Time
}

// Len is how many devices the tracker knows.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}

// Device is what a census needs of a device's ledger record.
type Device struct {
	ID, Org, Class string
	Labels         map[string]string
	Status         record.Status
	Wake           time.Duration // from its desired configuration (wake_s); 0: the census default
}

// Group is the count of an organisation's devices of a class by state.
type Group struct {
	Org     string         `json:"org"`
	Class   string         `json:"class"`
	States  map[string]int `json:"states"` // state -> devices
	Devices int            `json:"devices"`
	// MaxAge is the longest time since an active device of the group was
	// last seen, among those seen (0: none seen).
	MaxAge time.Duration `json:"max_age_ns"`
}

// Summary is a census: the groups in (org, class) order.
type Summary struct {
	At     time.Time     `json:"at"`
	Missed int           `json:"missed"`
	Groups []Group       `json:"groups"`
	Took   time.Duration `json:"took_ns"` // what computing it cost
}

// Count is the devices of org (and of class, unless "") in state.
func (s *Summary) Count(org, class, state string) int {
	n := 0
	for _, g := range s.Groups {
		if g.Org == org && (class == "" || g.Class == class) {
			n += g.States[state]
		}
	}
	return n
}

// Org is the summary of one organisation's groups.
func (s *Summary) Org(org string) []Group {
	out := []Group{}
	for _, g := range s.Groups {
		if g.Org == org {
			out = append(out, g)
		}
	}
	return out
}

// Classify counts devs by (org, class) and state at now, a device silent
// after missed wake intervals (its own, else wake) without a reading, as
// client.HealthState says.
func (t *Tracker) Classify(devs []Device, wake time.Duration, missed int, now time.Time) []Group {
	type gk struct{ org, class string }
	groups := map[gk]*Group{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range devs {
		k := gk{d.Org, d.Class}
		g := groups[k]
		if g == nil {
			g = &Group{Org: d.Org, Class: d.Class, States: map[string]int{}}
			groups[k] = g
		}
		w := d.Wake
		if w <= 0 {
			w = wake
		}
		var last time.Time
		if s := t.seen[d.ID]; s != nil {
			last = s.Time
		}
		g.States[client.HealthState(d.Status, last, w, missed, now)]++
		g.Devices++
		if d.Status == record.StatusActive && !last.IsZero() {
			g.MaxAge = max(g.MaxAge, now.Sub(last))
		}
	}
	out := make([]Group, 0, len(groups))
	for _, k := range slices.SortedFunc(maps.Keys(groups), func(a, b gk) int {
		if a.org != b.org {
			return strings.Compare(a.org, b.org)
		}
		return strings.Compare(a.class, b.class)
	}) {
		out = append(out, *groups[k])
	}
	return out
}

// CensusConfig configures a Census.
type CensusConfig struct {
	Tracker *Tracker
	// Devices lists the ledger's devices with their wake intervals.
	Devices func() ([]Device, error)
	Wake    time.Duration // a device's wake interval when it sets none; default 5 s (as `fleet status`)
	Missed  int           // silent after this many wake intervals; default 3
	// MaxAge is how long a summary is served before it is computed again
	// (default 10 s): a scrape costs at most one census per MaxAge.
	MaxAge time.Duration
	Now    func() time.Time
}

// Census computes summaries, each reused for MaxAge.
type Census struct {
	c    CensusConfig
	mu   sync.Mutex
	last *Summary
}

// NewCensus fills in c's defaults.
func NewCensus(c CensusConfig) *Census {
	if c.Wake <= 0 {
		c.Wake = client.DefaultFleetWake
	}
	if c.Missed <= 0 {
		c.Missed = client.DefaultFleetMissed
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Census{c: c}
}

// Summary is the latest census, computed now if the kept one is older
// than MaxAge. Concurrent callers share one computation.
func (c *Census) Summary() (*Summary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.c.Now()
	if c.last != nil && now.Sub(c.last.At) < c.c.MaxAge {
		return c.last, nil
	}
	return c.compute(now)
}

// Refresh computes a census now.
func (c *Census) Refresh() (*Summary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.compute(c.c.Now())
}

func (c *Census) compute(now time.Time) (*Summary, error) {
	start := time.Now()
	devs, err := c.c.Devices()
	if err != nil {
		return nil, err
	}
	s := &Summary{At: now, Missed: c.c.Missed, Groups: c.c.Tracker.Classify(devs, c.c.Wake, c.c.Missed, now)}
	s.Took = time.Since(start)
	c.last = s
	return s, nil
}
