package mqtt

import (
	"context"
	"log/slog"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
)

// hook is the broker's whole policy, plugged into mochi. mochi calls every
// hook method from the goroutine that reads the client's connection, one
// packet at a time: a hook that blocks holds back that client only.
type hook struct {
	mochi.HookBase
	ctx   context.Context // cancelled by Broker.Close: unblocks Authenticate and Ingest
	cfg   Config
	log   *slog.Logger
	stats *counters

	server *mochi.Server
	// pipe is cfg.Ingest if it is an edge.Pipeliner: QoS 0 and 1 readings
	// are then pipelined (pipeline.go); nil otherwise.
	pipe edge.Pipeliner
	// inline is the broker's own inline client, which relays stored
	// readings to mochi for retaining and delivery (pipeline.go).
	inline    *mochi.Client
	pipelines sync.Map       // *mochi.Client → *pipeline
	wg        sync.WaitGroup // the pipelines' goroutines
}

// ingestContext bounds one Ingest call, or one Submit's wait for room.
func (h *hook) ingestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(h.ctx, h.cfg.IngestTimeout)
}

func (h *hook) ID() string { return "thingnet" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnSessionEstablished, mochi.OnDisconnect,
		mochi.OnACLCheck, mochi.OnPacketRead, mochi.OnPublish, mochi.OnSubscribed:
		return true
	}
	return false
}

// OnConnectAuthenticate lets in every client that reached it. mochi calls
// OnConnect first, in the same goroutine, and drops the connection if it
// returns an error; OnConnect does all the checks, because only there can a
// refusal carry its own CONNACK code (mochi answers a false from
// OnConnectAuthenticate with "bad username or password" whatever the cause,
// and maps it to v3's "not authorized").
func (h *hook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *hook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	h.stats.connAccepted.Add(1)
	h.log.Debug("mqtt: device connected", "device", cl.ID, "remote", cl.Net.Remote,
		"version", cl.Properties.ProtocolVersion)
}

func (h *hook) OnDisconnect(cl *mochi.Client, err error, _ bool) {
	h.closePipeline(cl)
	h.log.Debug("mqtt: device disconnected", "device", cl.ID, "remote", cl.Net.Remote, "error", err)
}

// OnPacketRead sees every packet as soon as it is decoded. It gives a v3
// CONNECT without client id the device id (mochi would refuse a v3 one that
// keeps its session, and invent an id for the others), and it charges
// SUBSCRIBE and UNSUBSCRIBE, which cost ACL lookups, to the device's message
// budget: a client that floods them is disconnected (the error closes the
// connection).
func (h *hook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if pk.ProtocolVersion < 5 && pk.Connect.ClientIdentifier == "" {
			pk.Connect.ClientIdentifier = string(pk.Connect.Username)
		}
	case packets.Subscribe, packets.Unsubscribe:
		if !h.cfg.Limits.AllowMessage(edge.DeviceKey(cl.ID), pk.FixedHeader.Remaining) {
			h.stats.rateLimited.Add(LimitControl)
			h.log.Debug("mqtt: subscribe flood; disconnecting", "device", cl.ID, "remote", cl.Net.Remote)
			return pk, packets.ErrRejectPacket
		}
	}
	return pk, nil
}

// extendDeadline gives a client whose packet took long to handle (a slow
// Ingest) a full keepalive period again, so that the answer can still be
// written: mochi set the deadline before reading the packet.
func extendDeadline(cl *mochi.Client) {
	if ka := cl.State.Keepalive; ka > 0 && cl.Net.Conn != nil {
		_ = cl.Net.Conn.SetDeadline(time.Now().Add(time.Duration(ka) * 3 / 2 * time.Second))
	}
}

// isV5 reports whether cl speaks MQTT 5.
func isV5(cl *mochi.Client) bool { return cl.Properties.ProtocolVersion >= 5 }

// ReadingsTopic is the topic a device publishes its readings to.
func ReadingsTopic(deviceID string) string { return "things/" + deviceID + "/readings" }
