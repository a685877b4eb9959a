package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/thingnet/thingnet/gateway/coap"
)

// The transports `thingnet bench gateway --transport` measures.
const (
	TransportMQTT = "mqtt" // QoS 1 PUBLISH, acknowledged by PUBACK
	TransportCoAP = "coap" // confirmable POST to /r, acknowledged by 2.04 (piggybacked on the ACK)
	TransportHTTP = "http" // POST /v1/readings, acknowledged by 202
)

// sender is one device's client of a load: send transmits an envelope (in
// the order send is called) and returns its acknowledgement to come.
type sender interface {
	send(env []byte) sent
	close()
}

// sent is an envelope's acknowledgement to come (paho.Token is one).
type sent interface {
	Done() <-chan struct{}
	Error() error
}

// outcome is a sent of the CoAP and HTTP clients.
type outcome struct {
	done chan struct{}
	err  error
	once sync.Once
}

func newOutcome() *outcome               { return &outcome{done: make(chan struct{})} }
func (o *outcome) Done() <-chan struct{} { return o.done }
func (o *outcome) Error() error          { <-o.done; return o.err }
func (o *outcome) finish(err error) (ok bool) {
	o.once.Do(func() { o.err = err; close(o.done); ok = true })
	return ok
}

// mqttSender publishes at QoS 1 to the device's readings topic.
type mqttSender struct {
	c     paho.Client
	topic string
}

func (m mqttSender) send(env []byte) sent { return m.c.Publish(m.topic, 1, false, env) }
func (m mqttSender) close()               { m.c.Disconnect(0) }

// CoAP client timing: RFC 7252's ACK_TIMEOUT and MAX_RETRANSMIT (without
// the random factor: loopback).
const (
	coapAckTimeout    = 2 * time.Second
	coapMaxRetransmit = 4
)

// coapSender is a CoAP endpoint of its own (a UDP socket) that sends
// confirmable POSTs to /r back to back, matches the piggybacked answers by
// message id, and retransmits a request whose answer is late (a datagram
// dropped by a full socket buffer) as RFC 7252 says.
type coapSender struct {
	conn *net.UDPConn
	mu   sync.Mutex
	mid  uint16
	wait map[uint16]*coapRequest
	stop chan struct{}
	wg   sync.WaitGroup
}

type coapRequest struct {
	b      []byte
	due    time.Time
	tries  int
	result *outcome
}

// dialCoAP opens n CoAP endpoints to addr.
func dialCoAP(addr string, n int) ([]sender, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: coap address %q: %w", addr, err)
	}
	out := make([]sender, 0, n)
	for range n {
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			for _, s := range out {
				s.close()
			}
			return nil, fmt.Errorf("bench: coap dial %s: %w", addr, err)
		}
		_ = conn.SetReadBuffer(1 << 20)
		s := &coapSender{conn: conn, wait: map[uint16]*coapRequest{}, stop: make(chan struct{})}
		s.wg.Add(2)
		go s.read()
		go s.retransmit()
		out = append(out, s)
	}
	return out, nil
}

var coapPathR = message.Option{ID: message.URIPath, Value: []byte(coap.PathShort[1:])}

func (s *coapSender) send(env []byte) sent {
	res := newOutcome()
	s.mu.Lock()
	s.mid++
	mid := s.mid
	m := message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: int32(mid),
		Token: []byte{byte(mid >> 8), byte(mid)}, Payload: env,
		Options: message.Options{coapPathR, {ID: message.ContentFormat, Value: []byte{byte(message.AppCoseSign1)}}}}
	b := make([]byte, len(env)+32)
	n, err := coder.DefaultCoder.Encode(m, b)
	if err != nil {
		s.mu.Unlock()
		res.finish(fmt.Errorf("bench: encoding a CoAP request: %w", err))
		return res
	}
	s.wait[mid] = &coapRequest{b: b[:n], due: time.Now().Add(coapAckTimeout), result: res}
	s.mu.Unlock()
	if _, err := s.conn.Write(b[:n]); err != nil {
		s.answer(mid, err)
	}
	return res
}

// answer ends request mid with err.
func (s *coapSender) answer(mid uint16, err error) {
	s.mu.Lock()
	r := s.wait[mid]
	delete(s.wait, mid)
	s.mu.Unlock()
	if r != nil {
		r.result.finish(err)
	}
}

// read takes the answers until the socket is closed.
func (s *coapSender) read() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	m := message.Message{Options: make(message.Options, 0, 8)}
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED from an ICMP error: retransmission copes
		}
		m.Options = m.Options[:0]
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil || m.Type != message.Acknowledgement {
			continue
		}
		var aerr error
		if m.Code != codes.Changed {
			aerr = fmt.Errorf("coap: answered %v", m.Code)
		}
		s.answer(uint16(m.MessageID), aerr)
	}
}

