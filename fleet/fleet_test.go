package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func status(t testing.TB, battery float64, fw string) []byte {
	t.Helper()
	b, err := record.Marshal(&record.StatusReport{Battery: &battery, Firmware: fw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClassify: devices are counted by organisation, class and state as
// client.HealthState says (each with its own wake interval), the latest
// status report is kept, and an earlier reading never moves last seen back.
func TestClassify(t *testing.T) {
	tr := NewTracker(0)
	tr.Observe(client.ReadingItem{Device: "a", Time: t0.Add(-10 * time.Second), ContentType: "temperature"})
	tr.Observe(client.ReadingItem{Device: "a", Time: t0.Add(-5 * time.Second), ContentType: record.ContentStatus, Bytes: status(t, 80, "1.2")})
	tr.Observe(client.ReadingItem{Device: "a", Time: t0.Add(-time.Hour), ContentType: record.ContentStatus, Bytes: status(t, 10, "1.0")}) // late: ignored
	tr.Observe(client.ReadingItem{Device: "b", Time: t0.Add(-time.Minute), ContentType: "temperature"})
	tr.Observe(client.ReadingItem{Device: "c", Time: t0.Add(-time.Minute), ContentType: "temperature"})
	s, ok := tr.Seen("a")
	if !ok || !s.Time.Equal(t0.Add(-5*time.Second)) || s.Status == nil || *s.Status.Battery != 80 || s.Status.Firmware != "1.2" {
		t.Fatalf("Seen(a) = %+v", s)
	}
	devs := []Device{
		{ID: "a", Org: "acme", Class: "sensor", Status: record.StatusActive},                    // ok
		{ID: "b", Org: "acme", Class: "sensor", Status: record.StatusActive},                    // silent (3 × 5 s)
		{ID: "c", Org: "acme", Class: "sensor", Status: record.StatusActive, Wake: time.Minute}, // ok at its own wake
		{ID: "d", Org: "acme", Class: "sensor", Status: record.StatusActive},                    // never
		{ID: "e", Org: "acme", Class: "lock", Status: record.StatusSuspended},                   // suspended
		{ID: "f", Org: "beta", Class: "sensor", Status: record.StatusActive},                    // never
	}
	gs := tr.Classify(devs, 5*time.Second, 3, t0)
	got := fmt.Sprint(gs)
	want := "[{acme lock map[suspended:1] 1 0s} {acme sensor map[never:1 ok:2 silent:1] 4 1m0s} {beta sensor map[never:1] 1 0s}]"
	if got != want {
		t.Fatalf("Classify = %s; want %s", got, want)
	}
	sum := Summary{Groups: gs}
	if n := sum.Count("acme", "sensor", client.HealthSilent); n != 1 {
		t.Fatalf("Count(acme, sensor, silent) = %d; want 1", n)
	}
	if n := sum.Count("acme", "", client.HealthNever); n != 1 {
		t.Fatalf("Count(acme, all, never) = %d; want 1", n)
	}
}

// TestTrackerBound: past Max devices the one seen longest ago is forgotten.
func TestTrackerBound(t *testing.T) {
	tr := NewTracker(2)
	for i, id := range []string{"old", "mid", "new"} {
		tr.Observe(client.ReadingItem{Device: id, Time: t0.Add(time.Duration(i) * time.Second)})
	}
	if _, ok := tr.Seen("old"); ok || tr.Len() != 2 {
		t.Fatalf("the oldest device was kept (len %d)", tr.Len())
	}
}

// TestCensusReuse: a census is computed at most once per MaxAge.
func TestCensusReuse(t *testing.T) {
	now := t0
	calls := 0
	c := NewCensus(CensusConfig{Tracker: NewTracker(0), MaxAge: 10 * time.Second, Now: func() time.Time { return now },
		Devices: func() ([]Device, error) {
			calls++
			return []Device{{ID: "a", Org: "o", Class: "c", Status: record.StatusActive}}, nil
		}})
	for range 3 {
		if _, err := c.Summary(); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(10 * time.Second)
	s, _ := c.Summary()
	if calls != 2 || s.Count("o", "c", client.HealthNever) != 1 {
		t.Fatalf("%d censuses for 4 summaries over 10 s; want 2", calls)
	}
}

// BenchmarkClassify1000: the tracker's part of a census of 1,000 devices
// (the ledger's part, listing the devices and their wake intervals, is
// measured by node.BenchmarkFleetCensus).
func BenchmarkClassify1000(b *testing.B) {
	tr := NewTracker(0)
	devs := make([]Device, 1000)
	for i := range devs {
		id := fmt.Sprintf("did:key:z%04d", i)
		devs[i] = Device{ID: id, Org: fmt.Sprintf("org%d", i%10), Class: fmt.Sprintf("class%d", i%5), Status: record.StatusActive}
		tr.Observe(client.ReadingItem{Device: id, Time: t0.Add(-time.Duration(i) * time.Second)})
	}
	b.ReportAllocs()
	for b.Loop() {
		tr.Classify(devs, 5*time.Second, 3, t0)
	}
}

// TestSince: the hint is the earlier of the latest reading and the latest
// status report, so that reading from it finds both.
func TestSince(t *testing.T) {
	tr := NewTracker(0)
	if !tr.Since("a").IsZero() {
		t.Fatal("an unknown device has a hint")
	}
	tr.Observe(client.ReadingItem{Device: "a", Time: t0.Add(-time.Minute), ContentType: record.ContentStatus, Bytes: status(t, 50, "1")})
	tr.Observe(client.ReadingItem{Device: "a", Time: t0, ContentType: "temperature"})
	if got := tr.Since("a"); !got.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("Since = %v; want the status report's time", got)
	}
	tr.Observe(client.ReadingItem{Device: "b", Time: t0, ContentType: "temperature"})
	if got := tr.Since("b"); !got.Equal(t0) {
		t.Fatalf("Since = %v; want the latest reading's time", got)
	}
}
