package coap

import (
	"net/netip"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/thingnet/thingnet/gateway/edge"
)

// decoder holds the read loop's reusable buffers.
type decoder struct {
	opts  message.Options
	reply [maxReplySize]byte
}

func newDecoder() *decoder { return &decoder{opts: make(message.Options, 0, maxOptions)} }

// datagram handles one datagram b from endpoint from, in the read loop.
// Cheapest first: decode the CoAP header and options (never the payload),
// classify, ask the Limiter, and only then hand an upload to the
// endpoint's session. Everything refused here is answered by the server
// itself with no payload, so the answer is never larger than
// amplification times the request (checked by reply).
func (s *Server) datagram(d *decoder, b []byte, from netip.AddrPort) {
	s.stats.datagrams.Add(1)
	now := s.now()
	ip := from.Addr().Unmap().WithZone("")
	key := edge.SourceKey(ip)
	m := message.Message{Options: d.opts[:0]}
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		s.malformed(d, b, from, key)
		return
	}
	v := classify(&m, s.cfg.MaxPayload)

	// A later block of an upload the Limiter admitted as a whole is not
	// charged again: the upload's block budget bounds it.
	var known, free bool
	if v.act == actForward && v.block.continues() {
		ss := s.lookup(from)
		known, free = ss != nil, s.continueTransfer(ss, now)
	}
	if !free && !s.cfg.Limits.AllowMessage(key, s.cost(&m, v, len(b))) {
		if isRequest(&m) {
			s.stats.refused.Add(RefusedRateLimited)
			s.reply(d, &m, len(b), from, codes.TooManyRequests, s.maxAgeOpt)
		} else {
			s.stats.dropped.Add(DroppedRateLimited)
		}
		return
	}

	switch v.act {
	case actDrop:
		s.stats.dropped.Add(v.reason)
	case actReset:
		s.stats.dropped.Add(v.reason)
		s.send(encodeReset(d.reply[:], uint16(m.MessageID)), len(b), from)
	case actReply:
		s.stats.refused.Add(v.reason)
		if !v.silent {
			opt := message.Option{}
			if v.code == codes.RequestEntityTooLarge {
				opt = s.size1Opt // RFC 7959 §2.9.3: the largest size the server takes
			}
			s.reply(d, &m, len(b), from, v.code, opt)
		}
	case actForward:
		if v.block.continues() && !known {
			// No session, so no upload it could belong to, and no cached
			// answer to resend (RFC 7959 §2.9.2).
			s.stats.refused.Add(RefusedIncomplete)
			s.reply(d, &m, len(b), from, codes.RequestEntityIncomplete, message.Option{})
			return
		}
		s.forward(d, &m, v, b, from, ip, now)
	}
}

// cost is what the Limiter is asked to charge for datagram m of n bytes: a
// request refused for its size costs a message but no bytes (so the
// Limiter's own size bound cannot turn its 4.13 into a 4.29), the first
// block of an upload costs the upload's announced size.
func (s *Server) cost(m *message.Message, v verdict, n int) int {
	switch {
	case v.act == actReply && v.code == codes.RequestEntityTooLarge:
		return 0
	case v.block.starts():
		if size1, err := m.Options.GetUint32(message.Size1); err == nil && int64(size1) > int64(n) {
			return int(size1) // at most MaxPayload: classify refused more
		}
	}
	return n
}

// forward hands upload m (datagram b) to the session of its endpoint.
func (s *Server) forward(d *decoder, m *message.Message, v verdict, b []byte, from netip.AddrPort, ip netip.Addr, now time.Time) {
	var ss *session
	if !v.block.starts() || s.transfers.Load() < int64(s.cfg.MaxTransfers) || s.lookup(from) != nil {
		ss = s.session(from, ip, now) // (no session for an upload that would be refused anyway)
	}
	if ss == nil {
		s.stats.refused.Add(RefusedBusy) // MaxSessions endpoints or MaxTransfers uploads, or closing
		s.reply(d, m, len(b), from, codes.ServiceUnavailable, s.maxAgeOpt)
		return
	}
	switch {
	case v.block.starts():
		if !s.beginTransfer(ss, v.block, now) {
			s.stats.refused.Add(RefusedBusy) // MaxTransfers uploads
			s.reply(d, m, len(b), from, codes.ServiceUnavailable, s.maxAgeOpt)
			return
		}
	case v.block.continues() && !v.block.more:
		s.endTransfer(ss) // the last block: go-coap completes (or drops) the upload now
	}
	ss.received(len(b), now)
	if err := ss.cc.Process(nil, b); err != nil {
		s.log.Debug("coap: go-coap refused a datagram", "client", from, "error", err)
	}
}

// malformed handles a datagram that is not CoAP: it is dropped, but a
// confirmable message with a readable header gets a Reset (RFC 7252 §4.2),
// if the Limiter allows its source.
func (s *Server) malformed(d *decoder, b []byte, from netip.AddrPort, key string) {
	if !s.cfg.Limits.AllowMessage(key, len(b)) {
		s.stats.dropped.Add(DroppedRateLimited)
		return
	}
	s.stats.dropped.Add(DroppedMalformed)
	if len(b) >= 4 && b[0]>>6 == 1 && message.Type((b[0]>>4)&3) == message.Confirmable {
		s.send(encodeReset(d.reply[:], uint16(b[2])<<8|uint16(b[3])), len(b), from)
	}
}

// reply answers request m (reqLen bytes) from the read loop, with code, no
// payload, and opt as its only option (if its ID is not 0).
func (s *Server) reply(d *decoder, m *message.Message, reqLen int, from netip.AddrPort, code codes.Code, opt message.Option) {
	b, err := encodeReply(d.reply[:], m, code, opt)
	if err != nil {
		s.log.Error("coap: cannot answer", "client", from, "error", err)
		return
	}
	s.send(b, reqLen, from)
}

// send writes answer b to a request of reqLen bytes, unless it would break
// the amplification bound (which the answers built here never do).
func (s *Server) send(b []byte, reqLen int, to netip.AddrPort) {
	if !within(len(b), reqLen) {
		s.stats.dropped.Add(DroppedAmplification)
		s.log.Error("coap: answer dropped: it would exceed the amplification bound", "client", to, "bytes", len(b), "request", reqLen)
		return
	}
	if _, err := s.conn.WriteToUDPAddrPort(b, to); err != nil && s.ctx.Err() == nil {
		s.log.Debug("coap: answering failed", "client", to, "error", err)
	}
}
