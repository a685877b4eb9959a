package coap

import (
	"net/netip"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options/config"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// Bounds of a session's go-coap connection that are not worth a Config
// field.
const (
	maxDatagram         = 65535 // bytes in a UDP datagram, at most
	queuedPerSession    = 64    // requests go-coap queues for a session's dispatcher
	pendingPerSession   = 256   // requests go-coap tracks for in-flight deduplication
	transfersPerSession = 1     // block-wise uploads a session may assemble at once
)

// session returns the live session of endpoint addr, creating it if
// needed; nil if MaxSessions sessions exist already.
func (s *Server) session(addr netip.AddrPort, ip netip.Addr, now time.Time) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[addr]; ss != nil {
		if ss.Context().Err() == nil {
			return ss
		}
		delete(s.sessions, addr) // go-coap closed it (a write failed)
		ss.shutdown()
	}
	if s.closed || len(s.sessions) >= s.cfg.MaxSessions {
		return nil
	}
	ss := newSession(s, addr, ip, now)
	cfg := client.DefaultConfig
	cfg.MessagePool = s.pool
	cfg.Errors = func(err error) { s.log.Debug("coap: go-coap", "client", addr, "error", err) }
	cfg.BlockwiseEnable = true
	cfg.BlockwiseSZX = blockwise.SZX1024
	cfg.BlockwiseTransferTimeout = s.cfg.BlockwiseTimeout
	cfg.ReceivedMessageQueueSize = queuedPerSession
	cfg.MaxPendingMessages = pendingPerSession
	cfg.Handler = func(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) { s.handle(ss, w, r) }
	cfg.ProcessReceivedMessage = func(r *pool.Message, cc *client.Conn, next config.HandlerFunc[*client.Conn]) {
		s.dispatch(ss, r, cc, next)
	}
	ss.cc = client.NewConnWithOpts(ss, &cfg, client.WithBlockWise(func(cc *client.Conn) *blockwise.BlockWise[*client.Conn] {
		bw := blockwise.New(cc, s.cfg.BlockwiseTimeout, cfg.Errors,
			func(message.Token) (*pool.Message, bool) { return nil, false }) // the server sends no requests
		bw.SetReceivingMessagesCacheMaxEntries(transfersPerSession)
		bw.SetRollingExpiration(true)
		bw.SetMaxReceiveBodySize(int64(s.cfg.MaxPayload))
		return bw
	}))
	s.sessions[addr] = ss
	return ss
}

// sweep ends the sessions idle since before now-SessionIdle or closed by
// go-coap, gives back the upload slots of stalled uploads, and lets
// go-coap expire its caches.
func (s *Server) sweep(now time.Time) {
	var ended []*session
	s.mu.Lock()
	for a, ss := range s.sessions {
		if ss.Context().Err() != nil || ss.idle(now.Add(-s.cfg.SessionIdle)) {
			delete(s.sessions, a)
			ended = append(ended, ss)
		}
	}
	live := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		live = append(live, ss)
	}
	s.mu.Unlock()
	for _, ss := range ended {
		ss.shutdown()
	}
	for _, ss := range live {
		ss.cc.CheckExpirations(now)
		ss.mu.Lock()
		stalled := ss.transfer.active && now.Sub(ss.transfer.last) > s.cfg.BlockwiseTimeout
		ss.mu.Unlock()
		if stalled {
			s.endTransfer(ss)
		}
	}
}

// beginTransfer gives ss an upload slot, if it has none; it reports false
// when all MaxTransfers slots are taken.
func (s *Server) beginTransfer(ss *session, b block, now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.transfer.active {
		if s.transfers.Add(1) > int64(s.cfg.MaxTransfers) {
			s.transfers.Add(-1)
			return false
		}
	}
	// Later blocks it may send: enough for MaxPayload, twice over for
	// retransmissions, and a few more.
	ss.transfer = transfer{active: true, last: now, blocks: 2*(s.cfg.MaxPayload/b.size) + 8}
	return true
}

// continueTransfer counts a later block of ss's upload; it reports false
// if ss has no upload open or the upload has used up its blocks, in which
// case the block is charged to the Limiter like any datagram.
func (s *Server) continueTransfer(ss *session, now time.Time) bool {
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.transfer.active || ss.transfer.blocks <= 0 {
		return false
	}
	ss.transfer.blocks--
	ss.transfer.last = now
	return true
}

// endTransfer gives back ss's upload slot, if it has one.
func (s *Server) endTransfer(ss *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.transfer.active {
		ss.transfer = transfer{}
		s.transfers.Add(-1)
	}
}

// lookup returns the live session of addr, or nil.
func (s *Server) lookup(addr netip.AddrPort) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[addr]
	if ss == nil || ss.Context().Err() != nil {
		return nil
	}
	return ss
}
