package rules

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/thingnet/thingnet/export/webhook"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// handlerTransport hands requests to an http.Handler in memory, so that
// the dispatcher's timeouts and back-off run on synctest's clock.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { t.h.ServeHTTP(rec, r); close(done) }()
	select {
	case <-done:
		return rec.Result(), nil
	case <-r.Context().Done():
		<-done
		return nil, r.Context().Err()
	}
}

// TestWebhookRetriesThenDelivers: an endpoint that answers 500 twice and
// then hangs past the timeout gets the delivery on the fourth attempt,
// after 0.5 + 1 + 2 s of back-off (each jittered down to half) and one 2 s
// timeout; the signature verifies with the node's public key; a 400 is not
// retried, and the delivery is kept as a dead letter.
func TestWebhookRetriesThenDelivers(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var attempts []time.Time
		var body []byte
		var hdr http.Header
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			attempts = append(attempts, time.Now())
			n := len(attempts)
			mu.Unlock()
			switch n {
			case 1, 2:
				w.WriteHeader(http.StatusInternalServerError)
			case 3:
				<-r.Context().Done()
			default:
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				body, hdr = b, r.Header.Clone()
				mu.Unlock()
			}
		})
		rule := Rule{Name: "hot", Org: "acme", When: "true", Action: Action{Webhook: "http://example.test/hook", Timeout: Duration{Duration: 2 * time.Second}}}
		d := NewDispatcher(DispatcherConfig{Rules: []Rule{rule}, Key: key, Client: &http.Client{Transport: handlerTransport{h}}, StateDir: t.TempDir()})
		defer d.Close()
		start := time.Now()
		d.Fire(Firing{Rule: "hot", Org: "acme", Device: "d1", Seq: 7, Value: 31})
		for d.delivered.Load()+d.failed.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if d.delivered.Load() != 1 || d.retried.Load() != 3 {
			t.Fatalf("delivered %d, retried %d; want 1, 3", d.delivered.Load(), d.retried.Load())
		}
		if took := attempts[3].Sub(start); took < 3750*time.Millisecond || took > 5500*time.Millisecond {
			t.Fatalf("the fourth attempt came after %v; want 3.75 to 5.5 s (0.5+1+2 s back-off less jitter, one 2 s timeout)", took)
		}
		pub := func(id string) (identity.PublicKey, error) {
			if id != key.ID() {
				return identity.PublicKey{}, fmt.Errorf("unknown key %s", id)
			}
			return key.Public(), nil
		}
		if id, err := webhook.Verify(hdr, body, pub, time.Now(), time.Minute); err != nil || id != key.ID() {
			t.Fatalf("the delivery's signature: %s %v", id, err)
		}
		if hdr.Get(webhook.HeaderDelivery) != "rule/hot/d1/7" {
			t.Errorf("delivery id %q; want rule/hot/d1/7", hdr.Get(webhook.HeaderDelivery))
		}
		if _, err := webhook.Verify(hdr, append(body, ' '), pub, time.Now(), time.Minute); err == nil {
			t.Fatal("a changed body verified")
		}
	})
	synctest.Test(t, func(t *testing.T) {
		n := 0
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n++; w.WriteHeader(http.StatusBadRequest) })
		rule := Rule{Name: "r", Org: "acme", When: "true", Action: Action{Webhook: "http://example.test/hook"}}
		d := NewDispatcher(DispatcherConfig{Rules: []Rule{rule}, Key: key, Client: &http.Client{Transport: handlerTransport{h}}, StateDir: t.TempDir()})
		defer d.Close()
		d.Fire(Firing{Rule: "r", Device: "d1", Seq: 9})
		for d.failed.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if n != 1 || d.retried.Load() != 0 {
			t.Fatalf("a 400 was tried %d times", n)
		}
		letters, err := d.DeadLetters("r").List()
		if err != nil || len(letters) != 1 || letters[0].ID != "rule/r/d1/9" || letters[0].Attempts != 1 {
			t.Fatalf("dead letters %+v, %v; want the one delivery", letters, err)
		}
	})
}

func TestHistoryKeepsTheLatest(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(DispatcherConfig{Rules: []Rule{{Name: "r", Org: "acme", When: "true"}}, Key: key, HistoryLen: 3})
	defer d.Close()
	for i := range 5 {
		d.Fire(Firing{Rule: "r", Device: []string{"a", "b"}[i%2], Seq: uint64(i)})
	}
	// Kept: seqs 2 (a), 3 (b), 4 (a).
	if h := d.History("a"); len(h) != 2 || h[0].Seq != 2 || h[1].Seq != 4 {
		t.Fatalf("history of a: %+v; want seqs 2, 4", h)
	}
	if h := d.History("c"); len(h) != 0 {
		t.Fatalf("history of c: %+v", h)
	}
}

