package mqtt

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
)

// pipeline is one client's QoS 0 and 1 readings submitted to the
// Ingestor and not yet answered, in the order they came (see OnPublish).
// The client's read goroutine fills it; its own goroutine (settle) takes
// the answers in order and acknowledges, refuses, retains and delivers.
type pipeline struct {
	q       chan submitted // capacity receiveMaximum: a full one blocks the reader
	pending sync.WaitGroup // readings in q or being answered
}

// submitted is one PUBLISH handed to the Ingestor, and where its answer comes.
type submitted struct {
	pk  packets.Packet
	res <-chan error
}

// pipeline submits cl's PUBLISH pk, or refuses it, and queues its answer in
// cl's pipeline, which it starts with cl's first reading. It blocks while the
// pipeline is full or the gateway's queue is (back-pressure).
func (h *hook) pipeline(cl *mochi.Client, pk packets.Packet) {
	v, ok := h.pipelines.Load(cl)
	if !ok {
		// Only cl's read goroutine stores and (in OnDisconnect) deletes
		// cl's pipeline: no other can have created it meanwhile.
		p := &pipeline{q: make(chan submitted, receiveMaximum)}
		h.pipelines.Store(cl, p)
		h.wg.Add(1)
		go h.settle(cl, p)
		v = p
	}
	p := v.(*pipeline)
	var res <-chan error
	if err := h.checkPublish(cl, pk); err != nil {
		res = failed(err)
	} else {
		ip, _ := edge.Source(cl.Net.Remote)
		ctx, cancel := h.ingestContext()
		res = h.pipe.Submit(ctx, cl.ID, pk.Payload, ip)
		cancel()
	}
	p.pending.Add(1)
	select {
	case p.q <- submitted{pk: pk, res: res}:
	case <-h.ctx.Done(): // shutting down: not acknowledged
		p.pending.Done()
	}
	extendDeadline(cl)
}

// failed is an answer that is known already.
func failed(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

// settle answers cl's readings in the order they came, each once the
// Ingestor answered it (or IngestTimeout passed: overloaded): a stored
// QoS 1 reading gets its PUBACK, then is retained if asked and delivered
// to the subscribers; an already stored one gets its PUBACK only; a refused
// one is refused as OnPublish would. It ends when cl disconnected
// (OnDisconnect closes the pipeline) or the broker closes, whose pending
// readings are not acknowledged.
//
// The PUBACKs of readings answered together (a batch stores many of a
// connection's readings at once) go out in one write: one syscall per
// PUBACK was 4% of the gateway's CPU with one-reading envelopes (CPU
// profile, issue 19). They are written before settle waits for anything
// and before any refusal, so the PUBACKs keep the PUBLISHes' order and
// none waits for a later reading.
func (h *hook) settle(cl *mochi.Client, p *pipeline) {
	defer h.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var acks pubacks
	defer h.flush(cl, p, &acks)
	for {
		var s submitted
		var ok bool
		select {
		case s, ok = <-p.q:
		default:
			h.flush(cl, p, &acks) // nothing more queued: send what is answered
			s, ok = <-p.q
		}
		if !ok {
			return
		}
		var err error
		select {
		case err = <-s.res:
		default:
			h.flush(cl, p, &acks) // not answered yet: do not hold the others back
			timer.Reset(h.cfg.IngestTimeout)
			select {
			case err = <-s.res:
			case <-timer.C:
				err = edge.ErrOverloaded
			case <-h.ctx.Done():
				p.pending.Done()
				continue // drained without answers until OnDisconnect closes q
			}
			timer.Stop()
		}
		if err != nil && !errors.Is(err, edge.ErrDuplicate) {
			h.flush(cl, p, &acks) // a refusal writes its own answer: after the earlier ones
		}
		_, verdict := h.answer(cl, s.pk, err)
		switch {
		case verdict == nil:
			acks.add(s.pk)
			h.relay(s.pk)
		case errors.Is(verdict, packets.CodeSuccessIgnore):
			acks.add(s.pk)
		}
		acks.settled++ // p.pending.Done once its PUBACK is written (OnPublish waits for it)
	}
}

// pubacks are PUBACKs to write together, and the readings settled with them.
type pubacks struct {
	b       []byte
	settled int
}

// add appends the PUBACK of a stored QoS 1 reading: 0x40, remaining length
// 2, the packet id (for MQTT 5 too: reason 0 and no properties may be left
// out, 3.4.2.1).
func (a *pubacks) add(pk packets.Packet) {
	if pk.FixedHeader.Qos != 1 {
		return
	}
	a.b = append(a.b, packets.Puback<<4, 2, byte(pk.PacketID>>8), byte(pk.PacketID))
}

// flush writes the PUBACKs gathered in a, in one write, and marks their
// readings settled.
func (h *hook) flush(cl *mochi.Client, p *pipeline, a *pubacks) {
	if len(a.b) > 0 {
		if err := writeRaw(cl, a.b); err != nil {
			h.log.Debug("mqtt: writing PUBACKs failed", "device", cl.ID, "error", err)
		}
		a.b = a.b[:0]
	}
	for ; a.settled > 0; a.settled-- {
		p.pending.Done()
	}
}

// writeRaw writes encoded packets b to cl's connection under cl's lock, the
// one mochi's WritePacket holds (mochi encodes one packet per write and has
// no way to send several at once).
func writeRaw(cl *mochi.Client, b []byte) error {
	if cl.Closed() {
		return mochi.ErrConnectionClosed
	}
	cl.Lock()
	defer cl.Unlock()
	if cl.Net.Conn == nil {
		return nil
	}
	_, err := cl.Net.Conn.Write(b)
	return err
}

// relay has mochi retain (if asked) and deliver a stored reading, which it
// did not when OnPublish took it into a pipeline: it injects the PUBLISH
// from h.inline, an inline client of the broker's, which mochi lets past its
// ACL and inflight bookkeeping and whose PUBLISHes OnPublish passes through.
// Subscribers get it as from the server (a v5 "no local" subscription of
// the publishing device does not filter it out). A reading not to be
// retained while the broker has no subscription at all is not injected:
// there is nobody to deliver it to, and the injection (a copy of the packet
// and a walk of the topic index) was 1.7% of the gateway's CPU with
// one-reading envelopes (issue 19, part 2). The broker's own inline
// subscriptions are not counted: the gateway makes none.
func (h *hook) relay(pk packets.Packet) {
	if !pk.FixedHeader.Retain && atomic.LoadInt64(&h.server.Info.Subscriptions) == 0 {
		return
	}
	if err := h.server.InjectPacket(h.inline, pk); err != nil {
		h.log.Debug("mqtt: delivering a stored reading failed", "topic", pk.TopicName, "error", err)
	}
}

// closePipeline ends cl's pipeline once cl's read goroutine is done with it.
func (h *hook) closePipeline(cl *mochi.Client) {
	if v, ok := h.pipelines.LoadAndDelete(cl); ok {
		close(v.(*pipeline).q)
	}
}
