package coap

import (
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/thingnet/thingnet/gateway/edge"
)

// TestAmplification sends the smallest request that reaches each error
// path, with no token and with an 8-byte one, and measures the datagrams:
// every answer must be at most 3 times its request, carry no payload, and
// come alone.
func TestAmplification(t *testing.T) {
	type build func(t *testing.T, tok []byte) []byte
	post := func(payload []byte, opts ...message.Option) build {
		return func(t *testing.T, tok []byte) []byte { return postR(t, 0x1234, tok, payload, opts...) }
	}
	cases := []struct {
		name   string
		edit   func(*Config)
		setup  func(t *testing.T, e *env)
		req    build
		code   codes.Code // 0: a Reset
		reason string     // Stats key
	}{
		{name: "ping", req: func(t *testing.T, _ []byte) []byte {
			return msg(t, message.Confirmable, codes.Empty, 1, nil, nil)
		}, reason: DroppedPing},
		{name: "malformed", req: func(t *testing.T, _ []byte) []byte {
			return []byte{0x49, 0x02, 0x12, 0x34} // token length 9
		}, reason: DroppedMalformed},
		{name: "no path", req: func(t *testing.T, tok []byte) []byte {
			return msg(t, message.Confirmable, codes.POST, 1, tok, nil)
		}, code: codes.NotFound, reason: RefusedNotFound},
		{name: "other path", req: func(t *testing.T, tok []byte) []byte {
			return msg(t, message.Confirmable, codes.POST, 1, tok, nil, pathOpt("x"))
		}, code: codes.NotFound, reason: RefusedNotFound},
		{name: "GET", req: func(t *testing.T, tok []byte) []byte {
			return msg(t, message.Confirmable, codes.GET, 1, tok, nil, pathOpt("r"))
		}, code: codes.MethodNotAllowed, reason: RefusedMethod},
		{name: "DELETE", req: func(t *testing.T, tok []byte) []byte {
			return msg(t, message.NonConfirmable, codes.DELETE, 1, tok, nil, pathOpt("readings"))
		}, code: codes.MethodNotAllowed, reason: RefusedMethod},
		{name: "content format", req: post([]byte{1}, cfOpt(message.AppCBOR)),
			code: codes.UnsupportedMediaType, reason: RefusedContentFormat},
		{name: "critical option", req: func(t *testing.T, tok []byte) []byte {
			return msg(t, message.Confirmable, codes.POST, 1, tok, nil, message.Option{ID: 9}, pathOpt("r"))
		}, code: codes.BadOption, reason: RefusedBadOption},
		{name: "many critical options", req: func(t *testing.T, tok []byte) []byte {
			var opts []message.Option
			for id := message.OptionID(2001); id < 2060; id += 2 {
				opts = append(opts, message.Option{ID: id})
			}
			return msg(t, message.Confirmable, codes.POST, 1, tok, nil, opts...)
		}, code: codes.BadOption, reason: RefusedBadOption},
		{name: "proxy", req: func(t *testing.T, tok []byte) []byte {
			return msg(t, message.Confirmable, codes.POST, 1, tok, nil, message.Option{ID: message.ProxyURI, Value: []byte("coap://x")})
		}, code: codes.ProxyingNotSupported, reason: RefusedProxy},
		{name: "too large", edit: func(c *Config) { c.MaxPayload = 64 }, req: post(make([]byte, 65)),
			code: codes.RequestEntityTooLarge, reason: RefusedTooLarge},
		{name: "announced too large", req: post([]byte{1}, uintOption(message.Size1, 1<<20)),
			code: codes.RequestEntityTooLarge, reason: RefusedTooLarge},
		{name: "block beyond max", req: post(make([]byte, 16), uintOption(message.Block1, 9000<<4|1<<3)),
			code: codes.RequestEntityTooLarge, reason: RefusedTooLarge},
		{name: "BERT block", req: post(make([]byte, 16), uintOption(message.Block1, 7|1<<3)),
			code: codes.BadRequest, reason: RefusedBadRequest},
		{name: "block of no upload", req: post(make([]byte, 16), uintOption(message.Block1, 3<<4)),
			code: codes.RequestEntityIncomplete, reason: RefusedIncomplete},
		{name: "empty payload", req: post(nil), code: codes.BadRequest, reason: RefusedBadRequest},
		{name: "not a reading", req: post([]byte{0xd2}), code: codes.BadRequest, reason: RefusedRejected},
		{name: "bad signature", setup: func(t *testing.T, e *env) {}, req: func(t *testing.T, tok []byte) []byte {
			return postR(t, 1, tok, tamper(newDevice(t, newFakeIngest()).reading(t)))
		}, code: codes.BadRequest, reason: RefusedRejected},
		{name: "rate limited", setup: func(t *testing.T, e *env) { e.limits.set("addr:127.0.0.1", 0) },
			req: post([]byte{1}), code: codes.TooManyRequests, reason: RefusedRateLimited},
		{name: "overloaded", setup: func(t *testing.T, e *env) {
			e.ingest.setFail(fmt.Errorf("%w: queue full", edge.ErrOverloaded))
		}, req: post([]byte{1}), code: codes.ServiceUnavailable, reason: RefusedOverloaded},
		{name: "storage failed", setup: func(t *testing.T, e *env) {
			e.ingest.setFail(fmt.Errorf("disk on fire"))
		}, req: post([]byte{1}), code: codes.InternalServerError, reason: RefusedError},
		{name: "in flight full", edit: func(c *Config) { c.MaxInFlight = 1 }, setup: occupy,
			req: post([]byte{1}), code: codes.ServiceUnavailable, reason: RefusedBusy},
		{name: "sessions full", edit: func(c *Config) { c.MaxSessions = 1 }, setup: occupy,
			req: post([]byte{1}), code: codes.ServiceUnavailable, reason: RefusedBusy},
	}
	for _, tc := range cases {
		for _, tok := range [][]byte{nil, {1, 2, 3, 4, 5, 6, 7, 8}} {
			t.Run(fmt.Sprintf("%s/token %d", tc.name, len(tok)), func(t *testing.T) {
				t.Parallel()
				e := start(t, tc.edit)
				if tc.setup != nil {
					tc.setup(t, e)
				}
				r := e.raw(t, "")
				req := tc.req(t, tok)
				ans := r.exchange(req)
				t.Logf("request %d bytes, answer %d bytes: %v %v", len(req), r.last, ans.Type, ans.Code)
				if len(ans.Payload) != 0 {
					t.Errorf("answer has a payload of %d bytes: %q", len(ans.Payload), ans.Payload)
				}
				if tc.code == 0 {
					if ans.Type != message.Reset {
						t.Fatalf("answer = %v %v; want a Reset", ans.Type, ans.Code)
					}
				} else if ans.Code != tc.code {
					t.Fatalf("answer = %v; want %v", ans.Code, tc.code)
				}
				switch ans.Code {
				case codes.ServiceUnavailable, codes.TooManyRequests:
					if got := uintOf(ans, message.MaxAge); got != 2 {
						t.Errorf("Max-Age = %d; want 2 (DefaultRetryAfter)", got)
					}
				case codes.RequestEntityTooLarge:
					if got := uintOf(ans, message.Size1); got != int64(e.srv.cfg.MaxPayload) {
						t.Errorf("Size1 = %d; want MaxPayload %d", got, e.srv.cfg.MaxPayload)
					}
				}
				if extra := r.recv(50 * time.Millisecond); extra != nil {
					t.Errorf("a second datagram of %d bytes followed the answer", len(extra))
				}
				st := e.srv.Stats()
				if st.Refused[tc.reason]+st.Dropped[tc.reason] == 0 {
					t.Errorf("Stats count no %q: %+v", tc.reason, st)
				}
				if st.Dropped[DroppedAmplification] != 0 {
					t.Errorf("the amplification guard dropped %d answers", st.Dropped[DroppedAmplification])
				}
			})
		}
	}
}

