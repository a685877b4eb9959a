package ratelimit

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Refusals are counted per key in slots of OffenderResolution, over the
// last MaxOffenderWindow: a fixed 480 bytes per key that has been refused,
// whatever the rate of refusals.
const (
	// OffenderResolution is the granularity of Offenders' window.
	OffenderResolution = 5 * time.Second
	// MaxOffenderWindow is the longest window Offenders looks at.
	MaxOffenderWindow = offenderSlots * OffenderResolution

	offenderSlots = 120
)

// Offender is a key that keeps exceeding its limits.
type Offender struct {
	Key string
	// Violations is the number of refusals in the window.
	Violations int
	// Since is the first refusal of the current run: refusals with no
	// gap of MaxOffenderWindow or more between them.
	Since time.Time
}

// violations counts the refusals of one key.
type violations struct {
	counts   [offenderSlots]uint32 // refusals per slot, a ring indexed by slot number
	newest   int64                 // number of the newest slot counted
	runStart time.Time             // first refusal of the current run
	last     time.Time             // latest refusal
	reported time.Time             // when Offenders last reported the key; zero if never
}

// slot returns the number of the slot holding time t: slots are
// OffenderResolution long, counted from l.epoch (negative before it).
func (l *Limiter) slot(t time.Time) int64 {
	d := t.Sub(l.epoch)
	s := int64(d / OffenderResolution)
	if d < 0 && d%OffenderResolution != 0 {
		s-- // round toward minus infinity
	}
	return s
}

// ring returns the index in counts of slot s.
func ring(s int64) int {
	return int((s%offenderSlots + offenderSlots) % offenderSlots)
}

// violation counts a refusal of e at now; l.mu is held.
func (l *Limiter) violation(e *entry, now time.Time) {
	s := l.slot(now)
	v := e.viol
	if v == nil {
		v = &violations{newest: s, runStart: now}
		e.viol = v
		l.violators[e.key] = e
	}
	switch {
	case s > v.newest:
		// Clear the slots that passed since the newest one counted.
		if s-v.newest >= offenderSlots {
			clear(v.counts[:])
		} else {
			for x := v.newest + 1; x <= s; x++ {
				v.counts[ring(x)] = 0
			}
		}
		v.newest = s
	case s < v.newest:
		s = v.newest // the clock went back: count in the newest slot
	}
	if c := &v.counts[ring(s)]; *c < math.MaxUint32 {
		*c++
	}
	if !v.last.IsZero() && now.Sub(v.last) >= MaxOffenderWindow {
		v.runStart = now
	}
	if now.After(v.last) {
		v.last = now
	}
}

// count returns the refusals in the slots that overlap [now-window, now].
func (l *Limiter) count(v *violations, now time.Time, window time.Duration) int {
	last := min(l.slot(now), v.newest)
	// Slots after the newest hold stale counts, and the ring holds the
	// newest offenderSlots only.
	first := max(l.slot(now.Add(-window)), v.newest-offenderSlots+1)
	n := 0
	for s := first; s <= last; s++ {
		n += int(v.counts[ring(s)])
	}
	return n
}

// Offenders returns the keys refused at least threshold times within the
// last window (at least 1, rounded up to OffenderResolution, at most
// MaxOffenderWindow), most refusals first. A key is reported at most once
// per window: after a report it is reported again only once window has
// passed, if it still offends. Call it periodically, with the same
// arguments, and ask the ledger to act on what it returns. It also forgets
// the refusals of keys quiet for MaxOffenderWindow.
func (l *Limiter) Offenders(threshold int, window time.Duration) []Offender {
	threshold = max(threshold, 1)
	window = min(max(window, 1), MaxOffenderWindow)
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Offender
	for key, e := range l.violators {
		v := e.viol
		if now.Sub(v.last) >= MaxOffenderWindow {
			e.viol = nil
			delete(l.violators, key)
			continue
		}
		n := l.count(v, now, window)
		if n < threshold || !v.reported.IsZero() && now.Sub(v.reported) < window {
			continue
		}
		v.reported = now
		out = append(out, Offender{Key: key, Violations: n, Since: v.runStart})
	}
	slices.SortFunc(out, func(a, b Offender) int {
		if c := cmp.Compare(b.Violations, a.Violations); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out
}
