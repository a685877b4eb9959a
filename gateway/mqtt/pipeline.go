package mqtt

import (
	"errors"
	"sync"
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
func (h *hook) settle(cl *mochi.Client, p *pipeline) {
	defer h.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for s := range p.q {
		var err error
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
		_, verdict := h.answer(cl, s.pk, err)
		switch {
		case verdict == nil:
			h.acknowledge(cl, s.pk)
			h.relay(s.pk)
		case errors.Is(verdict, packets.CodeSuccessIgnore):
			h.acknowledge(cl, s.pk)
		}
		p.pending.Done()
	}
}

// acknowledge sends the PUBACK of a stored QoS 1 reading.
func (h *hook) acknowledge(cl *mochi.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos != 1 {
		return
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
	if err := cl.WritePacket(ack); err != nil {
		h.log.Debug("mqtt: writing a PUBACK failed", "device", cl.ID, "error", err)
	}
}

// relay has mochi retain (if asked) and deliver a stored reading, which it
// did not when OnPublish took it into a pipeline: it injects the PUBLISH
// from h.inline, an inline client of the broker's, which mochi lets past its
// ACL and inflight bookkeeping and whose PUBLISHes OnPublish passes through.
// Subscribers get it as from the server (a v5 "no local" subscription of
// the publishing device does not filter it out).
func (h *hook) relay(pk packets.Packet) {
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
