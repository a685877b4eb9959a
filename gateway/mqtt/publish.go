package mqtt

import (
	"context"
	"errors"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
)

// OnPublish stores a reading before it is acknowledged.
//
// How a PUBACK comes only after the reading is durably stored, in mochi
// v2.7.9 (server.go): the goroutine that reads a client handles one packet at
// a time (Client.Read → Server.receivePacket → processPacket →
// processPublish). For a PUBLISH, processPublish
//
//  1. drops a topic name that is invalid (wildcards, $SYS), and asks
//     OnACLCheck, which leaves the topic check to OnPublish;
//  2. calls hooks.OnPublish, this method, synchronously;
//  3. when OnPublish returned no error, writes the PUBACK (QoS 1) or PUBREC
//     (QoS 2) with Client.WritePacket, then retains the message if asked and
//     fans it out to subscribers; when it returned packets.ErrRejectPacket,
//     it does none of this and returns at once.
//
// QoS 0 and 1 readings are pipelined when the Ingestor is an
// edge.Pipeliner (the gateway is): OnPublish submits the reading, hands it
// to the client's pipeline and returns packets.ErrRejectPacket, so that
// mochi reads the client's next packet while this one is verified and
// stored. The pipeline's goroutine takes the answers in the order the
// PUBLISHes came, and for each one stored writes the PUBACK itself (QoS 1)
// and then has mochi retain and deliver it (see relay): a PUBACK still
// means that the reading is durable, and PUBACKs go out in the order of the
// PUBLISHes. A client has at most receiveMaximum readings in its pipeline;
// beyond that, and while the gateway's queue is full, OnPublish blocks, and
// the client's connection is not read (back-pressure).
//
// Otherwise (QoS 2, or an Ingestor that only blocks) OnPublish first waits
// for the client's pipeline to empty, then blocks in Ingest, so step 3
// cannot happen before Ingest returned nil; exactly-once storage rests on
// the readings' sequence numbers, not on the MQTT QoS 2 exchange.
//
// When the reading is refused, the broker answers itself — v5: a PUBACK
// (PUBREC for QoS 2) with a reason code of 0x80 or more; v3.1.1, which has
// no negative acknowledgement: it closes the connection, so the client
// keeps the message and sends it again once reconnected — and mochi neither
// acknowledges, retains nor delivers it. (mochi's own way, returning a
// packets.Code, is not used: it answers QoS 2 with a PUBACK, and for v3 it
// goes on to the success path and acknowledges.) A refused QoS 0 reading is
// dropped.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl == h.inline {
		return pk, nil // a stored reading, relayed to be retained and delivered
	}
	if h.pipe != nil && pk.FixedHeader.Qos < 2 {
		h.pipeline(cl, pk)
		return pk, packets.ErrRejectPacket // answered by the client's pipeline
	}
	if p, ok := h.pipelines.Load(cl); ok {
		p.(*pipeline).pending.Wait()
	}
	err := h.checkPublish(cl, pk)
	if err == nil {
		ip, _ := edge.Source(cl.Net.Remote)
		ctx, cancel := h.ingestContext()
		err = h.cfg.Ingest.Ingest(ctx, cl.ID, pk.Payload, ip)
		cancel()
		extendDeadline(cl)
	}
	return h.answer(cl, pk, err)
}

// publishRefusal is a PUBLISH that the broker refuses before the Ingestor sees it.
type publishRefusal struct {
	reason string       // a Reading* key of Stats.ReadingsRefused
	code   packets.Code // the v5 reason code
	detail string
}

func (r *publishRefusal) Error() string { return r.detail }

// checkPublish runs the broker's own checks of a PUBLISH: the topic, and the
// device's message budget.
func (h *hook) checkPublish(cl *mochi.Client, pk packets.Packet) error {
	// The only topic a device may publish to. (This is also after mochi
	// resolved any topic alias, which OnACLCheck would not see.)
	if pk.TopicName != ReadingsTopic(cl.ID) {
		return &publishRefusal{ReadingACL, packets.ErrNotAuthorized, "a device may publish only to " + ReadingsTopic(cl.ID)}
	}
	if !h.cfg.Limits.AllowMessage(edge.DeviceKey(cl.ID), len(pk.Payload)) {
		h.stats.rateLimited.Add(LimitMessage)
		return &publishRefusal{ReadingRateLimited, packets.ErrQuotaExceeded, "message rate or volume limit exceeded; slow down"}
	}
	return nil
}

// answer counts the outcome err of cl's PUBLISH pk, refuses it unless it was
// stored (refusePublish), and returns what OnPublish returns to mochi: no
// error (acknowledge, retain, deliver), packets.CodeSuccessIgnore (an
// already stored reading: acknowledge only) or packets.ErrRejectPacket
// (refused and answered).
func (h *hook) answer(cl *mochi.Client, pk packets.Packet, err error) (packets.Packet, error) {
	var r *publishRefusal
	switch {
	case err == nil:
		h.stats.readingsAccepted.Add(1)
		return pk, nil
	case errors.As(err, &r):
		return h.refusePublish(cl, pk, r.reason, r.code, r.detail)
	case errors.Is(err, edge.ErrDuplicate):
		// Acknowledged, but neither retained nor delivered again:
		// CodeSuccessIgnore makes processPublish send the PUBACK and skip both.
		h.stats.readingsAccepted.Add(1)
		h.stats.readingsDuplicate.Add(1)
		return pk, packets.CodeSuccessIgnore
	case errors.Is(err, edge.ErrRejected):
		return h.refusePublish(cl, pk, ReadingRejected, packets.ErrPayloadFormatInvalid, err.Error())
	case errors.Is(err, edge.ErrOverloaded), errors.Is(err, context.DeadlineExceeded):
		return h.refusePublish(cl, pk, ReadingOverloaded, packets.ErrQuotaExceeded,
			"the gateway cannot store readings this fast; retry later")
	case h.ctx.Err() != nil:
		return h.refusePublish(cl, pk, ReadingOverloaded, packets.ErrQuotaExceeded, "the gateway is shutting down")
	default:
		h.log.Warn("mqtt: storing a reading failed", "device", cl.ID, "error", err)
		return h.refusePublish(cl, pk, ReadingError, packets.ErrUnspecifiedError, "the gateway could not store the reading")
	}
}

// refusePublish answers a refused PUBLISH (see OnPublish) and returns what
// makes mochi drop it.
func (h *hook) refusePublish(cl *mochi.Client, pk packets.Packet, reason string, code packets.Code, detail string) (packets.Packet, error) {
	h.stats.readingsRefused.Add(reason)
	h.log.Debug("mqtt: reading refused", "device", cl.ID, "reason", reason, "qos", pk.FixedHeader.Qos,
		"version", cl.Properties.ProtocolVersion, "detail", detail)
	switch {
	case pk.FixedHeader.Qos == 0:
	case isV5(cl):
		ack := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Puback},
			PacketID:    pk.PacketID,
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: truncate(detail, 200)},
		}
		if pk.FixedHeader.Qos == 2 {
			ack.FixedHeader.Type = packets.Pubrec // a PUBREC of 0x80 or more ends the QoS 2 exchange
		}
		if err := cl.WritePacket(ack); err != nil {
			h.log.Debug("mqtt: writing a negative acknowledgement failed", "device", cl.ID, "error", err)
		}
	default:
		cl.Stop(code)
	}
	return pk, packets.ErrRejectPacket
}