// TestAlertAction: a rule with alert = true gives its firings to the
// node's alert store, once each; without one they are counted as failed.
func TestAlertAction(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		var got []Firing
		var mu sync.Mutex
		rs := []Rule{{Name: "a", Org: "acme", When: "true", Action: Action{Alert: true}}, {Name: "quiet", Org: "acme", When: "true"}}
		d := NewDispatcher(DispatcherConfig{Rules: rs, Key: key, Alert: func(_ context.Context, f Firing) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, f)
			return nil
		}})
		d.Fire(Firing{Rule: "a", Seq: 1})
		d.Fire(Firing{Rule: "quiet", Seq: 2})
		synctest.Wait()
		d.Close()
		if len(got) != 1 || got[0].Seq != 1 || d.alerts.Load() != 1 {
			t.Fatalf("alerts %+v; want the firing of rule a only", got)
		}
		d = NewDispatcher(DispatcherConfig{Rules: rs, Key: key})
		d.Fire(Firing{Rule: "a"})
		synctest.Wait()
		d.Close()
		if d.alertsFailed.Load() != 1 {
			t.Fatal("an alert with no store was not counted as failed")
		}
	})
}

// TestWebhookRateAndIsolation: a rule's webhook gets at most its rate (2
// a second, a burst of 2: six firings take 2 s), and a rule whose endpoint
// hangs holds back only itself: another rule's deliveries go on.
func TestWebhookRateAndIsolation(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		fast := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hang" {
				<-r.Context().Done()
				return
			}
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
		})
		rs := []Rule{
			{Name: "limited", Org: "acme", When: "true", Action: Action{Webhook: "http://example.test/ok", Rate: 2}},
			{Name: "stuck", Org: "acme", When: "true", Action: Action{Webhook: "http://example.test/hang", Timeout: Duration{Duration: time.Hour}}},
		}
		d := NewDispatcher(DispatcherConfig{Rules: rs, Key: key, Client: &http.Client{Transport: handlerTransport{fast}}, StateDir: t.TempDir()})
		defer d.Close()
		start := time.Now()
		d.Fire(Firing{Rule: "stuck", Device: "d", Seq: 1})
		for i := range 6 {
			d.Fire(Firing{Rule: "limited", Device: "d", Seq: uint64(i + 1)})
		}
		for d.delivered.Load() < 6 {
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if took := at[5].Sub(start); took != 2*time.Second {
			t.Fatalf("the sixth delivery at rate 2/s (burst 2) came after %v; want 2s", took)
		}
	})
}

