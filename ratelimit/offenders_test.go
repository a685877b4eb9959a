package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

// exhaust empties key's message bucket and then makes n refused requests.
func exhaust(l *Limiter, key string, n int) {
	for l.AllowMessage(key, 0).Allowed {
	}
	for range n - 1 {
		l.AllowMessage(key, 0)
	}
}

func TestOffenders(t *testing.T) {
	clock := newFakeClock()
	l := New(testLimits(), 100, clock)
	start := clock.Now()

	exhaust(l, "flood", 5)     // 5 refusals
	exhaust(l, "nearly", 4)    // 4 refusals: under the threshold
	l.AllowMessage("fine", 10) // no refusal
	l.AllowMessage("huge", 1<<20)
	for range 5 {
		l.AllowMessage("huge", 1<<20) // 6 oversize refusals
	}
	got := l.Offenders(5, time.Minute)
	want := []Offender{{"huge", 6, start}, {"flood", 5, start}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Offenders() = %v; want %v", got, want)
	}
	// Reported once per window.
	clock.Advance(10 * time.Second)
	exhaust(l, "flood", 10)
	if got := l.Offenders(5, time.Minute); len(got) != 0 {
		t.Fatalf("Offenders() again within the window = %v; want none", got)
	}
	// A window later, a key that still offends is reported again, with
	// the refusals in the window only; one that stopped is not.
	clock.Advance(55 * time.Second)
	exhaust(l, "flood", 3)
	got = l.Offenders(5, time.Minute)
	want = []Offender{{"flood", 13, start}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Offenders() a window later = %v; want %v", got, want)
	}
	// "nearly" reaches the threshold within the window.
	exhaust(l, "nearly", 1)
	got = l.Offenders(5, 2*time.Minute)
	if len(got) != 1 || got[0].Key != "nearly" || got[0].Violations != 5 {
		t.Fatalf("Offenders(window 2m) = %v; want nearly with 5", got)
	}
}

func TestOffendersWindow(t *testing.T) {
	clock := newFakeClock()
	l := New(testLimits(), 100, clock)
	exhaust(l, "k", 3)
	clock.Advance(30 * time.Second)
	exhaust(l, "k", 3)
	// Within 10 s only the last 3; within a minute all 6.
	if got := l.Offenders(4, 10*time.Second); len(got) != 0 {
		t.Fatalf("Offenders(4, 10s) = %v; want none", got)
	}
	if got := l.Offenders(6, time.Minute); len(got) != 1 || got[0].Violations != 6 {
		t.Fatalf("Offenders(6, 1m) = %v; want k with 6", got)
	}
	// Windows are capped at MaxOffenderWindow: refusals older than that
	// are forgotten, and a new run starts.
	clock.Advance(MaxOffenderWindow)
	if got := l.Offenders(1, time.Hour); len(got) != 0 {
		t.Fatalf("Offenders(1, 1h) after a quiet MaxOffenderWindow = %v; want none", got)
	}
	restart := clock.Now()
	exhaust(l, "k", 2)
	got := l.Offenders(1, time.Hour)
	if len(got) != 1 || got[0].Violations != 2 || !got[0].Since.Equal(restart) {
		t.Fatalf("Offenders() after a new run = %v; want k with 2 since %v", got, restart)
	}
	// Threshold and window below their minimum are raised to them.
	clock.Advance(MaxOffenderWindow - time.Second)
	l.AllowMessage("k", 1<<20)
	if got := l.Offenders(0, 0); len(got) != 1 || got[0].Violations != 1 {
		t.Fatalf("Offenders(0, 0) = %v; want k with 1", got)
	}
}

func TestOffendersSlotRing(t *testing.T) {
	clock := newFakeClock()
	l := New(testLimits(), 100, clock)
	// One refusal every 5 s for 20 minutes: the count over the longest
	// window stays that of the window, never more.
	for range 240 {
		l.AllowMessage("k", 1<<20)
		clock.Advance(OffenderResolution)
	}
	got := l.Offenders(1, MaxOffenderWindow)
	if len(got) != 1 || got[0].Violations != int(MaxOffenderWindow/OffenderResolution) {
		t.Fatalf("Offenders() = %v; want k with %d", got, MaxOffenderWindow/OffenderResolution)
	}
	// The run started 20 minutes ago: no gap of MaxOffenderWindow since.
	if want := clock.Now().Add(-240 * OffenderResolution); !got[0].Since.Equal(want) {
		t.Errorf("Since = %v; want %v", got[0].Since, want)
	}
	// A clock set back counts in the newest slot.
	clock.Advance(-time.Hour)
	l.AllowMessage("k", 1<<20)
}

func TestOffendersEvicted(t *testing.T) {
	clock := newFakeClock()
	l := New(testLimits(), 2, clock)
	exhaust(l, "bad", 10)
	l.AllowMessage("a", 0)
	l.AllowMessage("b", 0) // evicts "bad"
	if got := l.Offenders(1, time.Minute); len(got) != 0 {
		t.Fatalf("Offenders() = %v after the offender was evicted; want none", got)
	}
}
