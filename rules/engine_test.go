package rules

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func engine(t *testing.T, r Rule) *Engine {
	t.Helper()
	if r.Name == "" {
		r.Name = "hot"
	}
	r.Org = "acme"
	e, err := NewEngine(Config{Rules: []Rule{r}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var dev = Device{ID: "did:thingnet:d1", Org: "acme", Class: "sensor"}

// feed observes values one per step after t0 and returns the indexes of
// the readings at which the rule fired.
func feed(e *Engine, step time.Duration, typ string, vals ...float64) []int {
	var fired []int
	for i, v := range vals {
		if len(e.Observe(dev, typ, uint64(i+1), t0.Add(time.Duration(i)*step), v)) > 0 {
			fired = append(fired, i)
		}
	}
	return fired
}

func TestWindowBoundaries(t *testing.T) {
	// A reading exactly 5m before the evaluated one is outside the
	// window (it spans (now-5m, now]); one 1ms later is inside.
	e := engine(t, Rule{When: `count(temperature, 5m) == 2`})
	e.Observe(dev, "temperature/celsius", 1, t0, 1)
	if f := e.Observe(dev, "temperature/celsius", 2, t0.Add(5*time.Minute), 1); len(f) != 0 {
		t.Fatalf("a reading exactly a window old was counted: %v", f)
	}
	if f := e.Observe(dev, "temperature/celsius", 3, t0.Add(10*time.Minute-time.Millisecond), 1); len(f) != 1 {
		t.Fatal("a reading 1ms inside the window was not counted")
	}
	e = engine(t, Rule{When: `mean(temperature, 5m) > 30 && count(5m) >= 3`})
	got := feed(e, time.Minute, "temperature/celsius", 20, 40, 40, 40, 20, 20, 20, 20, 20)
	// mean over (t-5m, t]: 20 | 30 | 33.3 fires (count 3) | 35 | 32 | 30 ...
	if len(got) != 1 || got[0] != 2 {
		t.Fatalf("fired at %v; want [2]", got)
	}
	e = engine(t, Rule{When: `min(temperature, 2m) > 10 && max(temperature, 2m) < 20 && last(temperature) == 15.0`})
	if got := feed(e, time.Minute, "temperature", 5, 15, 15); len(got) != 1 || got[0] != 2 {
		t.Fatalf("min/max/last fired at %v; want [2]", got)
	}
	// Types: "humidity" readings are not temperature; count(5m) counts both.
	e = engine(t, Rule{When: `count(temperature, 1h) == 1 && count(1h) == 2`})
	e.Observe(dev, "humidity/percent", 1, t0, 50)
	if f := e.Observe(dev, "temperature/celsius", 2, t0.Add(time.Second), 21); len(f) != 1 {
		t.Fatal("type matching: want one firing")
	}
}

func TestHysteresisAndCooldown(t *testing.T) {
	e := engine(t, Rule{When: `reading.value > 30`})
	if got := feed(e, time.Minute, "t", 31, 32, 33, 20, 31, 31); len(got) != 2 || got[0] != 0 || got[1] != 4 {
		t.Fatalf("fired at %v; want [0 4]: once per transition", got)
	}
	e = engine(t, Rule{When: `reading.value > 30`, ClearAfter: Duration{Duration: 3 * time.Minute}})
	// False at 1, 2 (2 minutes): not cleared; true at 3: no firing; false
	// 4..7 (3 minutes): cleared; true at 8: fires.
	if got := feed(e, time.Minute, "t", 31, 20, 20, 31, 20, 20, 20, 20, 31); len(got) != 2 || got[1] != 8 {
		t.Fatalf("clear_after: fired at %v; want [0 8]", got)
	}
	e = engine(t, Rule{When: `reading.value > 30`, Cooldown: Duration{Duration: 10 * time.Minute}})
	// Transitions at 0, 2, 4, ... every 2 minutes: at most one per 10m.
	vals := []float64{31, 20, 31, 20, 31, 20, 31, 20, 31, 20, 31, 20, 31}
	if got := feed(e, time.Minute, "t", vals...); len(got) != 2 || got[0] != 0 || got[1] != 10 {
		t.Fatalf("cooldown: fired at %v; want [0 10]", got)
	}
	// State is per device.
	e = engine(t, Rule{When: `reading.value > 30`})
	other := Device{ID: "did:thingnet:d2", Org: "acme"}
	if len(e.Observe(dev, "t", 1, t0, 31)) != 1 || len(e.Observe(other, "t", 1, t0, 31)) != 1 {
		t.Fatal("each device fires on its own")
	}
	// Another organisation's device is never picked.
	if f := e.Observe(Device{ID: "x", Org: "evil"}, "t", 1, t0, 99); len(f) != 0 {
		t.Fatal("a rule fired for another organisation's device")
	}
}

func TestBadRulesRefusedWithPosition(t *testing.T) {
	for _, c := range []struct{ when, want string }{
		{"mean(temperature, 5m) >", "at 1:24"},
		{"reading.value > 30 &&\n  bogus > 1", "at 2:3"},
		{"mean(temperature, 2h) > 1", "at 1:19: a window of 2h0m0s"},
		{"mean(temperature) > 1", "no matching overload"},
		{"reading.value + 1.0", "want bool"},
		{"count(5m) >= 3 && reading.type == 1", "at 1:"},
		{"", "empty"},
	} {
		_, err := Compile("r", c.when, DefaultLimits())
		var re *Error
		if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want an error with %q", c.when, err, c.want)
		}
	}
	if _, err := NewEngine(Config{Rules: []Rule{{Name: "a", When: "true"}}}); err == nil || !strings.Contains(err.Error(), "org") {
		t.Errorf("a rule without org: %v", err)
	}
	long := strings.Repeat("reading.value > 1.0 && ", 40) + "true"
	if _, err := Compile("r", long, Limits{ExprBytes: 4096, ExprCost: 20, MaxWindow: time.Hour}); err == nil || !strings.Contains(err.Error(), "cost") {
		t.Errorf("an expensive rule: %v", err)
	}
}

func TestWindowsBounded(t *testing.T) {
	e, err := NewEngine(Config{Rules: []Rule{{Name: "n", Org: "acme", When: "count(t, 1h) > 100"}}, MaxPoints: 50, MaxDevices: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if f := e.Observe(dev, "t", uint64(i), t0.Add(time.Duration(i)*time.Second), 1); len(f) != 0 {
			t.Fatalf("count exceeded MaxPoints=50 at %d", i)
		}
	}
	for i := range 5 {
		e.Observe(Device{ID: string(rune('a' + i)), Org: "acme"}, "t", 1, t0, 1)
	}
	if n := e.Stats().Devices; n != 2 {
		t.Fatalf("%d devices kept; MaxDevices is 2", n)
	}
	// A reading older than the longest window before the newest is refused.
	e.Observe(dev, "t", 1, t0.Add(3*time.Hour), 1)
	e.Observe(dev, "t", 2, t0, 1)
	if e.Stats().TooOld != 1 {
		t.Fatalf("too old: %d", e.Stats().TooOld)
	}
}