// retransmit resends the requests whose answers are late, with binary
// exponential back-off, and gives up after coapMaxRetransmit resends.
func (s *coapSender) retransmit() {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			var resend [][]byte
			var failed []*coapRequest
			s.mu.Lock()
			for mid, r := range s.wait {
				if now.Before(r.due) {
					continue
				}
				if r.tries == coapMaxRetransmit {
					delete(s.wait, mid)
					failed = append(failed, r)
					continue
				}
				r.tries++
				r.due = now.Add(coapAckTimeout << r.tries)
				resend = append(resend, r.b)
			}
			s.mu.Unlock()
			for _, b := range resend {
				_, _ = s.conn.Write(b)
			}
			for _, r := range failed {
				r.result.finish(errors.New("coap: no answer after 4 retransmissions"))
			}
		}
	}
}

func (s *coapSender) close() {
	close(s.stop)
	s.conn.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for mid, r := range s.wait {
		delete(s.wait, mid)
		r.result.finish(errors.New("coap: client closed"))
	}
}

// httpSender POSTs each envelope to /v1/readings on a connection of a
// shared keep-alive client. HTTP orders nothing between concurrent requests,
// so a device that needs its readings stored in order keeps one in flight
// (the benchmark's HTTP default window).
type httpSender struct {
	c   *http.Client
	url string
}

// httpSenders are n devices' HTTP clients of base (host:port), sharing one
// transport with a connection per device.
func httpSenders(base string, n int) []sender {
	c := &http.Client{Timeout: gwDrainTimeout, Transport: &http.Transport{
		MaxIdleConns: 2 * n, MaxIdleConnsPerHost: 2 * n, DisableCompression: true, IdleConnTimeout: time.Minute,
	}}
	out := make([]sender, n)
	for i := range out {
		out[i] = httpSender{c: c, url: "http://" + base + "/v1/readings"}
	}
	return out
}

func (h httpSender) send(env []byte) sent {
	res := newOutcome()
	go func() {
		resp, err := h.c.Post(h.url, "application/cose", bytes.NewReader(env))
		if err != nil {
			res.finish(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted, http.StatusOK: // stored, or a resend of what is stored
			res.finish(nil)
		default:
			res.finish(fmt.Errorf("http: answered %s", resp.Status))
		}
	}()
	return res
}

func (h httpSender) close() { h.c.CloseIdleConnections() }

// plainServer is a baseline: a server of the transport alone, that
// acknowledges every request at once and keeps nothing.
type plainServer struct {
	addr string
	stop func() error
}

// startPlainHTTP serves, on a free loopback port, a net/http server that
// reads each request's body and answers 202: what the transport alone
// costs.
func startPlainHTTP(int) (*plainServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = srv.Serve(ln) }()
	return &plainServer{addr: ln.Addr().String(), stop: func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}}, nil
}

// startPlainCoAP serves, on a free loopback port, go-coap's own UDP server
// answering every request 2.04 Changed: its defaults, but for the socket's
// receive buffer (4 MiB, as the gateway's CoAP server asks: with the
// kernel's default a load of 100 endpoints × 16 requests overflowed it, and
// the dropped requests' 2 s retransmission timeouts, not the server, set the
// rate) and the per-endpoint queue (sized to window, go-coap drops requests
// beyond it).
func startPlainCoAP(window int) (*plainServer, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	l := coapnet.NewUDPConn("udp", conn)
	srv := udp.NewServer(options.WithHandlerFunc(func(w *responsewriter.ResponseWriter[*client.Conn], _ *pool.Message) {
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	}), options.WithReceivedMessageQueueSize(max(16, 2*window)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	return &plainServer{addr: l.LocalAddr().String(), stop: func() error {
		srv.Stop()
		err := l.Close()
		<-done
		return err
	}}, nil
}

// allowAll is a mochi hook that lets every client connect, publish and
// subscribe, and does nothing else (mochi's auth.AllowHook, without its
// package's dependencies).
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

// startPlainMochi serves, on a free loopback port, the MQTT broker the
// gateway embeds (mochi-mqtt) with nothing but an allow-all hook: what
// mochi itself costs per message, the floor under the gateway's own broker.
func startPlainMochi() (*plainServer, error) {
	port, err := gwFreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("bench: mochi: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "bench", Address: addr})); err != nil {
		return nil, fmt.Errorf("bench: mochi: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("bench: mochi: %w", err)
	}
	return &plainServer{addr: addr, stop: srv.Close}, nil
}
