package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testLimits are DefaultLimits with smaller numbers, easy to count.
func testLimits() Limits {
	return Limits{
		MsgsPerSec: 10, Burst: 20,
		BytesPerSec: 1000, ByteBurst: 2000,
		ConnectsPerSec: 1, ConnectBurst: 3,
		MaxPacket: 1500,
	}
}

func TestDefaultLimits(t *testing.T) {
	l := DefaultLimits()
	if err := l.Validate(); err != nil {
		t.Fatalf("DefaultLimits().Validate() error = %v", err)
	}
	want := Limits{10, 20, 64 << 10, 128 << 10, 1, 3, 128 << 10}
	if l != want {
		t.Errorf("DefaultLimits() = %+v; want %+v", l, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(l *Limits)
		want string
	}{
		{"zero rate", func(l *Limits) { l.MsgsPerSec = 0 }, "MsgsPerSec is 0"},
		{"negative rate", func(l *Limits) { l.BytesPerSec = -1 }, "BytesPerSec is -1"},
		{"NaN rate", func(l *Limits) { l.ConnectsPerSec = math.NaN() }, "ConnectsPerSec is NaN"},
		{"infinite rate", func(l *Limits) { l.MsgsPerSec = math.Inf(1) }, "MsgsPerSec is +Inf"},
		{"zero burst", func(l *Limits) { l.Burst = 0 }, "Burst is 0"},
		{"zero connect burst", func(l *Limits) { l.ConnectBurst = 0 }, "ConnectBurst is 0"},
		{"zero max packet", func(l *Limits) { l.MaxPacket = 0 }, "MaxPacket is 0"},
		{"byte burst below max packet", func(l *Limits) { l.ByteBurst = 1000 }, "ByteBurst 1000 is below MaxPacket 1500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLimits()
			tt.edit(&l)
			err := l.Validate()
			if !errors.Is(err, ErrInvalidLimits) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() error = %v; want ErrInvalidLimits saying %q", err, tt.want)
			}
		})
	}
}

func TestNewPanics(t *testing.T) {
	bad := testLimits()
	bad.Burst = 0
	for name, f := range map[string]func(){
		"invalid limits": func() { New(bad, 10, nil) },
		"no keys":        func() { New(testLimits(), 0, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%s) did not panic", name)
				}
			}()
			f()
		}()
	}
}

// op is one request in a scripted test.
type op struct {
	after   time.Duration // advance the clock first
	connect bool          // AllowConnect instead of AllowMessage
	key     string        // "" means "k"
	size    int
	n       int // repeat; 0 means 1
	want    Decision
}

func allow() Decision               { return Decision{Allowed: true} }
func refuse(reason string) Decision { return Decision{Reason: reason} }
func retry(r string, d time.Duration) Decision {
	return Decision{Reason: r, RetryAfter: d}
}

func TestLimiter(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		ops  []op
	}{
		{"burst then refused", []op{
			{n: 20, want: allow()},
			{want: retry(ReasonRate, 100*ms)},
		}},
		{"refill one message per 100 ms", []op{
			{n: 20, want: allow()},
			{after: 50 * ms, want: retry(ReasonRate, 50*ms)},
			{after: 50 * ms, want: allow()},
			{want: retry(ReasonRate, 100*ms)},
		}},
		{"sustained rate holds", []op{
			{n: 20, want: allow()},
			// 10 s at exactly the rate: every message passes.
			{after: 100 * ms, n: 1, want: allow()}, {after: 100 * ms, want: allow()}, {after: 100 * ms, want: allow()},
			{after: 100 * ms, want: allow()}, {after: 100 * ms, want: allow()}, {after: 100 * ms, want: allow()},
			// Twice the rate: one in two is refused.
			{after: 100 * ms, want: allow()}, {want: retry(ReasonRate, 100*ms)},
			{after: 100 * ms, want: allow()}, {want: retry(ReasonRate, 100*ms)},
		}},
		{"refill stops at the burst", []op{
			{after: time.Hour, n: 20, want: allow()},
			{want: retry(ReasonRate, 100*ms)},
		}},
		{"bytes", []op{
			{size: 1000, n: 2, want: allow()},
			{size: 1, want: retry(ReasonBytes, ms)},
			{after: 500 * ms, size: 600, want: retry(ReasonBytes, 100*ms)},
			{size: 500, want: allow()}, // the refusal took nothing
			{size: 0, want: allow()},
		}},
		{"rate and bytes both short: rate, with the longer wait", []op{
			{size: 100, n: 20, want: allow()},
			{size: 1500, want: retry(ReasonRate, 1500*ms)},
		}},
		{"max packet", []op{
			{size: 1500, want: allow()},
			{size: 1501, want: refuse(ReasonPacketTooLarge)},
			{size: 1 << 30, want: refuse(ReasonPacketTooLarge)},
		}},
		{"connects", []op{
			{connect: true, n: 3, want: allow()},
			{connect: true, want: retry(ReasonConnectRate, time.Second)},
			{after: 400 * ms, connect: true, want: retry(ReasonConnectRate, 600*ms)},
			{after: 600 * ms, connect: true, want: allow()},
			{n: 20, want: allow()}, // messages have their own bucket
		}},
		{"keys are independent", []op{
			{key: "a", n: 20, want: allow()},
			{key: "a", want: retry(ReasonRate, 100*ms)},
			{key: "b", n: 20, want: allow()},
		}},
		{"invalid", []op{
			{key: "-", want: refuse(ReasonInvalid)},
			{key: strings.Repeat("k", MaxKeyLen+1), want: refuse(ReasonInvalid)},
			{key: strings.Repeat("k", MaxKeyLen), want: allow()},
			{size: -1, want: refuse(ReasonInvalid)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := New(testLimits(), 100, clock)
			for i, o := range tt.ops {
				clock.Advance(o.after)
				key := o.key
				switch key {
				case "":
					key = "k"
				case "-":
					key = ""
				}
				for j := range max(o.n, 1) {
					var got Decision
					if o.connect {
						got = l.AllowConnect(key)
					} else {
						got = l.AllowMessage(key, o.size)
					}
					if got != o.want {
						t.Fatalf("op %d (repeat %d): got %+v; want %+v", i, j, got, o.want)
					}
				}
			}
		})
	}
}

