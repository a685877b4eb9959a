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
