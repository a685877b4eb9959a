package rules

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// TestNoRepeatFiringAfterACrash: the engine's state is saved every so
// often, so a node that crashes after a rule fired restores a state from
// before the firing. With the outbox's firings given back to it
// (Dispatcher.FiredAtStart, Engine.Fired), the condition still true after
// the restart does not fire again; once it has been false for clear_after
// and is true again, it fires.
func TestNoRepeatFiringAfterACrash(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	rule := Rule{Name: "hot", Org: "acme", When: "last(temperature) > 30", ClearAfter: Duration{Duration: time.Minute}, Action: Action{Alert: true}}
	var mu sync.Mutex
	var alerts []uint64
	start := func(t *testing.T, fired bool) (*Dispatcher, *Engine) {
		t.Helper()
		d := NewDispatcher(DispatcherConfig{Rules: []Rule{rule}, Key: key, StateDir: filepath.Join(dir, "out"), Alert: func(_ context.Context, f Firing) error {
			mu.Lock()
			defer mu.Unlock()
			alerts = append(alerts, f.Seq)
			return nil
		}})
		t.Cleanup(d.Close)
		e, err := NewEngine(Config{Rules: []Rule{rule}, Fire: d.Fire})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.LoadState(statePath); err != nil {
			t.Fatal(err)
		}
		if fired {
			e.Fired(d.FiredAtStart())
		}
		return d, e
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	d, e := start(t, true)
	e.Observe(dev, "temperature", 1, at(0), 20)
	if err := e.SaveState(statePath); err != nil { // the last save before the crash
		t.Fatal(err)
	}
	if got := e.Observe(dev, "temperature", 2, at(10), 35); len(got) != 1 {
		t.Fatalf("35 °C fired %d times; want once", len(got))
	}
	d.Close() // the crash: the state is not saved again; the outbox has the firing

	// Without the outbox's firings, the restored state fires again.
	_, e = start(t, false)
	if got := e.Observe(dev, "temperature", 3, at(20), 36); len(got) != 1 {
		t.Fatalf("without FiredAtStart: %d firings; want the repeat this test is about", len(got))
	}

	d, e = start(t, true)
	if got := e.Observe(dev, "temperature", 3, at(20), 36); len(got) != 0 {
		t.Fatalf("after the crash, still 36 °C: fired %+v; want no repeat", got)
	}
	e.Observe(dev, "temperature", 4, at(30), 20)
	if got := e.Observe(dev, "temperature", 5, at(100), 20); len(got) != 0 { // false for 70 s: cleared
		t.Fatal(got)
	}
	if got := e.Observe(dev, "temperature", 6, at(110), 40); len(got) != 1 {
		t.Fatalf("true again after clearing: %d firings; want 1", len(got))
	}

	// A save drops the firings carried out from the outbox: the state has
	// them. Wait for the alert's "done", so that there is one to drop.
	outbox := filepath.Join(WebhookDir(filepath.Join(dir, "out"), "hot"), OutboxFile)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile(outbox); bytes.HasSuffix(b, doneLine) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the alert was not carried out in 10 s")
		}
	}
	m := d.Mark()
	if err := e.SaveState(statePath); err != nil {
		t.Fatal(err)
	}
	if err := d.StateSaved(m); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(outbox); err != nil || len(b) != 0 {
		t.Fatalf("outbox after the save: %q, %v; want it empty", b, err)
	}
	d.Close()
	_, e = start(t, true)
	if got := e.Observe(dev, "temperature", 7, at(120), 41); len(got) != 0 {
		t.Fatalf("after a save and a restart, still hot: fired %+v; want no repeat", got)
	}
}

// TestOutboxCompact: a compaction keeps the firings pending at the mark
// and every line after it, so that the FIFO of "done" lines still pairs
// each with its firing; the firings before the mark carried out go.
func TestOutboxCompact(t *testing.T) {
	dir := t.TempDir()
	o, _, err := openOutbox(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	add := func(seq uint64, device string) {
		t.Helper()
		if q, err := o.add(Firing{Rule: "r", Device: device, Seq: seq}, func() bool { return true }); !q || err != nil {
			t.Fatal(q, err)
		}
	}
	add(1, "a")
	add(2, "b")
	before, _ := os.Stat(filepath.Join(dir, OutboxFile))
	if err := o.compact(o.mark()); err != nil { // nothing carried out yet
		t.Fatal(err)
	}
	if after, _ := os.Stat(filepath.Join(dir, OutboxFile)); !os.SameFile(before, after) {
		t.Fatal("an outbox with nothing carried out was rewritten")
	}
	if err := o.done(); err != nil { // 1
		t.Fatal(err)
	}
	m := o.mark()
	add(3, "a")
	if err := o.done(); err != nil { // 2, before the mark
		t.Fatal(err)
	}
	if err := o.compact(m); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, OutboxFile))
	if err != nil {
		t.Fatal(err)
	}
	pending, last, err := parseOutbox(b)
	if err != nil || len(pending) != 1 || pending[0].Seq != 3 {
		t.Fatalf("pending after the compaction %+v, %v; want 3:\n%s", pending, err, b)
	}
	if len(last) != 2 || last[0].Seq != 2 || last[1].Seq != 3 {
		t.Fatalf("last firings %+v; want b's 2 (after the mark's pending) and a's 3:\n%s", last, b)
	}
	add(4, "b")                      // appends after the rewrite
	if err := o.done(); err != nil { // 3
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, OutboxFile))
	if p, _, err := parseOutbox(b); err != nil || len(p) != 1 || p[0].Seq != 4 {
		t.Fatalf("pending %+v, %v; want 4:\n%s", p, err, b)
	}
}
