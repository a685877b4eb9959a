package mqtt

import "errors"

// Sentinel errors. The Authenticator and the Ingestor wrap them so the
// broker can answer with the right MQTT reason code; errors the broker
// returns itself say what was wrong.
var (
	// ErrUnknownDevice: the ledger has no device with that id (CONNACK
	// "not authorized").
	ErrUnknownDevice = errors.New("unknown device")

	// ErrInactiveDevice: the device is suspended or revoked (CONNACK "not
	// authorized").
	ErrInactiveDevice = errors.New("device is not active")

	// ErrBadToken: the password is not a CWT signed by the device's current
	// key for this chain, or it has expired (CONNACK "bad username or
	// password").
	ErrBadToken = errors.New("bad token")

	// ErrRejected: the reading is bad (malformed, bad signature, replayed
	// sequence number, another device's reading). It is not acknowledged.
	ErrRejected = errors.New("reading rejected")

	// ErrOverloaded: the gateway cannot take the reading now; the device
	// should retry later. It is not acknowledged.
	ErrOverloaded = errors.New("gateway overloaded")

	// ErrDuplicate: the reading is already durably stored (a QoS 1
	// redelivery after a lost PUBACK). The broker acknowledges it as a
	// success, so a device that retries does not see its stored reading
	// refused.
	ErrDuplicate = errors.New("reading already stored")

	// ErrConfig: Start was given an unusable Config.
	ErrConfig = errors.New("invalid mqtt config")
)
