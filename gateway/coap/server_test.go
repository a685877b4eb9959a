package coap

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/thingnet/thingnet/gateway/edge"
)

func TestAcceptedReading(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	cc := e.dial(t, "")
	for _, path := range []string{PathShort, PathLong} {
		env := dev.reading(t)
		if got := post(t, cc, path, env); got != codes.Changed {
			t.Fatalf("POST %s of a signed reading = %v; want 2.04 Changed", path, got)
		}
		if !e.ingest.has(env) {
			t.Fatalf("POST %s: reading answered 2.04 but not stored", path)
		}
	}
	if got := e.ingest.lastSource(); got != "127.0.0.1" {
		t.Errorf("Ingest source = %q; want 127.0.0.1", got)
	}
	st := e.srv.Stats()
	if st.Accepted != 2 || st.Duplicates != 0 {
		t.Errorf("Stats accepted %d, duplicates %d; want 2, 0", st.Accepted, st.Duplicates)
	}
}

func TestNoContentFormat(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	r := e.raw(t, "")
	ans := r.exchange(postR(t, 1, []byte{1, 2}, dev.reading(t)))
	if ans.Code != codes.Changed || ans.Type != message.Acknowledgement || ans.MessageID != 1 {
		t.Fatalf("answer = %v %v mid %d; want a piggybacked 2.04 ACK of mid 1", ans.Type, ans.Code, ans.MessageID)
	}
}

func TestTamperedReading(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	cc := e.dial(t, "")
	if got := post(t, cc, PathShort, tamper(dev.reading(t))); got != codes.BadRequest {
		t.Fatalf("POST of a reading with a bad signature = %v; want 4.00 Bad Request", got)
	}
	if got := post(t, cc, PathShort, []byte("not a reading")); got != codes.BadRequest {
		t.Fatalf("POST of garbage = %v; want 4.00 Bad Request", got)
	}
	if n := e.ingest.storedCount(); n != 0 {
		t.Fatalf("%d readings stored; want 0", n)
	}
	if n := e.srv.Stats().Refused[RefusedRejected]; n != 2 {
		t.Errorf("Stats.Refused[rejected] = %d; want 2", n)
	}
}

func TestReplayAndDuplicate(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	cc := e.dial(t, "")
	first := dev.signed(t, 5, 21.5)
	if got := post(t, cc, PathShort, first); got != codes.Changed {
		t.Fatalf("first POST = %v; want 2.04", got)
	}
	// Another envelope with the same seq: a replay.
	if got := post(t, cc, PathShort, dev.signed(t, 5, 30)); got != codes.BadRequest {
		t.Fatalf("POST of another reading with seq 5 = %v; want 4.00 (replay)", got)
	}
	if got := post(t, cc, PathShort, dev.signed(t, 4, 30)); got != codes.BadRequest {
		t.Fatalf("POST of seq 4 after 5 = %v; want 4.00 (replay)", got)
	}
	// The stored envelope sent again in a new request (its ACK was lost and
	// the device rebooted): already stored, acknowledged, not stored twice.
	if got := post(t, cc, PathShort, first); got != codes.Changed {
		t.Fatalf("POST of the stored envelope again = %v; want 2.04 (duplicate)", got)
	}
	if n := e.ingest.storedCount(); n != 1 {
		t.Fatalf("%d readings stored; want 1", n)
	}
	if st := e.srv.Stats(); st.Accepted != 2 || st.Duplicates != 1 || st.Refused[RefusedRejected] != 2 {
		t.Errorf("Stats accepted %d duplicates %d rejected %d; want 2, 1, 2", st.Accepted, st.Duplicates, st.Refused[RefusedRejected])
	}
}

func TestIngestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{fmt.Errorf("%w: queue full", edge.ErrOverloaded), codes.ServiceUnavailable, RefusedOverloaded},
		{errors.New("disk on fire"), codes.InternalServerError, RefusedError},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			e := start(t, nil)
			dev := newDevice(t, e.ingest)
			e.ingest.setFail(tc.err)
			r := e.raw(t, "")
			ans := r.exchange(postR(t, 7, []byte{9}, dev.reading(t)))
			if ans.Code != tc.code {
				t.Fatalf("answer = %v; want %v", ans.Code, tc.code)
			}
			if tc.code == codes.ServiceUnavailable && uintOf(ans, message.MaxAge) != 2 {
				t.Errorf("5.03 Max-Age = %d; want 2 (DefaultRetryAfter)", uintOf(ans, message.MaxAge))
			}
			if n := e.srv.Stats().Refused[tc.reason]; n != 1 {
				t.Errorf("Stats.Refused[%s] = %d; want 1", tc.reason, n)
			}
		})
	}
}

func TestIngestTimeout(t *testing.T) {
	e := start(t, func(c *Config) { c.IngestTimeout = 100 * time.Millisecond })
	dev := newDevice(t, e.ingest)
	e.ingest.setGate(true)
	r := e.raw(t, "")
	ans := r.exchange(postR(t, 7, nil, dev.reading(t)))
	if ans.Code != codes.ServiceUnavailable {
		t.Fatalf("answer to a reading not stored within IngestTimeout = %v; want 5.03", ans.Code)
	}
}

func TestNonConfirmable(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	r := e.raw(t, "")
	req := msg(t, message.NonConfirmable, codes.POST, 77, []byte{1, 2, 3, 4}, dev.reading(t), pathOpt("r"))
	ans := r.exchange(req)
	if ans.Code != codes.Changed || string(ans.Token) != "\x01\x02\x03\x04" {
		t.Fatalf("answer to a NON POST = %v token % x; want 2.04 with the request's token", ans.Code, ans.Token)
	}
	if ans.Type != message.NonConfirmable {
		t.Errorf("answer to a NON request is a %v; want a NON", ans.Type)
	}
}

func TestConfig(t *testing.T) {
	ok := Config{Ingest: newFakeIngest(), Limits: newFakeLimiter()}
	for name, c := range map[string]Config{
		"no Ingest":        {Limits: newFakeLimiter()},
		"no Limits":        {Ingest: newFakeIngest()},
		"negative payload": {Ingest: ok.Ingest, Limits: ok.Limits, MaxPayload: -1},
		"huge payload":     {Ingest: ok.Ingest, Limits: ok.Limits, MaxPayload: 1 << 30},
		"negative timeout": {Ingest: ok.Ingest, Limits: ok.Limits, IngestTimeout: -time.Second},
	} {
		if _, err := Start(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Start error = %v; want ErrConfig", name, err)
		}
	}
	c, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.MaxPayload != 128<<10 || c.IngestTimeout != DefaultIngestTimeout || c.maxAge() != 2 {
		t.Errorf("defaults = %+v", c)
	}
	if _, err := Start(Config{Listen: "127.0.0.1:bad", Ingest: ok.Ingest, Limits: ok.Limits}); err == nil {
		t.Error("Start on a bad address succeeded")
	}
}

func TestIPv6(t *testing.T) {
	probe, err := Start(Config{Listen: "[::1]:0", Ingest: newFakeIngest(), Limits: newFakeLimiter()})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *Config) { c.Listen = "[::1]:0" })
	dev := newDevice(t, e.ingest)
	if got := post(t, e.dial(t, ""), PathShort, dev.reading(t)); got != codes.Changed {
		t.Fatalf("POST over IPv6 = %v; want 2.04", got)
	}
	if got := e.ingest.lastSource(); got != "::1" {
		t.Errorf("Ingest source = %q; want ::1", got)
	}
	if msgs, _ := e.limits.count("addr:::/64"); msgs != 1 {
		t.Errorf("the Limiter was asked %d times for addr:::/64 (the /64 of ::1); want 1", msgs)
	}
}
