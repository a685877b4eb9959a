package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/internal/exporttest"
	"github.com/thingnet/thingnet/export/webhook"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
)

// endpoint is a webhook receiver that checks each delivery's signature
// and records the deliveries it answered 200.
type endpoint struct {
	t         *testing.T
	mu        sync.Mutex
	requests  int
	delivered map[string]int
	// answer decides the n-th request's fate: 0 answers 200, a status
	// answers it, -1 hangs until the client gives up.
	answer func(n int) int
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if _, err := webhook.Verify(r.Header, body, identity.ParseDID, time.Now(), time.Minute); err != nil {
		e.t.Errorf("delivery %s: %v", r.Header.Get(webhook.HeaderDelivery), err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var m export.Message
	if err := json.Unmarshal(body, &m); err != nil || r.Header.Get(webhook.HeaderDelivery) != fmt.Sprintf("%s/%d/%d", m.Gateway, m.Index, m.Seq) {
		e.t.Errorf("delivery %s: body %s (%v)", r.Header.Get(webhook.HeaderDelivery), body, err)
	}
	e.mu.Lock()
	e.requests++
	a := e.answer(e.requests)
	e.mu.Unlock()
	switch {
	case a < 0:
		<-r.Context().Done()
	case a > 0:
		http.Error(w, "down for maintenance", a)
	default:
		e.mu.Lock()
		e.delivered[r.Header.Get(webhook.HeaderDelivery)]++
		e.mu.Unlock()
	}
}

func (e *endpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.delivered)
}

func newEndpoint(t *testing.T, answer func(n int) int) (*endpoint, string) {
	e := &endpoint{t: t, delivered: map[string]int{}, answer: answer}
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return e, s.URL
}

// TestDeliveries runs three webhook exports at once while readings are
// stored: one endpoint answers 500s, then times out, then recovers (every
// delivery is made or dead-lettered, and the dead letters are delivered
// on retry: none lost); one is healthy and gets everything while the
// third never answers, and ingest goes on regardless.
func TestDeliveries(t *testing.T) {
	tn := exporttest.Start(t, 2)
	ctx := testutil.Context(t, 3*time.Minute)
	flaky, flakyURL := newEndpoint(t, func(n int) int {
		switch {
		case n <= 40:
			return http.StatusInternalServerError
		case n <= 55:
			return -1
		}
		return 0
	})
	healthy, healthyURL := newEndpoint(t, func(int) int { return 0 })
	_, deadURL := newEndpoint(t, func(int) int { return -1 })

	type run struct {
		e    *export.Exporter
		sink *webhook.Sink
	}
	start := func(name, url string) run {
		sink, err := webhook.Open(webhook.Config{URL: url, StateDir: t.TempDir(), Key: tn.Admin, Timeout: 200 * time.Millisecond,
			MaxAttempts: 3, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Rate: 500, Burst: 50})
		if err != nil {
			t.Fatal(err)
		}
		e, err := export.New(export.Options{Name: name, Kind: "webhook", Source: tn.Client(tn.Admin), Batch: 20}, sink)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(exporttest.Run(ctx, e))
		return run{e, sink}
	}
	f, h, d := start("flaky", flakyURL), start("healthy", healthyURL), start("dead", deadURL)

	const perSensor = 60
	want := map[string]bool{}
	for i := range perSensor {
		for _, k := range tn.Sensors {
			idx, err := tn.Post(ctx, k, float64(i))
			if err != nil {
				t.Fatalf("ingest while endpoints fail: %v", err)
			}
			want[fmt.Sprintf("%s/%d/%d", tn.Gateway.ID(), idx, i+1)] = true
		}
		if _, err := tn.Post(ctx, tn.Stranger, 1); err != nil {
			t.Fatal(err)
		}
	}
	size := tn.Node.Gateway().Log().Size()
	testutil.WaitFor(t, ctx, "the healthy endpoint to get every reading", func() bool { return h.e.Status().Checkpoint == size })
	if st := d.e.Status(); st.Checkpoint >= size/2 {
		t.Errorf("the dead endpoint's export is at %d of %d: it should crawl", st.Checkpoint, size)
	}
	if st := h.e.Status(); st.Delivered != uint64(len(want)) || st.Failed != 0 || st.Skipped != perSensor {
		t.Errorf("healthy status = %+v; want %d delivered, %d skipped (beta's), none failed", st, len(want), perSensor)
	}
	for id := range want {
		if healthy.delivered[id] != 1 {
			t.Errorf("healthy endpoint got %s %d times", id, healthy.delivered[id])
		}
	}

	testutil.WaitFor(t, ctx, "the flaky export to reach the log's end", func() bool { return f.e.Status().Checkpoint == size })
	letters, err := f.sink.DeadLetters().List()
	if err != nil {
		t.Fatal(err)
	}
	st := f.e.Status()
	if len(letters) == 0 || st.Failed != uint64(len(letters)) || st.Retried == 0 {
		t.Fatalf("flaky: %d dead letters, status %+v; want some dead-lettered and retried", len(letters), st)
	}
	flaky.mu.Lock()
	for id := range want {
		dead := false
		for _, l := range letters {
			dead = dead || l.ID == id
		}
		if flaky.delivered[id] == 0 && !dead {
			t.Errorf("%s neither delivered nor dead-lettered", id)
		}
	}
	flaky.mu.Unlock()
	for _, l := range letters {
		if l.Attempts != 3 || l.LastError == "" {
			t.Errorf("dead letter %+v; want 3 attempts and the last error", l)
		}
		if err := f.sink.Redeliver(ctx, l.ID); err != nil {
			t.Errorf("redelivering %s: %v", l.ID, err)
		}
	}
	if left, _ := f.sink.DeadLetters().List(); len(left) != 0 {
		t.Errorf("%d dead letters left after retrying them", len(left))
	}
	if flaky.count() != len(want) {
		t.Errorf("flaky endpoint has %d of %d deliveries after the retries", flaky.count(), len(want))
	}
}

// TestVerifyRefuses: a delivery whose body, timestamp or key differ does
// not verify.
func TestVerifyRefuses(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	var got http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r.Header.Clone(), must(io.ReadAll(r.Body))
	}))
	defer srv.Close()
	sink, err := webhook.Open(webhook.Config{URL: srv.URL, StateDir: t.TempDir(), Key: k})
	if err != nil {
		t.Fatal(err)
	}
	v := 21.5
	b := &export.Batch{Gateway: "gw", From: 0, Next: 1, Rows: []export.Row{{Gateway: "gw", Index: 0, Org: "acme", Proof: "p"}}}
	b.Rows[0].Reading.Value = &v
	b.Rows[0].Reading.Seq = 1
	if err := sink.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if id, err := webhook.Verify(got, body, identity.ParseDID, now, time.Minute); err != nil || id != k.ID() {
		t.Fatalf("Verify = %q, %v", id, err)
	}
	other := testutil.Key(t, identity.Ed25519)
	for name, c := range map[string]func() (http.Header, []byte, time.Time){
		"body":  func() (http.Header, []byte, time.Time) { return got, append([]byte(nil), append(body, ' ')...), now },
		"stale": func() (http.Header, []byte, time.Time) { return got, body, now.Add(2 * time.Minute) },
		"delivery": func() (http.Header, []byte, time.Time) {
			h := got.Clone()
			h.Set(webhook.HeaderDelivery, "gw/0/2")
			return h, body, now
		},
		"other key": func() (http.Header, []byte, time.Time) {
			h := got.Clone()
			h.Set(webhook.HeaderSignature, fmt.Sprintf("keyid=%q, sig=\"AAAA\"", other.ID()))
			return h, body, now
		},
	} {
		h, bd, at := c()
		if _, err := webhook.Verify(h, bd, identity.ParseDID, at, time.Minute); err == nil {
			t.Errorf("%s changed: Verify passes", name)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRateLimit: at most Rate deliveries a second reach the endpoint
// (after the burst), so 11 deliveries at 20/s with a burst of 1 take at
// least half a second (a lower bound: a slow machine only adds to it).
func TestRateLimit(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { n.Add(1) }))
	defer srv.Close()
	sink, err := webhook.Open(webhook.Config{URL: srv.URL, StateDir: t.TempDir(), Key: testutil.Key(t, identity.Ed25519), Rate: 20, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := &export.Batch{Gateway: "gw", Next: 11}
	for i := range 11 {
		r := export.Row{Gateway: "gw", Index: uint64(i), Org: "acme", Proof: "p"}
		r.Reading.Seq, r.Reading.Bytes = 1, []byte("x")
		b.Rows = append(b.Rows, r)
	}
	start := time.Now()
	if err := sink.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 450*time.Millisecond || n.Load() != 11 {
		t.Errorf("11 deliveries at 20/s took %v (%d made); want at least 500ms less the limiter's slack", d, n.Load())
	}
}
