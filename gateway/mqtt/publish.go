package mqtt

import (
	"context"
	"errors"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
)

// OnPublish stores a reading before mochi acknowledges it.
//
// How a PUBACK comes only after the reading is durably stored, in mochi
// v2.7.9 (server.go): the goroutine that reads a client handles one packet at
// a time (Client.Read → Server.receivePacket → processPacket →
// processPublish). For a PUBLISH, processPublish
//
//  1. drops a topic name that is invalid (wildcards, $SYS), and asks
//     OnACLCheck, which leaves the topic check to OnPublish;
//  2. calls hooks.OnPublish, this method, synchronously;
//  3. only when OnPublish returned no error, writes the PUBACK (QoS 1) or
//     PUBREC (QoS 2) with Client.WritePacket, then retains the message if
//     asked and fans it out to subscribers.
//
// OnPublish blocks in Ingest, so step 3 cannot happen before Ingest returned
// nil. When the reading is refused, OnPublish answers itself — v5: a PUBACK
// (PUBREC for QoS 2) with a reason code of 0x80 or more; v3.1.1, which has no
// negative acknowledgement: it closes the connection, so the client keeps
// the message and sends it again once reconnected — and returns
// packets.ErrRejectPacket, on which processPublish returns at once: no
// acknowledgement, no retained copy, no fan-out. (mochi's own way, returning
// a packets.Code, is not used: it answers QoS 2 with a PUBACK, and for v3 it
// goes on to the success path and acknowledges.)
//
// QoS 0 readings are ingested the same way, with nothing to answer: a
// refused one is dropped. QoS 2 is accepted and handled like QoS 1 (the
// PUBREC waits for the store); exactly-once storage rests on the readings'
// sequence numbers, not on the MQTT QoS 2 exchange.
//
// Blocking holds back only this client, and bounds its cost: it has at most
// one reading in Ingest at a time.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	dev := cl.ID
	// The only topic a device may publish to. (This is also after mochi
	// resolved any topic alias, which OnACLCheck would not see.)
	if pk.TopicName != ReadingsTopic(dev) {
		return h.refusePublish(cl, pk, ReadingACL, packets.ErrNotAuthorized,
			"a device may publish only to "+ReadingsTopic(dev))
	}
	if !h.cfg.Limits.AllowMessage(edge.DeviceKey(dev), len(pk.Payload)) {
		h.stats.rateLimited.Add(LimitMessage)
		return h.refusePublish(cl, pk, ReadingRateLimited, packets.ErrQuotaExceeded,
			"message rate or volume limit exceeded; slow down")
	}
	ip, _ := edge.Source(cl.Net.Remote)
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.IngestTimeout)
	err := h.cfg.Ingest.Ingest(ctx, dev, pk.Payload, ip)
	cancel()
	extendDeadline(cl)
	switch {
	case err == nil:
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
		h.log.Warn("mqtt: storing a reading failed", "device", dev, "error", err)
		return h.refusePublish(cl, pk, ReadingError, packets.ErrUnspecifiedError, "the gateway could not store the reading")
	}
	h.stats.readingsAccepted.Add(1)
	return pk, nil
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
