package rules

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetRule: a fleet rule fires when more than silent_over devices of
// its class in its organisation are silent, once per transition (cooldown
// and clear_after as for a device), and never for another organisation's
// or class's devices.
func TestFleetRule(t *testing.T) {
	e, err := NewEngine(Config{Rules: []Rule{{Name: "quiet", Org: "acme", Fleet: &Fleet{Class: "sensor", SilentOver: 2},
		ClearAfter: Duration{Duration: 20 * time.Second}}}})
	if err != nil {
		t.Fatal(err)
	}
	census := func(i int, silent int) []Firing {
		return e.ObserveFleet([]FleetCount{
			{Org: "acme", Class: "sensor", Devices: 10, Silent: silent},
			{Org: "acme", Class: "lock", Devices: 10, Silent: 9},   // another class
			{Org: "other", Class: "sensor", Devices: 9, Silent: 9}, // another organisation
		}, t0.Add(time.Duration(i)*10*time.Second))
	}
	steps := []struct {
		silent int
		fires  bool
	}{{0, false}, {2, false}, {3, true}, {5, false}, {1, false}, {4, false} /* false only 10s < clear_after */, {1, false}, {1, false}, {1, false}, {3, true}}
	for i, s := range steps {
		got := census(i, s.silent)
		if (len(got) == 1) != s.fires {
			t.Fatalf("census %d (%d silent): firings %v; want fires=%v", i, s.silent, got, s.fires)
		}
		if s.fires && (got[0].Value != float64(s.silent) || got[0].Class != "sensor" || got[0].Type != FleetType || got[0].Device != "") {
			t.Fatalf("firing %+v", got[0])
		}
	}
	// A fleet rule sees no readings.
	if f := e.Observe(Device{ID: "d", Org: "acme", Class: "sensor"}, "t", 1, t0, 1); f != nil {
		t.Fatalf("a fleet rule fired on a reading: %v", f)
	}
}

func TestFleetRuleCheck(t *testing.T) {
	for _, r := range []Rule{
		{Name: "a", Org: "o", When: "count(5m) > 1", Fleet: &Fleet{SilentOver: 1}},
		{Name: "b", Org: "o", Fleet: &Fleet{SilentOver: -1}},
		{Name: "c", Org: "o", Fleet: &Fleet{}, Devices: Selector{Classes: []string{"x"}}},
	} {
		if _, err := r.Check(DefaultLimits()); err == nil || !strings.Contains(err.Error(), "fleet") {
			t.Errorf("rule %s: %v; want a fleet rule's error", r.Name, err)
		}
	}
	rs, err := Parse([]byte("[[rules]]\nname = \"q\"\norg = \"o\"\n[rules.fleet]\nclass = \"sensor\"\nsilent_over = 5\n"), DefaultLimits())
	if err != nil || rs[0].Fleet == nil || rs[0].Fleet.SilentOver != 5 {
		t.Fatalf("Parse = %+v, %v", rs, err)
	}
}

// TestStateAcrossRestart: an engine restored from its saved state neither
// fires again for a condition that stayed true nor forgets its windows,
// and SetRules keeps the states of unchanged rules only.
func TestStateAcrossRestart(t *testing.T) {
	r := Rule{Name: "hot", Org: "acme", When: `mean(temperature, 5m) > 30 && count(5m) >= 3`}
	e, err := NewEngine(Config{Rules: []Rule{r}})
	if err != nil {
		t.Fatal(err)
	}
	if got := feed(e, time.Minute, "temperature", 20, 40, 40); len(got) != 1 {
		t.Fatalf("fired at %v", got)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := e.SaveState(path); err != nil {
		t.Fatal(err)
	}
	e2, _ := NewEngine(Config{Rules: []Rule{r}})
	if err := e2.LoadState(path); err != nil {
		t.Fatal(err)
	}
	// Still true at minute 3 (mean of 40, 40, 40 over the restored window): no new firing.
	if f := e2.Observe(dev, "temperature", 4, t0.Add(3*time.Minute), 40); len(f) != 0 {
		t.Fatalf("fired again after a restart: %v", f)
	}
	// A fresh engine (no state) would have fired here only with a full window; restored, the window is full.
	e3, _ := NewEngine(Config{Rules: []Rule{r}})
	if f := e3.Observe(dev, "temperature", 4, t0.Add(3*time.Minute), 40); len(f) != 0 {
		t.Fatal("a fresh engine fired on one reading")
	}
	// SetRules: the same rule keeps its state, a changed one loses it.
	if err := e2.SetRules([]Rule{r, {Name: "cold", Org: "acme", When: "last(temperature) < 0.0"}}); err != nil {
		t.Fatal(err)
	}
	if f := e2.Observe(dev, "temperature", 5, t0.Add(4*time.Minute), 40); len(f) != 0 {
		t.Fatalf("an unchanged rule fired again after SetRules: %v", f)
	}
	r.Cooldown = Duration{Duration: time.Second}
	if err := e2.SetRules([]Rule{r}); err != nil {
		t.Fatal(err)
	}
	if f := e2.Observe(dev, "temperature", 6, t0.Add(5*time.Minute), 40); len(f) != 1 {
		t.Fatalf("a changed rule kept its old state: %v", f)
	}
	if _, err := DecodeState([]byte(`{"version":1,"windows":[{"device":"d","type":"t","t":[2,1],"v":[1,2]}]}`)); err == nil {
		t.Fatal("a window out of time order was accepted")
	}
}

func TestStore(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), StoreDir)}
	if rs, err := s.List(DefaultLimits()); err != nil || len(rs) != 0 {
		t.Fatalf("empty store: %v, %v", rs, err)
	}
	a := Rule{Name: "hot/1", Org: "acme", When: "last(temperature) > 30.0", Cooldown: Duration{Duration: time.Minute},
		Devices: Selector{Labels: map[string]string{"site": "north"}}, Action: Action{Webhook: "http://127.0.0.1:1/x", Alert: true}}
	b := Rule{Name: "quiet", Org: "acme", Fleet: &Fleet{Class: "sensor", SilentOver: 3}}
	for _, r := range []Rule{a, b} {
		if err := s.Put(r, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(Rule{Name: "bad", Org: "acme", When: "mean("}, DefaultLimits()); err == nil {
		t.Fatal("a bad rule was stored")
	}
	rs, err := s.List(DefaultLimits())
	if err != nil || len(rs) != 2 || rs[0].Name != "hot/1" || rs[0].Devices.Labels["site"] != "north" || rs[0].Cooldown.Duration != time.Minute || rs[1].Fleet.SilentOver != 3 {
		t.Fatalf("List = %+v, %v", rs, err)
	}
	if err := s.Remove("hot/1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("hot/1"); !errors.Is(err, ErrNoRule) {
		t.Fatalf("Remove twice: %v; want ErrNoRule", err)
	}
}
