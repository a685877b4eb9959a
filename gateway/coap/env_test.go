package coap

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// env is a running server with fakes behind it.
type env struct {
	srv    *Server
	ingest *fakeIngest
	limits *fakeLimiter
}

// start starts a server on a free loopback port; edit may change the
// config first. The server is closed when the test ends.
func start(t testing.TB, edit func(*Config)) *env {
	t.Helper()
	e := &env{ingest: newFakeIngest(), limits: newFakeLimiter()}
	c := Config{Listen: "127.0.0.1:0", Ingest: e.ingest, Limits: e.limits, Logger: testLogger()}
	if edit != nil {
		edit(&c)
	}
	srv, err := Start(c)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	e.srv = srv
	t.Cleanup(func() {
		e.ingest.setGate(false)
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// testLogger logs at debug level to stderr with -v and COAP_DEBUG set.
func testLogger() *slog.Logger {
	if os.Getenv("COAP_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dial returns a go-coap client of e's server, from local address from
// ("" for any), closed when the test ends.
func (e *env) dial(t *testing.T, from string, opts ...udp.Option) *client.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: time.Second}
	if from != "" {
		d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(from)}
	}
	opts = append([]udp.Option{options.WithDialer(d), options.WithErrors(func(error) {})}, opts...)
	cc, err := udp.Dial(e.srv.Addr(), opts...)
	if err != nil {
		t.Fatalf("udp.Dial: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// post POSTs payload to path with go-coap and returns the answer's code.
func post(t *testing.T, cc *client.Conn, path string, payload []byte, opts ...message.Option) codes.Code {
	t.Helper()
	resp := postResp(t, cc, path, payload, opts...)
	defer cc.ReleaseMessage(resp)
	return resp.Code()
}

func postResp(t *testing.T, cc *client.Conn, path string, payload []byte, opts ...message.Option) *pool.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, path, message.AppCoseSign1, bytes.NewReader(payload), opts...)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// raw is a plain UDP socket speaking CoAP byte by byte, to see exactly
// what the server sends.
type raw struct {
	t    *testing.T
	conn *net.UDPConn
	last int // size of the last answer exchange received
}

func (e *env) raw(t *testing.T, from string) *raw {
	t.Helper()
	var laddr *net.UDPAddr
	if from != "" {
		laddr = &net.UDPAddr{IP: net.ParseIP(from)}
	}
	raddr, err := net.ResolveUDPAddr("udp", e.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatalf("DialUDP: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &raw{t: t, conn: conn}
}

func (r *raw) send(b []byte) {
	r.t.Helper()
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// recv returns the next datagram, or nil if none comes within d.
func (r *raw) recv(d time.Duration) []byte {
	r.t.Helper()
	buf := make([]byte, 70000)
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	n, err := r.conn.Read(buf)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		r.t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

// must returns the next datagram, failing the test if none comes.
func (r *raw) must() []byte {
	r.t.Helper()
	b := r.recv(5 * time.Second)
	if b == nil {
		r.t.Fatal("no answer within 5 s")
	}
	return b
}

// exchange sends req and returns the decoded answer, checking the
// amplification bound on the actual datagram sizes.
func (r *raw) exchange(req []byte) message.Message {
	r.t.Helper()
	r.send(req)
	b := r.must()
	r.last = len(b)
	if len(b) > amplification*len(req) {
		r.t.Errorf("answer of %d bytes to a request of %d bytes: more than %d times", len(b), len(req), amplification)
	}
	return decode(r.t, b)
}

func decode(t *testing.T, b []byte) message.Message {
	t.Helper()
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		t.Fatalf("answer % x does not decode: %v", b, err)
	}
	return m
}

// msg encodes a CoAP message.
func msg(t testing.TB, typ message.Type, code codes.Code, mid uint16, token []byte, payload []byte, opts ...message.Option) []byte {
	t.Helper()
	m := message.Message{Type: typ, Code: code, MessageID: int32(mid), Token: token, Payload: payload, Options: opts}
	buf := make([]byte, 70000)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return buf[:n]
}

func pathOpt(seg string) message.Option {
	return message.Option{ID: message.URIPath, Value: []byte(seg)}
}

func cfOpt(cf message.MediaType) message.Option { return uintOption(message.ContentFormat, uint32(cf)) }

// postR is a confirmable POST /r of payload.
func postR(t testing.TB, mid uint16, token, payload []byte, opts ...message.Option) []byte {
	return msg(t, message.Confirmable, codes.POST, mid, token, payload, append([]message.Option{pathOpt("r")}, opts...)...)
}

// uintOf returns the value of uint option id of m, or -1.
func uintOf(m message.Message, id message.OptionID) int64 {
	v, err := m.Options.GetUint32(id)
	if err != nil {
		return -1
	}
	return int64(v)
}
