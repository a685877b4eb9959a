package coap

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
)

// TestAnswerOnlyAfterStore: while Ingest blocks, nothing at all is sent
// (no 2.04, no empty ACK), retransmissions are not ingested again, and the
// 2.04 goes out once Ingest returned; a later retransmission gets the same
// answer from go-coap's cache, still without a second Ingest.
func TestAnswerOnlyAfterStore(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	e.ingest.setGate(true)
	r := e.raw(t, "")
	tok := []byte{0xca, 0xfe}
	req := postR(t, 100, tok, dev.reading(t))
	r.send(req)
	e.ingest.waitEntered(t)
	if b := r.recv(300 * time.Millisecond); b != nil {
		t.Fatalf("while Ingest blocks, the server sent % x; want nothing", b)
	}
	r.send(req) // retransmissions of the same message id
	r.send(req)
	if b := r.recv(300 * time.Millisecond); b != nil {
		t.Fatalf("while Ingest blocks, a retransmission got % x; want nothing", b)
	}
	if n := e.ingest.callCount(); n != 1 {
		t.Fatalf("Ingest called %d times while the first call blocks; want 1", n)
	}
	if e.ingest.storedCount() != 0 {
		t.Fatal("stored before release")
	}

	e.ingest.release <- struct{}{}
	ans := decode(t, r.must())
	if ans.Type != message.Acknowledgement || ans.Code != codes.Changed || ans.MessageID != 100 || !bytes.Equal(ans.Token, tok) {
		t.Fatalf("answer = %v %v mid %d token % x; want ACK 2.04 mid 100 token % x", ans.Type, ans.Code, ans.MessageID, ans.Token, tok)
	}
	if e.ingest.storedCount() != 1 {
		t.Fatal("2.04 received but the reading is not stored")
	}
	if b := r.recv(200 * time.Millisecond); b != nil {
		t.Fatalf("a second answer followed: % x", b)
	}

	// The ACK was lost: the device retransmits once more.
	again := decode(t, r.exchangeRaw(req))
	if again.Code != codes.Changed || again.MessageID != 100 {
		t.Fatalf("answer to a late retransmission = %v mid %d; want the cached 2.04 of mid 100", again.Code, again.MessageID)
	}
	if n := e.ingest.callCount(); n != 1 {
		t.Fatalf("Ingest called %d times for one message id; want 1", n)
	}
	if st := e.srv.Stats(); st.Datagrams != 4 {
		t.Errorf("Stats.Datagrams = %d; want 4", st.Datagrams)
	}
}

// exchangeRaw sends req and returns the raw answer.
func (r *raw) exchangeRaw(req []byte) []byte {
	r.t.Helper()
	r.send(req)
	return r.must()
}

// TestGoCoapRetransmits: go-coap's client retransmits a confirmable POST
// while Ingest blocks; the reading is ingested once and the client gets
// its 2.04 when Ingest returns.
func TestGoCoapRetransmits(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	e.ingest.setGate(true)
	stop := make(chan struct{})
	defer close(stop)
	cc := e.dial(t, "", options.WithTransmission(1, 100*time.Millisecond, 8),
		options.WithPeriodicRunner(periodic.New(stop, 20*time.Millisecond))) // retransmissions are driven by it
	done := make(chan codes.Code, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cc.Post(ctx, PathShort, message.AppCoseSign1, bytes.NewReader(dev.reading(t)))
		if err != nil {
			t.Errorf("POST: %v", err)
			done <- 0
			return
		}
		done <- resp.Code()
		cc.ReleaseMessage(resp)
	}()
	e.ingest.waitEntered(t)
	time.Sleep(600 * time.Millisecond) // several retransmissions
	select {
	case c := <-done:
		t.Fatalf("the client got %v before Ingest returned", c)
	default:
	}
	e.ingest.release <- struct{}{}
	if c := <-done; c != codes.Changed {
		t.Fatalf("answer = %v; want 2.04", c)
	}
	if n := e.ingest.callCount(); n != 1 {
		t.Fatalf("Ingest called %d times; want 1", n)
	}
	t.Logf("%d datagrams for one request", e.srv.Stats().Datagrams)
	if n := e.srv.Stats().Datagrams; n < 2 {
		t.Error("no retransmission was seen; the test proves nothing")
	}
}

// TestSlowIngestHoldsBackNoOne: many requests of one endpoint stuck in
// Ingest hold back neither that endpoint's other requests nor other
// sources.
func TestSlowIngestHoldsBackNoOne(t *testing.T) {
	e := start(t, nil)
	slow, fast := newDevice(t, e.ingest), newDevice(t, e.ingest)
	e.ingest.gateSource("127.0.0.2")
	r := e.raw(t, "127.0.0.2")
	const stuck = 100 // far beyond go-coap's per-connection queue
	for i := range stuck {
		r.send(postR(t, uint16(i), nil, slow.reading(t)))
	}
	for range stuck {
		e.ingest.waitEntered(t)
	}
	// The same endpoint is still served...
	if ans := r.exchange(msg(t, message.Confirmable, codes.GET, 5000, nil, nil, pathOpt("r"))); ans.Code != codes.MethodNotAllowed {
		t.Fatalf("GET from the busy endpoint = %v; want 4.05", ans.Code)
	}
	// ...and so is everyone else.
	cc := e.dial(t, "127.0.0.1")
	start := time.Now()
	if got := post(t, cc, PathShort, fast.reading(t)); got != codes.Changed {
		t.Fatalf("another source's reading = %v; want 2.04", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("another source waited %s", d)
	}
	if st := e.srv.Stats(); st.InFlight < stuck {
		t.Errorf("Stats.InFlight = %d; want at least %d", st.InFlight, stuck)
	}
}