// TestCallAction: a rule's agreement call is made once per firing with
// its arguments (whole numbers from JSON as ints); arguments that are not
// ints, strings or bools are refused when the rule is checked.
func TestCallAction(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	var rs File
	if err := json.Unmarshal([]byte(`{"rules":[{"name":"r","org":"acme","when":"true","action":{"call":{"agreement":7,"transition":"alarm","args":{"level":2,"zone":"n"}}}}]}`), &rs); err != nil {
		t.Fatal(err)
	}
	if err := CheckAll(rs.Rules, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	got := make(chan Call, 2)
	d := NewDispatcher(DispatcherConfig{Rules: rs.Rules, Key: key, Call: func(_ context.Context, _ Firing, c Call) error { got <- c; return nil }})
	defer d.Close()
	d.Fire(Firing{Rule: "r", Device: "d"})
	c := <-got
	if c.Agreement != 7 || c.Transition != "alarm" || c.Args["level"] != int64(2) || c.Args["zone"] != "n" {
		t.Fatalf("call %+v; want agreement 7, alarm, level int64 2", c)
	}
	bad := Rule{Name: "b", Org: "acme", When: "true", Action: Action{Call: &Call{Agreement: 1, Transition: "t", Args: map[string]any{"x": 1.5}}}}
	if _, err := bad.Check(DefaultLimits()); err == nil {
		t.Fatal("a fractional argument was accepted")
	}
}

// TestCommandAction: a rule's command goes to the firing's device as a
// one-device job (whole numbers from JSON as ints); a command the ledger
// would refuse, or one on a fleet rule (its firing is about a class), is
// refused when the rule is checked.
func TestCommandAction(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	var rs File
	if err := json.Unmarshal([]byte(`{"rules":[{"name":"r","org":"acme","when":"true","action":{"command":{"name":"reboot","args":{"delay":5}}}}]}`), &rs); err != nil {
		t.Fatal(err)
	}
	if err := CheckAll(rs.Rules, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	got := make(chan *record.JobCreate, 2)
	d := NewDispatcher(DispatcherConfig{Rules: rs.Rules, Key: key, Command: func(_ context.Context, f Firing, c Command) error { got <- c.Job(f.Org, f.Device); return nil }})
	defer d.Close()
	dev := key.ID()
	d.Fire(Firing{Rule: "r", Org: "acme", Device: dev})
	j := <-got
	if err := j.ValidateBasic(); err != nil {
		t.Fatalf("the job %+v: %v", j, err)
	}
	if j.Org != "acme" || j.Command != "reboot" || j.Args["delay"] != int64(5) || len(j.Target.Devices) != 1 || j.Target.Devices[0] != dev || j.TimeoutBlocks != DefaultCommandTimeout {
		t.Fatalf("job %+v; want reboot(delay int64 5) to %s alone", j, dev)
	}
	for _, bad := range []Rule{
		{Name: "b", Org: "acme", When: "true", Action: Action{Command: &Command{Name: ""}}},
		{Name: "b", Org: "acme", When: "true", Action: Action{Command: &Command{Name: "reboot", Args: map[string]any{"x": 1.5}}}},
		{Name: "b", Org: "acme", Fleet: &Fleet{Class: "sensor"}, Action: Action{Command: &Command{Name: "reboot"}}},
	} {
		if _, err := bad.Check(DefaultLimits()); err == nil {
			t.Errorf("rule %+v accepted", bad.Action.Command)
		}
	}
}

// TestPendingActionsSurviveAStop: the firings a dispatcher had queued, and
// the one whose webhook delivery a stop cut short, stay in the rule's
// outbox at Close and are delivered, in order, by the next dispatcher with
// the same state directory; the outbox is empty after.
func TestPendingActionsSurviveAStop(t *testing.T) {
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	hook := newHeldHook(t)
	dir := t.TempDir()
	rule := Rule{Name: "hot", Org: "acme", When: "true", Action: Action{Webhook: hook.srv.URL, Timeout: Duration{Duration: time.Minute}}}
	cfg := DispatcherConfig{Rules: []Rule{rule}, Key: key, StateDir: dir}
	d := NewDispatcher(cfg)
	for seq := uint64(1); seq <= 3; seq++ {
		d.Fire(Firing{Rule: "hot", Org: "acme", Device: "dev", Seq: seq})
	}
	<-hook.started // the first delivery is in flight, two are queued
	d.Close()
	outbox := filepath.Join(WebhookDir(dir, "hot"), OutboxFile)
	b, err := os.ReadFile(outbox)
	saved, _, perr := parseOutbox(b)
	if err != nil || perr != nil || len(saved) != 3 || saved[0].Seq != 1 || saved[2].Seq != 3 {
		t.Fatalf("pending at stop: %s, %v, %v; want firings 1, 2, 3", b, err, perr)
	}

	<-hook.cut // the first delivery, cut short, is not delivered
	close(hook.release)
	d = NewDispatcher(cfg)
	defer d.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := len(hook.delivered())
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a restart, %d of the 3 saved firings delivered", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := hook.delivered(); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("delivered %v; want [1 2 3], in order, once each", got)
	}
	testutil.WaitFor(t, testutil.Context(t, 30*time.Second), "nothing pending in the outbox once every firing's actions were carried out",
		func() bool {
			b, err := os.ReadFile(outbox)
			p, _, perr := parseOutbox(b)
			return err == nil && perr == nil && len(p) == 0
		})
	m := d.Mark()
	if err := d.StateSaved(m); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(outbox); err != nil || fi.Size() != 0 {
		t.Fatalf("the outbox after the engine's state was saved: %v, %v; want it empty", fi.Size(), err)
	}
}

// TestPendingActionsSurviveACrash: a node process fires three firings of
// a rule whose webhook is slow and is killed (SIGKILL) with the first
// delivery in flight; a dispatcher started on the same state directory
// delivers all three, in order, once each.
func TestPendingActionsSurviveACrash(t *testing.T) {
	if env := os.Getenv("THINGNET_RULES_CRASH_CHILD"); env != "" {
		dir, url, _ := strings.Cut(env, " ")
		key, err := identity.GenerateKey(identity.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		d := NewDispatcher(DispatcherConfig{Key: key, StateDir: dir, Rules: []Rule{{Name: "hot", Org: "acme", When: "true",
			Action: Action{Webhook: url, Timeout: Duration{Duration: time.Minute}}}}})
		for seq := uint64(1); seq <= 3; seq++ {
			d.Fire(Firing{Rule: "hot", Org: "acme", Device: "dev", Seq: seq})
		}
		fmt.Println("fired") // Fire returned: each firing is on disk
		select {}            // until killed
	}
	hook := newHeldHook(t)
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestPendingActionsSurviveACrash$")
	child.Env = append(os.Environ(), "THINGNET_RULES_CRASH_CHILD="+dir+" "+hook.srv.URL)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	fired := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "fired" {
				close(fired)
			}
		}
	}()
	for _, ch := range []chan struct{}{hook.started, fired} { // the first delivery in flight, all three fired
		select {
		case <-ch:
		case <-time.After(time.Minute):
			child.Process.Kill()
			t.Fatal("the child did not fire its three firings and start delivering the first")
		}
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	<-hook.cut // the first delivery, cut short, is not delivered
	close(hook.release)
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(DispatcherConfig{Key: key, StateDir: dir, Rules: []Rule{{Name: "hot", Org: "acme", When: "true",
		Action: Action{Webhook: hook.srv.URL, Timeout: Duration{Duration: time.Minute}}}}})
	defer d.Close()
	testutil.WaitFor(t, testutil.Context(t, 30*time.Second), "the three firings delivered after the crash", func() bool {
		return len(hook.delivered()) >= 3
	})
	if got := hook.delivered(); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("delivered %v; want [1 2 3], in order, once each", got)
	}
}

