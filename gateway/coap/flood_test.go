package coap

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestFlood: a source over its rate gets 4.29 with a retry hint, at once
// and without Ingest being called, while another source still gets its
// readings stored.
func TestFlood(t *testing.T) {
	e := start(t, nil)
	const budget = 5
	e.limits.set("addr:127.0.0.1", budget)
	dev, other := newDevice(t, e.ingest), newDevice(t, e.ingest)
	flooder := e.raw(t, "127.0.0.1")
	polite := e.dial(t, "127.0.0.2")

	var ok, limited int
	for i := range 50 {
		ans := flooder.exchange(postR(t, uint16(i), []byte{byte(i)}, dev.reading(t)))
		switch ans.Code {
		case codes.Changed:
			ok++
		case codes.TooManyRequests:
			limited++
			if uintOf(ans, message.MaxAge) < 1 {
				t.Fatalf("4.29 without a Max-Age retry hint")
			}
		default:
			t.Fatalf("flood request %d: answer %v; want 2.04 or 4.29", i, ans.Code)
		}
		if i%10 == 0 {
			if got := post(t, polite, PathShort, other.reading(t)); got != codes.Changed {
				t.Fatalf("the other source's reading during the flood = %v; want 2.04", got)
			}
		}
	}
	if ok != budget || limited != 50-budget {
		t.Fatalf("flood: %d stored, %d limited; want %d, %d", ok, limited, budget, 50-budget)
	}
	if n := e.ingest.callCount(); n != budget+5 {
		t.Errorf("Ingest called %d times; want %d (limited requests must not reach it)", n, budget+5)
	}
	if msgs, _ := e.limits.count("addr:127.0.0.2"); msgs != 5 {
		t.Errorf("the Limiter was asked %d times for 127.0.0.2; want 5", msgs)
	}
	if n := e.srv.Stats().Refused[RefusedRateLimited]; n != 50-budget {
		t.Errorf("Stats.Refused[rate_limited] = %d; want %d", n, 50-budget)
	}
}

// TestFloodOfJunk: datagrams that are no requests are charged too, and
// once the source is over its rate even a ping gets no Reset.
func TestFloodOfJunk(t *testing.T) {
	e := start(t, nil)
	e.limits.set("addr:127.0.0.1", 3)
	r := e.raw(t, "")
	for i := range 3 {
		r.send(msg(t, message.Confirmable, codes.Empty, uint16(i), nil, nil))
		if b := r.must(); len(b) != 4 {
			t.Fatalf("ping %d: answer of %d bytes; want a 4-byte Reset", i, len(b))
		}
	}
	r.send(msg(t, message.Confirmable, codes.Empty, 9, nil, nil))
	r.send([]byte{0x49, 0, 0, 1})
	if b := r.recv(200 * time.Millisecond); b != nil {
		t.Fatalf("over its rate, the source got % x; want nothing", b)
	}
	if n := e.srv.Stats().Dropped[DroppedRateLimited]; n != 2 {
		t.Errorf("Stats.Dropped[rate_limited] = %d; want 2", n)
	}
}
