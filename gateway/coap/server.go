package coap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// Bounds that are not worth a Config field.
const (
	closeTimeout  = 5 * time.Second // Close gives up waiting for handlers after this
	sweepInterval = time.Second     // how often idle sessions and stalled uploads are looked for
	maxOptions    = 32              // options a request may carry

	readErrorPause = 10 * time.Millisecond // after a failed read of the socket

	// socketBuffer is the receive buffer asked for the server's socket (the
	// kernel caps it at net.core.rmem_max): with the default (~200 KiB, a
	// few hundred small datagrams) a burst of clients with several requests
	// in flight overflowed it, and a dropped request retransmitted after
	// later ones were stored is refused as a replay.
	socketBuffer = 4 << 20
)

// Server is a running CoAP server for readings.
type Server struct {
	cfg    Config
	conn   *net.UDPConn
	log    *slog.Logger
	stats  *counters
	pool   *pool.Pool
	ctx    context.Context
	cancel context.CancelFunc

	slots     chan struct{} // one per request being handled (MaxInFlight)
	idle      chan func()   // handler goroutines waiting for a request (spawn)
	transfers atomic.Int64  // block-wise uploads holding a slot (MaxTransfers)

	maxAgeOpt, size1Opt message.Option // options of 5.03/4.29 and of 4.13 answers

	mu       sync.Mutex
	closed   bool
	sessions map[netip.AddrPort]*session
	wg       sync.WaitGroup // the read loop, the sweeper and the handlers

	closeOnce sync.Once
	closeErr  error
}

// Start listens on c.Listen and serves CoAP until Close.
func Start(c Config) (*Server, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	addr, err := net.ResolveUDPAddr("udp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("coap: listen address %q: %w", c.Listen, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("coap: listen on %s: %w", c.Listen, err)
	}
	if err := conn.SetReadBuffer(socketBuffer); err != nil {
		c.Logger.Warn("coap: cannot enlarge the socket's receive buffer", "error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: c, conn: conn, log: c.Logger.With("component", "coap"), stats: newCounters(),
		pool: pool.New(1024, 2048), ctx: ctx, cancel: cancel,
		slots:     make(chan struct{}, c.MaxInFlight),
		idle:      make(chan func()),
		maxAgeOpt: uintOption(message.MaxAge, c.maxAge()),
		size1Opt:  uintOption(message.Size1, uint32(c.MaxPayload)),
		sessions:  map[netip.AddrPort]*session{},
	}
	s.wg.Add(2)
	go s.readLoop()
	go s.sweeper()
	s.log.Info("coap: server listening", "addr", s.Addr())
	return s, nil
}

// Addr returns the host:port of the server's UDP socket.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	sessions := len(s.sessions)
	s.mu.Unlock()
	return Stats{
		Datagrams:  s.stats.datagrams.Load(),
		Accepted:   s.stats.accepted.Load(),
		Duplicates: s.stats.duplicates.Load(),
		Refused:    s.stats.refused.Snapshot(),
		Dropped:    s.stats.dropped.Snapshot(),
		Sessions:   sessions,
		Transfers:  int(s.transfers.Load()),
		InFlight:   len(s.slots),
	}
}

// Close stops the server: it closes the socket, cancels the Ingest calls
// in progress (their readings are not acknowledged) and ends every
// session. It waits at most 5 s for the handlers, and is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		sessions := s.sessions
		s.sessions = map[netip.AddrPort]*session{}
		s.mu.Unlock()
		s.cancel()
		if err := s.conn.Close(); err != nil {
			s.closeErr = fmt.Errorf("coap: close socket: %w", err)
		}
		for _, ss := range sessions {
			ss.shutdown()
		}
		done := make(chan struct{})
		go func() {
			s.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
			s.log.Info("coap: server stopped")
		case <-time.After(closeTimeout):
			s.closeErr = fmt.Errorf("coap: close: handlers still busy after %s (an Ingestor that ignores its context?)", closeTimeout)
		}
	})
	return s.closeErr
}

// track counts a handler goroutine about to start; it reports false once
// the server is closing.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) now() time.Time { return time.Now() }

// readLoop reads the socket until it is closed, handling each datagram in
// turn: only cheap work happens here (see datagram.go); Ingest runs in the
// handlers' goroutines.
func (s *Server) readLoop() {
	defer s.wg.Done()
	buf := make([]byte, maxDatagram+1)
	dec := newDecoder()
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			s.log.Warn("coap: reading the socket failed", "error", err)
			time.Sleep(readErrorPause) // a persistent error must not spin
			continue
		}
		s.datagram(dec, buf[:n], from)
	}
}

// sweeper runs sweep every sweepInterval until Close.
func (s *Server) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(max(min(sweepInterval, s.cfg.SessionIdle/2), 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.sweep(now)
		}
	}
}