// heldHook is a webhook endpoint that holds each delivery until release
// is closed, and records the delivered firings' sequence numbers; a
// delivery whose sender goes away first is not delivered.
type heldHook struct {
	srv     *httptest.Server
	release chan struct{}
	started chan struct{} // one per delivery received
	cut     chan struct{} // one per delivery whose sender went away
	mu      sync.Mutex
	got     []uint64
}

func newHeldHook(t *testing.T) *heldHook {
	h := &heldHook{release: make(chan struct{}), started: make(chan struct{}, 16), cut: make(chan struct{}, 16)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var dl Delivery
		if err := json.NewDecoder(r.Body).Decode(&dl); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.started <- struct{}{}
		select {
		case <-h.release:
		case <-r.Context().Done():
			h.cut <- struct{}{}
			return // cut short: not delivered
		}
		h.mu.Lock()
		h.got = append(h.got, dl.Seq)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *heldHook) delivered() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// TestOutbox: the outbox file's lines (firings, "done"), a last line cut
// short by a crash, and more pending than the queue holds.
func TestOutbox(t *testing.T) {
	dir := t.TempDir()
	line := func(seq uint64) string { b, _ := json.Marshal(Firing{Rule: "r", Seq: seq}); return string(b) + "\n" }
	content := line(1) + line(2) + "done\n" + line(3) + line(4) + line(5) + `{"rule":"r","se`
	if err := os.WriteFile(filepath.Join(dir, OutboxFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	o, pending, err := openOutbox(dir, 3)
	var dropped errDroppedAtStart
	if !errors.As(err, &dropped) || dropped.n != 1 {
		t.Fatalf("opening an outbox of 4 pending with room for 3: %v", err)
	}
	seqs := func(fs []Firing) (out []uint64) {
		for _, f := range fs {
			out = append(out, f.Seq)
		}
		return out
	}
	if fmt.Sprint(seqs(pending)) != "[2 3 4]" {
		t.Fatalf("pending %v; want [2 3 4]: 1 done, 5 past the queue, the cut line never queued", seqs(pending))
	}
	if q, err := o.add(Firing{Rule: "r", Seq: 6}, func() bool { return true }); !q || err != nil {
		t.Fatal(q, err)
	}
	if q, err := o.add(Firing{Rule: "r", Seq: 7}, func() bool { return false }); q || err != nil { // the queue is full: dropped, not written
		t.Fatal(q, err)
	}
	for range 2 { // 2 and 3 carried out
		if err := o.done(); err != nil {
			t.Fatal(err)
		}
	}
	o.close()
	b, _ := os.ReadFile(filepath.Join(dir, OutboxFile))
	left, _, err := parseOutbox(b)
	if err != nil || fmt.Sprint(seqs(left)) != "[4 6]" {
		t.Fatalf("left %v (%v); want [4 6]:\n%s", seqs(left), err, b)
	}
	o, pending, err = openOutbox(dir, 3)
	if err != nil || fmt.Sprint(seqs(pending)) != "[4 6]" {
		t.Fatalf("reopened: %v, %v; want [4 6]", seqs(pending), err)
	}
	for range 2 {
		if err := o.done(); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.compact(o.mark()); err != nil {
		t.Fatal(err)
	}
	o.close()
	if fi, err := os.Stat(filepath.Join(dir, OutboxFile)); err != nil || fi.Size() != 0 {
		t.Fatalf("an outbox with nothing pending, compacted, is not empty: %v, %v", fi.Size(), err)
	}
	if _, _, err := parseOutbox([]byte("done\n")); err == nil {
		t.Fatal("an outbox that marks done with nothing pending parsed")
	}
}
