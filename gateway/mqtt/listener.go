package mqtt

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// listener is a mochi listener over a net.Listener that bounds what a
// connection costs before it has authenticated, which mochi does not: every
// accepted connection gets a deadline for its CONNECT (mochi replaces it with
// the keepalive deadline once the CONNECT is taken), the open connections are
// capped, and Close closes them all, those still waiting for a CONNECT too.
type listener struct {
	id             string
	ln             net.Listener
	connectTimeout time.Duration
	log            *slog.Logger
	stats          *counters
	slots          chan struct{} // one per open connection
	disconnect     func()        // called by Close to end the sessions

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // connection goroutines
}

var _ listeners.Listener = (*listener)(nil)

// newListener serves ln; it accepts at most maxConns connections at a time.
func newListener(ln net.Listener, maxConns int, connectTimeout time.Duration, log *slog.Logger, stats *counters) *listener {
	return &listener{
		id:             "thingnet-mqtt",
		ln:             ln,
		connectTimeout: connectTimeout,
		log:            log,
		stats:          stats,
		slots:          make(chan struct{}, maxConns),
		conns:          make(map[net.Conn]struct{}),
	}
}

func (l *listener) ID() string              { return l.id }
func (l *listener) Address() string         { return l.ln.Addr().String() }
func (l *listener) Protocol() string        { return "tcp" }
func (l *listener) Init(*slog.Logger) error { return nil } // already listening: Start reports a bad address

// Serve accepts connections until Close and hands each to establish
// (mochi's EstablishConnection) in its own goroutine.
func (l *listener) Serve(establish listeners.EstablishFn) {
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("mqtt: accept failed; retrying", "error", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		select {
		case l.slots <- struct{}{}:
		default:
			l.stats.connRefused.Add(RefusedServerBusy)
			l.log.Debug("mqtt: too many open connections; closing a new one", "remote", conn.RemoteAddr())
			_ = conn.Close()
			continue
		}
		if !l.track(conn) {
			<-l.slots
			_ = conn.Close()
			return
		}
		_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
		go l.handle(conn, establish)
	}
}

func (l *listener) handle(conn net.Conn, establish listeners.EstablishFn) {
	defer l.wg.Done()
	defer func() { <-l.slots }()
	defer l.untrack(conn)
	err := establish(l.id, conn)
	switch {
	case err == nil:
	case errors.Is(err, packets.ErrPacketTooLarge):
		l.stats.tooLarge.Add(1)
		l.log.Debug("mqtt: connection closed: packet too large", "remote", conn.RemoteAddr())
	case errors.Is(err, packets.ErrServerBusy):
		l.stats.connRefused.Add(RefusedServerBusy)
		l.log.Debug("mqtt: connection refused: too many clients", "remote", conn.RemoteAddr())
	default:
		l.log.Debug("mqtt: connection ended", "remote", conn.RemoteAddr(), "error", err)
	}
	_ = conn.Close()
}

// track registers conn, or reports false once the listener is closed.
func (l *listener) track(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[conn] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *listener) untrack(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, conn)
}

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops accepting, says goodbye to the sessions (disconnect), closes
// every connection still open (those that never sent a CONNECT included)
// and waits for their goroutines, so none can start after it: mochi then
// waits for its own client goroutines, which have all ended.
//
// mochi's closeClients is not called: its Clients.GetByListener takes the
// clients' read lock twice, which deadlocks when a client that is leaving
// asks for the write lock in between.
func (l *listener) Close(listeners.CloseFn) {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if already {
		return
	}
	_ = l.ln.Close()
	if l.disconnect != nil {
		l.disconnect()
	}
	l.mu.Lock()
	for conn := range l.conns {
		_ = conn.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
