package edge

import (
	"errors"
	"fmt"
)

// Sentinel errors of the Ingestor and of the gateway's device checks.
// Wrapped errors say which device and why; the transports answer by them
// (an MQTT reason code, a CoAP or HTTP status).
var (
	// ErrUnknownDevice: the ledger has no device with that id.
	ErrUnknownDevice = errors.New("unknown device")

	// ErrInactiveDevice: the device is suspended or revoked.
	ErrInactiveDevice = errors.New("device is not active")

	// ErrBadToken: the token is not a CWT signed by the device's current
	// key for this chain, or it has expired.
	ErrBadToken = errors.New("bad token")

	// ErrRejected: the reading is bad (malformed, bad signature, replayed
	// sequence number, another device's reading, over its device's rate
	// limit). It is not acknowledged.
	ErrRejected = errors.New("reading rejected")

	// ErrFutureReading: a reading is dated further after the gateway's
	// clock than the gateway allows (its skew): the device's clock is
	// wrong. It wraps ErrRejected, so a transport that knows no better
	// refuses it as it refuses any bad reading.
	ErrFutureReading = fmt.Errorf("%w: dated in the future", ErrRejected)

	// ErrOverloaded: the gateway cannot take the reading now; the device
	// should retry later. It is not acknowledged.
	ErrOverloaded = errors.New("gateway overloaded")

	// ErrDuplicate: the reading is already durably stored (a redelivery
	// after a lost acknowledgement). Transports acknowledge it as a
	// success, so a device that retries does not see its stored reading
	// refused.
	ErrDuplicate = errors.New("reading already stored")
)
