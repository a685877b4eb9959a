package edge

import "context"

// Ingestor takes signed reading envelopes from the transports.
// gateway.Gateway implements it.
type Ingestor interface {
	// Ingest returns nil only once the envelope is durably stored. Errors
	// wrap ErrRejected (bad reading: malformed, bad signature, replayed
	// sequence number, unknown or inactive device, over its rate limit),
	// ErrOverloaded, or ErrDuplicate (already stored: answered as a
	// success).
	//
	// deviceID is the device the transport authenticated, which the
	// envelope must be of, and which the transport has charged for this
	// message under DeviceKey(deviceID); "" when the transport
	// authenticates no device (CoAP, HTTP), and the Ingestor charges the
	// envelope's device itself (see the package doc). source is the
	// client's IP address.
	//
	// Ingest must return when ctx is done, and must not modify payload (it
	// may keep it).
	Ingest(ctx context.Context, deviceID string, payload []byte, source string) error
}

// Pipeliner is an Ingestor that also takes envelopes without waiting for
// each to be stored, so that a transport can keep several of one client's
// envelopes in flight (MQTT: many PUBLISHes before their PUBACKs).
// gateway.Gateway implements it.
type Pipeliner interface {
	Ingestor
	// Submit runs Ingest's checks up to queueing the envelope and returns
	// a channel that receives, once, what Ingest would have returned. It
	// blocks while the gateway's queue is full (back-pressure: the
	// caller stops reading its client) until ctx is done, which refuses
	// the envelope as overloaded. Envelopes that one goroutine submits one
	// after the other are stored, or refused, in that order.
	Submit(ctx context.Context, deviceID string, payload []byte, source string) <-chan error
}
