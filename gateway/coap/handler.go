package coap

import (
	"context"
	"errors"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options/config"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/thingnet/thingnet/gateway/edge"
)

// dispatch is go-coap's ProcessReceivedMessage for session ss: go-coap
// calls it on the session's loop for each request it did not drop as a
// duplicate. It hands the request to a goroutine of its own, so that a
// slow Ingest holds back neither the session nor the server's read loop,
// and bounds those goroutines to MaxInFlight: beyond it the request is
// answered 5.03 at once. Each request also takes its turn in the session
// here, on the session's loop, so the goroutines submit the readings of
// one endpoint in the order its requests arrived (store).
//
// go-coap forgets a request as "in flight" when dispatch returns, so
// dispatch keeps its own set: a retransmission of a request still being
// handled is dropped (the client gets the answer when it is ready). Once
// the handler returned, go-coap has cached the answer under the message id
// and answers retransmissions from that cache without calling the handler:
// a request is never ingested twice.
func (s *Server) dispatch(ss *session, r *pool.Message, cc *client.Conn, next config.HandlerFunc[*client.Conn]) {
	if r.Code() < codes.GET || r.Code() > 31 {
		cc.ProcessReceivedMessageWithHandler(r, next) // not a request (none is forwarded): go-coap's business
		return
	}
	mid := r.MessageID()
	if !ss.begin(mid) {
		s.stats.dropped.Add(DroppedDuplicate)
		cc.ReleaseMessage(r)
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		ss.end(mid)
		s.stats.refused.Add(RefusedBusy)
		s.answer(ss, r, codes.ServiceUnavailable, s.maxAgeOpt)
		cc.ReleaseMessage(r)
		return
	}
	if !s.track() {
		<-s.slots
		ss.end(mid)
		cc.ReleaseMessage(r)
		return
	}
	s.spawn(func() {
		defer s.wg.Done()
		defer func() { <-s.slots }()
		defer ss.end(mid)
		// Runs go-coap's handling: the answer cache, block-wise assembly,
		// then handle; it sends handle's answer, piggybacked on the ACK of a
		// confirmable request.
		cc.ProcessReceivedMessageWithHandler(r, next)
	})
}

// workerIdle is how long a handler goroutine waits for another request
// before it ends.
const workerIdle = 10 * time.Second

// spawn runs request handler f on a goroutine: one that finished a request
// and waits for the next if there is one, else a new one. Reusing them
// keeps their stacks, which go-coap's deep handling grows: with a goroutine
// per request, growing them (runtime.newstack, copystack) was 5% of the
// process's CPU under load (CPU profile, issue 19). A task counted by
// track holds the server open, so the new goroutine may join s.wg.
func (s *Server) spawn(f func()) {
	select {
	case s.idle <- f:
		return
	default:
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(workerIdle)
		defer t.Stop()
		for {
			f()
			t.Reset(workerIdle)
			select {
			case f = <-s.idle:
			case <-t.C:
				return
			case <-s.ctx.Done():
				return
			}
		}
	}()
}

// answer sends the answer code to request r of ss itself, with no payload
// and opt as its only option (if its ID is not 0).
func (s *Server) answer(ss *session, r *pool.Message, code codes.Code, opt message.Option) {
	req := message.Message{Token: r.Token(), Type: r.Type(), MessageID: r.MessageID()}
	var buf [maxReplySize]byte
	b, err := encodeReply(buf[:], &req, code, opt)
	if err == nil {
		err = ss.write(b)
	}
	if err != nil {
		s.log.Debug("coap: answering failed", "client", ss.addr, "code", code, "error", err)
	}
}

// handle is the readings resource, called by go-coap with a complete
// upload (a single datagram, or Block1 blocks assembled). Only POSTs to
// PathShort or PathLong within the size bound reach it (classify). Its
// answer is 2.04 Changed once the Ingestor answered nil or edge.ErrDuplicate,
// that is once the reading is durably stored, and never before: go-coap
// sends the answer only after handle returned.
func (s *Server) handle(ss *session, w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	code, opt := s.ingest(ss, r)
	var opts message.Options
	if opt.ID != 0 {
		opts = message.Options{opt}
	}
	if err := w.SetResponse(code, message.TextPlain, nil, opts...); err != nil {
		s.log.Debug("coap: setting the answer failed", "client", ss.addr, "code", code, "error", err)
	}
}

// store gives payload, of request mid of ss, to the Ingestor and returns
// once it is stored or refused. With a pipelining Ingestor (the gateway) it
// submits the reading in its session's turn, so that the requests one
// endpoint keeps in flight are stored in the order they arrived (a device's
// sequence numbers must rise), while their verification and fsync are
// shared with everything else in flight: a client with several
// confirmable POSTs outstanding gets them stored together.
func (s *Server) store(ctx context.Context, ss *session, mid int32, payload []byte) error {
	p, ok := s.cfg.Ingest.(edge.Pipeliner)
	if !ok {
		return s.cfg.Ingest.Ingest(ctx, "", payload, ss.ip)
	}
	t, ok := ss.turnOf(mid)
	if !ok {
		// Not a request dispatch admitted (cannot happen for a single
		// datagram; a block-wise upload is answered under its last block's
		// id): no turn to keep.
		t = &turn{mine: make(chan struct{})}
	}
	if err := t.wait(ctx); err != nil {
		return err
	}
	done := p.Submit(ctx, "", payload, ss.ip)
	t.release()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err() // it may still be stored; a resend is then answered 2.04
	}
}

// ingest reads r's payload, gives it to the Ingestor, counts the outcome
// and returns the answer's code and option.
func (s *Server) ingest(ss *session, r *pool.Message) (codes.Code, message.Option) {
	none := message.Option{}
	if size, err := r.BodySize(); err == nil && size > int64(s.cfg.MaxPayload) {
		s.stats.refused.Add(RefusedTooLarge)
		return codes.RequestEntityTooLarge, s.size1Opt
	}
	payload, err := r.ReadBody()
	if err != nil || len(payload) == 0 {
		s.stats.refused.Add(RefusedBadRequest)
		return codes.BadRequest, none
	}
	ctx, cancel := context.WithTimeout(ss.Context(), s.cfg.IngestTimeout)
	err = s.store(ctx, ss, r.MessageID(), payload)
	cancel()
	switch {
	case err == nil:
		s.stats.accepted.Add(1)
		return codes.Changed, none
	case errors.Is(err, edge.ErrDuplicate):
		s.stats.accepted.Add(1)
		s.stats.duplicates.Add(1)
		return codes.Changed, none
	case errors.Is(err, edge.ErrRejected):
		s.stats.refused.Add(RefusedRejected)
		s.log.Debug("coap: reading rejected", "client", ss.addr, "error", err)
		return codes.BadRequest, none
	case errors.Is(err, edge.ErrOverloaded), errors.Is(err, context.DeadlineExceeded), ss.Context().Err() != nil:
		s.stats.refused.Add(RefusedOverloaded)
		return codes.ServiceUnavailable, s.maxAgeOpt
	default:
		s.stats.refused.Add(RefusedError)
		s.log.Warn("coap: storing a reading failed", "client", ss.addr, "error", err)
		return codes.InternalServerError, none
	}
}