// occupy takes the only in-flight slot or session of e with a reading
// whose Ingest blocks until the test ends.
func occupy(t *testing.T, e *env) {
	dev := newDevice(t, e.ingest)
	e.ingest.setGate(true)
	e.raw(t, "").send(postR(t, 1, nil, dev.reading(t)))
	e.ingest.waitEntered(t)
	e.ingest.setGate(false)
}

// TestNonConfirmableBadOption: a NON request with an unrecognised critical
// option is rejected silently (RFC 7252 §5.4.1).
func TestNonConfirmableBadOption(t *testing.T) {
	e := start(t, nil)
	r := e.raw(t, "")
	r.send(msg(t, message.NonConfirmable, codes.POST, 1, nil, []byte{1}, message.Option{ID: 9}, pathOpt("r")))
	if b := r.recv(200 * time.Millisecond); b != nil {
		t.Fatalf("got an answer of %d bytes; want none", len(b))
	}
	if n := e.srv.Stats().Refused[RefusedBadOption]; n != 1 {
		t.Errorf("Stats.Refused[bad_option] = %d; want 1", n)
	}
}

// TestNotRequests: ACKs, Resets, empty NONs and responses get no answer.
func TestNotRequests(t *testing.T) {
	e := start(t, nil)
	r := e.raw(t, "")
	for _, b := range [][]byte{
		msg(t, message.Acknowledgement, codes.Empty, 1, nil, nil),
		msg(t, message.Reset, codes.Empty, 2, nil, nil),
		msg(t, message.NonConfirmable, codes.Empty, 3, nil, nil),
		msg(t, message.Confirmable, codes.Content, 4, []byte{1}, []byte("hi")),
		{0x40},             // truncated, too short for a Reset
		{0x80, 0x01, 0, 1}, // version 2: ignored
	} {
		r.send(b)
	}
	if b := r.recv(200 * time.Millisecond); b != nil {
		t.Fatalf("got an answer of %d bytes: % x; want none", len(b), b)
	}
}