func TestClockGoesBack(t *testing.T) {
	clock := newFakeClock()
	l := New(testLimits(), 10, clock)
	for range 20 {
		l.AllowMessage("k", 0)
	}
	clock.Advance(-time.Hour)
	if d := l.AllowMessage("k", 0); d.Allowed {
		t.Fatal("a clock set back earned tokens")
	}
	// Back to the original time: still nothing earned twice.
	clock.Advance(time.Hour)
	if d := l.AllowMessage("k", 0); d.Allowed {
		t.Fatal("tokens earned twice after the clock came back")
	}
	clock.Advance(100 * time.Millisecond)
	if d := l.AllowMessage("k", 0); !d.Allowed {
		t.Fatalf("no token after 100 ms: %+v", d)
	}
}

func TestEviction(t *testing.T) {
	clock := newFakeClock()
	l := New(testLimits(), 100, clock)
	for i := range 1000 {
		l.AllowMessage(fmt.Sprintf("key-%d", i), 10)
		if n := l.Len(); n > 100 {
			t.Fatalf("Len() = %d after %d keys; want at most 100", n, i+1)
		}
	}
	// The least recently used goes first: a key kept busy stays.
	l = New(testLimits(), 3, clock)
	for range 20 {
		l.AllowMessage("busy", 0)
	}
	for i := range 10 {
		l.AllowMessage("busy", 0) // refused, but touched
		l.AllowMessage(fmt.Sprintf("other-%d", i), 0)
	}
	if d := l.AllowMessage("busy", 0); d.Allowed {
		t.Fatal("the busy key was evicted and came back with a full bucket")
	}
}

// TestConcurrent hammers one limiter from many goroutines (run with
// -race): with the clock stopped, exactly Burst messages pass per key.
func TestConcurrent(t *testing.T) {
	clock := newFakeClock()
	l := New(testLimits(), 1000, clock)
	const workers, tries = 8, 50
	var (
		mu      sync.Mutex
		allowed = map[string]int{}
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range tries {
				key := fmt.Sprintf("k%d", i%4)
				if d := l.AllowMessage(key, 1); d.Allowed {
					mu.Lock()
					allowed[key]++
					mu.Unlock()
				}
				l.AllowConnect(fmt.Sprintf("c%d", w))
				if i%10 == 0 {
					l.Offenders(1, time.Minute)
				}
			}
		})
	}
	wg.Wait()
	for k, n := range allowed {
		if n != testLimits().Burst {
			t.Errorf("key %s: %d messages allowed; want %d", k, n, testLimits().Burst)
		}
	}
}

func TestSystemClock(t *testing.T) {
	l := New(DefaultLimits(), 10, nil)
	if d := l.AllowMessage("k", 100); !d.Allowed {
		t.Fatalf("AllowMessage() = %+v with the system clock", d)
	}
	if l.Limits() != DefaultLimits() {
		t.Errorf("Limits() = %+v", l.Limits())
	}
}
