package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/thingnet/thingnet/internal/atomicfile"
)

// Saved is an engine's state as a node keeps it across restarts
// (SaveState, LoadState): every (rule, subject) state, so that a
// condition true across a restart does not fire again and one that had
// fired is not forgotten, and every device's windows, so that a window's
// aggregate is the same after a restart as before.
type Saved struct {
	Version int          `json:"version"` // SavedVersion
	States  []SavedState `json:"states"`
	Windows []SavedWin   `json:"windows"`
}

// SavedVersion is the version of Saved this engine writes and reads.
const SavedVersion = 1

// SavedState is one (rule, subject) state.
type SavedState struct {
	Rule       string    `json:"rule"`
	Subject    string    `json:"subject"` // a device id, or "class:<class>"
	Active     bool      `json:"active,omitempty"`
	LastFire   time.Time `json:"last_fire,omitzero"`
	FalseSince time.Time `json:"false_since,omitzero"`
}

// SavedWin is one device's readings of one type: times in Unix
// nanoseconds and values, in time order.
type SavedWin struct {
	Device string    `json:"device"`
	Type   string    `json:"type"`
	Times  []int64   `json:"t"`
	Values []float64 `json:"v"`
}

// MaxSavedPoints bounds the window points a saved state holds (about 40
// bytes of JSON each): past it the windows are not saved at all (the
// states are), and fill again after a restart.
const MaxSavedPoints = 2_000_000

// State is a copy of the engine's states and windows, in a stable order.
func (e *Engine) State() *Saved {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &Saved{Version: SavedVersion, States: []SavedState{}, Windows: []SavedWin{}}
	for k, st := range e.state {
		s.States = append(s.States, SavedState{Rule: k.rule, Subject: k.device, Active: st.active, LastFire: st.lastFire, FalseSince: st.falseSince})
	}
	points := 0
	for _, w := range e.devs {
		for _, ps := range w.byType {
			points += len(ps)
		}
	}
	devs := e.devs
	if points > MaxSavedPoints {
		e.cfg.Logger.Warn("rules state: the windows are too large to save; only the states are", "points", points, "max", MaxSavedPoints)
		devs = nil
	}
	for id, w := range devs {
		for typ, ps := range w.byType {
			sw := SavedWin{Device: id, Type: typ, Times: make([]int64, len(ps)), Values: make([]float64, len(ps))}
			for i, p := range ps {
				sw.Times[i], sw.Values[i] = p.t.UnixNano(), p.v
			}
			s.Windows = append(s.Windows, sw)
		}
	}
	sort.Slice(s.States, func(i, j int) bool {
		a, b := s.States[i], s.States[j]
		return a.Rule < b.Rule || (a.Rule == b.Rule && a.Subject < b.Subject)
	})
	sort.Slice(s.Windows, func(i, j int) bool {
		a, b := s.Windows[i], s.Windows[j]
		return a.Device < b.Device || (a.Device == b.Device && a.Type < b.Type)
	})
	return s
}

// Restore puts saved states and windows into an engine that has observed
// nothing yet: the states of rules it does not have are dropped, windows
// are cut to the engine's bounds (MaxPoints, the longest window, MaxDevices).
func (e *Engine) Restore(s *Saved) error {
	if err := s.Check(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	have := map[string]bool{}
	for _, r := range e.rules {
		have[r.Name] = true
	}
	for _, st := range s.States {
		if have[st.Rule] {
			e.state[key{st.Rule, st.Subject}] = &state{active: st.Active, lastFire: st.LastFire, falseSince: st.FalseSince}
		}
	}
	for _, sw := range s.Windows {
		w := e.devs[sw.Device]
		if w == nil {
			if len(e.devs) >= e.cfg.MaxDevices {
				continue
			}
			w = newDeviceWindows(e.cfg.Limits.MaxWindow, e.cfg.MaxPoints)
			e.devs[sw.Device] = w
			e.tick++
			e.seen[sw.Device] = e.tick
		}
		for i, t := range sw.Times {
			w.add(sw.Type, time.Unix(0, t), sw.Values[i])
		}
	}
	return nil
}

// Check says whether s is well formed: its version, each window's times
// and values paired and in time order.
func (s *Saved) Check() error {
	if s.Version != SavedVersion {
		return fmt.Errorf("rules: saved state version %d; this node reads %d", s.Version, SavedVersion)
	}
	for _, st := range s.States {
		if st.Rule == "" || st.Subject == "" {
			return errors.New("rules: a saved state lacks its rule or subject")
		}
	}
	for _, w := range s.Windows {
		if w.Device == "" || len(w.Times) != len(w.Values) {
			return fmt.Errorf("rules: the saved window of %q, %q is malformed", w.Device, w.Type)
		}
		for i := 1; i < len(w.Times); i++ {
			if w.Times[i] < w.Times[i-1] {
				return fmt.Errorf("rules: the saved window of %q, %q is not in time order", w.Device, w.Type)
			}
		}
	}
	return nil
}

// Fired tells an engine just restored (Restore, LoadState) of firings
// made before the restart (Dispatcher.FiredAtStart): the state is saved
// every so often, so after a crash it may predate them, and a condition
// that was true then and still is would fire again. A firing later than
// its (rule, subject) state's last makes the state active, with the
// firing as its last; firings of rules the engine does not have are
// ignored.
func (e *Engine) Fired(fs []Firing) {
	e.mu.Lock()
	defer e.mu.Unlock()
	have := map[string]bool{}
	for _, r := range e.rules {
		have[r.Name] = true
	}
	for _, f := range fs {
		if !have[f.Rule] {
			continue
		}
		st := e.stateOf(f.Rule, f.subject())
		if f.Time.After(st.lastFire) {
			st.active, st.lastFire, st.falseSince = true, f.Time, time.Time{}
		}
	}
}

// DecodeState reads a saved state (JSON, as SaveState writes it).
func DecodeState(b []byte) (*Saved, error) {
	var s Saved
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("rules: saved state: %w", err)
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}

// SaveState writes the engine's state to path durably (a temporary file,
// fsync, rename): a crash leaves the previous state or this one.
func (e *Engine) SaveState(path string) error {
	b, err := json.Marshal(e.State())
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	return nil
}

// LoadState restores the state at path, if there is one.
func (e *Engine) LoadState(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	s, err := DecodeState(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return e.Restore(s)
}
