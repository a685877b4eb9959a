package events

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBusFilterAndReplay(t *testing.T) {
	b := NewBus(4)
	all, _ := b.Subscribe(0)
	dev, _ := b.Subscribe(0, "device")
	b.Publish(TypeBlock, BlockData{Height: 1})
	b.Publish(TypeDeviceStatus, DeviceData{Device: "d", Status: "suspended"})
	b.Publish("devices.other", nil) // not in the device family
	if got := len(all.C); got != 3 {
		t.Fatalf("all got %d events; want 3", got)
	}
	if got := len(dev.C); got != 1 {
		t.Fatalf("device filter got %d events; want 1", got)
	}
	ev := <-dev.C
	var d DeviceData
	if err := json.Unmarshal(ev.Data, &d); err != nil || ev.Type != TypeDeviceStatus || d.Status != "suspended" || ev.ID != 2 {
		t.Fatalf("event = %+v (%v)", ev, err)
	}
	// Replay after id 1: ids 2 and 3 are kept.
	r, gap := b.Subscribe(1)
	if gap || len(r.C) != 2 {
		t.Fatalf("replay after 1: %d events, gap %v; want 2, false", len(r.C), gap)
	}
	for range 5 {
		b.Publish("x", 1)
	}
	// History holds 4: ids 5..8; after 2, ids 3 and 4 are gone.
	r2, gap := b.Subscribe(2)
	if !gap || len(r2.C) != 4 {
		t.Fatalf("replay after 2: %d events, gap %v; want 4, true", len(r2.C), gap)
	}
	if rec := b.Recent(10, "x"); len(rec) != 4 || rec[0].ID != 5 || rec[3].ID != 8 {
		t.Fatalf("recent = %+v", rec)
	}
	all.Close()
	dev.Close()
	r.Close()
	r2.Close()
	if s := b.Stats(); s.Subscribers != 0 || s.Published != 8 {
		t.Fatalf("stats = %+v", s)
	}
	var nilBus *Bus
	nilBus.Publish("x", 1) // a nil bus drops events
}

func TestSlowSubscriberLoses(t *testing.T) {
	b := NewBus(0)
	s, _ := b.Subscribe(0)
	for range subBuffer + 10 {
		b.Publish("x", 1)
	}
	if s.Lost() != 10 || b.Stats().Dropped != 10 {
		t.Fatalf("lost %d, dropped %d; want 10", s.Lost(), b.Stats().Dropped)
	}
	b.Publish("bad", func() {}) // does not encode: published as an error
	if ev := b.Recent(1)[0]; !strings.Contains(string(ev.Data), "does not encode") {
		t.Fatalf("bad data published as %s", ev.Data)
	}
}

type sseEvent struct {
	id   uint64
	typ  string
	data string
}

// readSSE parses an event stream until n events arrived.
func readSSE(t *testing.T, sc *bufio.Scanner, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.ParseUint(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	if len(out) < n {
		t.Fatalf("stream ended after %d events: %v", len(out), sc.Err())
	}
	return out
}

func TestStream(t *testing.T) {
	b := NewBus(0)
	st := NewStream(b, StreamConfig{MaxClients: 1, Heartbeat: 50 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("GET /v1/events", st)
	mux.HandleFunc("GET /v1/events/recent", st.ServeRecent)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b.Publish(TypeBlock, BlockData{Height: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events?types=block,anchor", nil)
	req.Header.Set("Last-Event-ID", "0")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// A second client is over MaxClients.
	for st.Clients() != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	res2, err := http.Get(srv.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second stream: %d; want 503", res2.StatusCode)
	}

	b.Publish(TypeTx, TxData{Hash: "AA"}) // filtered out
	b.Publish(TypeAnchor, AnchorData{Gateway: "g", Size: 7})
	b.Publish(TypeBlock, BlockData{Height: 2, Txs: 1})
	sc := bufio.NewScanner(res.Body)
	evs := readSSE(t, sc, 2)
	if evs[0].typ != TypeAnchor || evs[0].id != 3 || !strings.Contains(evs[0].data, `"size":7`) {
		t.Fatalf("first event = %+v", evs[0])
	}
	if evs[1].typ != TypeBlock || evs[1].id != 4 {
		t.Fatalf("second event = %+v", evs[1])
	}

	// Reconnect with Last-Event-ID: the kept events after it come again.
	req3, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events/recent?types=block", nil)
	res3, err := http.DefaultClient.Do(req3)
	if err != nil {
		t.Fatal(err)
	}
	var recent struct{ Items []Event }
	json.NewDecoder(res3.Body).Decode(&recent)
	res3.Body.Close()
	if len(recent.Items) != 2 || recent.Items[1].ID != 4 {
		t.Fatalf("recent = %+v", recent)
	}

	// Close ends the stream (the node does it before shutting the server down).
	st.Close()
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after Close")
	}
}

func TestStreamBadID(t *testing.T) {
	st := NewStream(NewBus(0), StreamConfig{})
	rec := httptest.NewRecorder()
	st.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/events?after=x", nil))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"bad_request"`) {
		t.Fatalf("after=x: %d %s", rec.Code, rec.Body)
	}
}

func FuzzParseTypes(f *testing.F) {
	for _, s := range []string{"", "block", "block,tx", " device , ,anchor,", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range ParseTypes(s) {
			if typ == "" || strings.TrimSpace(typ) != typ || strings.Contains(typ, ",") {
				t.Fatalf("ParseTypes(%q) gave %q", s, typ)
			}
			if !Match([]string{typ}, typ) {
				t.Fatalf("%q does not match itself", typ)
			}
		}
	})
}
