package coap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// session is the server's state for one client endpoint (address and
// port): the go-coap connection that deduplicates its requests, caches the
// answers for retransmissions and assembles its block-wise uploads. It
// implements go-coap's client.Session over the server's socket; the server,
// not go-coap, reads the socket and decides which datagrams reach it.
type session struct {
	srv    *Server
	addr   netip.AddrPort // where answers go
	raddr  *net.UDPAddr
	ip     string // the client's address, as given to Ingest
	cc     *client.Conn
	ctx    atomic.Pointer[context.Context]
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	// credit is the bytes the session may still send: the amplification
	// bound times what it received, less what it sent.
	credit atomic.Int64

	mu       sync.Mutex
	onClose  []func()
	lastSeen time.Time
	inFlight map[int32]*turn // requests being handled, by message id
	last     *turn           // the latest request's turn
	transfer transfer
}

// turn is a request's place in its session's order: the requests of one
// endpoint reach the Ingestor in the order go-coap dispatched them (the
// order their datagrams arrived), although each is handled on a goroutine
// of its own. A request waits for prev to close before it submits its
// reading, and closes its own channel once it has (or once it is done).
type turn struct {
	prev <-chan struct{} // closed when the request before it submitted; nil: none
	mine chan struct{}
	once sync.Once
}

// wait blocks until the request before t submitted, or ctx is done.
func (t *turn) wait(ctx context.Context) error {
	if t.prev == nil {
		return nil
	}
	select {
	case <-t.prev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release lets the next request submit. Idempotent.
func (t *turn) release() { t.once.Do(func() { close(t.mine) }) }

// transfer is a session's block-wise upload, holding one of the server's
// MaxTransfers slots.
type transfer struct {
	active bool
	last   time.Time // the last block
	blocks int       // later blocks it may still send
}

func newSession(srv *Server, addr netip.AddrPort, ip netip.Addr, now time.Time) *session {
	ctx, cancel := context.WithCancel(srv.ctx)
	s := &session{
		srv: srv, addr: addr, raddr: net.UDPAddrFromAddrPort(addr), ip: ip.String(),
		cancel: cancel, done: make(chan struct{}),
		lastSeen: now, inFlight: map[int32]*turn{},
	}
	s.ctx.Store(&ctx)
	return s
}

// received notes a datagram of n bytes handed to the session.
func (s *session) received(n int, now time.Time) {
	s.credit.Add(int64(amplification * n))
	s.mu.Lock()
	s.lastSeen = now
	s.mu.Unlock()
}

// begin marks request mid as being handled and gives it the next turn;
// it reports false if it already is (a retransmission, to be dropped).
func (s *session) begin(mid int32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inFlight[mid]; ok {
		return false
	}
	t := &turn{mine: make(chan struct{})}
	if s.last != nil {
		t.prev = s.last.mine
	}
	s.last = t
	s.inFlight[mid] = t
	return true
}

// turnOf returns the turn of request mid, if it is being handled.
func (s *session) turnOf(mid int32) (*turn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.inFlight[mid]
	return t, ok
}

// end marks request mid as handled, and lets the next one submit.
func (s *session) end(mid int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.inFlight[mid]; ok {
		t.release()
		delete(s.inFlight, mid)
	}
	s.lastSeen = s.srv.now()
}

// idle reports whether the session has handled nothing since before t.
func (s *session) idle(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inFlight) == 0 && s.lastSeen.Before(t)
}

// shutdown ends the session: its go-coap connection stops, its handlers'
// contexts are cancelled, its upload slot is given back. Idempotent.
func (s *session) shutdown() {
	s.once.Do(func() {
		s.cancel()
		close(s.done)
		s.mu.Lock()
		fs := s.onClose
		s.onClose = nil
		s.mu.Unlock()
		for _, f := range fs {
			f()
		}
		s.srv.endTransfer(s)
	})
}

// The rest implements client.Session for go-coap.

func (s *session) Context() context.Context { return *s.ctx.Load() }

// Close stops the session's processing; the server removes it from its
// table (and ends it) when it next sees it.
func (s *session) Close() error {
	s.cancel()
	return nil
}

func (s *session) MaxMessageSize() uint32 { return maxDatagram }
func (s *session) RemoteAddr() net.Addr   { return s.raddr }
func (s *session) LocalAddr() net.Addr    { return s.srv.conn.LocalAddr() }
func (s *session) NetConn() net.Conn      { return s.srv.conn }
func (s *session) Done() <-chan struct{}  { return s.done }

func (s *session) AddOnClose(f client.EventFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onClose = append(s.onClose, f)
}

func (s *session) SetContextValue(key, val any) {
	ctx := context.WithValue(s.Context(), key, val)
	s.ctx.Store(&ctx)
}

// WriteMessage sends a message go-coap built for the endpoint: an answer
// to one of its requests. go-coap answers a non-confirmable request with a
// confirmable message that it never retransmits; it is sent as a NON
// instead (RFC 7252 §5.2.3: the answer to a NON request SHOULD be a NON),
// so that the client sends no ACK the server would not use.
func (s *session) WriteMessage(m *pool.Message) error {
	if m.Type() == message.Confirmable && m.Code() >= codes.Created {
		m.SetType(message.NonConfirmable)
	}
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		return fmt.Errorf("coap: encoding an answer to %s: %w", s.addr, err)
	}
	return s.write(b)
}

// write sends datagram b to the endpoint. It is the last check of the
// amplification bound: a session never sends more than amplification
// times the bytes it received. (Every answer is far smaller than that; see
// doc.go. A datagram that would break the bound is dropped and logged as
// the bug it would be.)
func (s *session) write(b []byte) error {
	if s.credit.Add(-int64(len(b))) < 0 {
		s.credit.Add(int64(len(b)))
		s.srv.stats.dropped.Add(DroppedAmplification)
		s.srv.log.Error("coap: answer dropped: it would exceed the amplification bound", "client", s.addr, "bytes", len(b))
		return nil
	}
	if _, err := s.srv.conn.WriteToUDPAddrPort(b, s.addr); err != nil {
		return fmt.Errorf("coap: writing to %s: %w", s.addr, err)
	}
	return nil
}

func (s *session) WriteMulticastMessage(*pool.Message, *net.UDPAddr, ...coapnet.MulticastOption) error {
	return errors.New("coap: the readings server sends no multicast")
}

// Run is go-coap's read loop for a session that owns its socket; the
// server reads its shared socket itself, so it is never called.
func (s *session) Run(*client.Conn) error {
	return errors.New("coap: a server session is fed by the server's read loop, not run")
}
