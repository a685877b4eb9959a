package gateway

import (
	"errors"

	"github.com/thingnet/thingnet/gateway/mqtt"
)

// Sentinel errors; wrapped errors say which device and why. They are the
// transports' own (gateway/mqtt names the contract its hooks rely on), so
// a bridge can tell a refusal from a duplicate or an overload.
var (
	ErrUnknownDevice  = mqtt.ErrUnknownDevice
	ErrInactiveDevice = mqtt.ErrInactiveDevice
	ErrBadToken       = mqtt.ErrBadToken
	ErrRejected       = mqtt.ErrRejected
	ErrOverloaded     = mqtt.ErrOverloaded
	ErrDuplicate      = mqtt.ErrDuplicate // already stored: acknowledge as success
	ErrClosed         = errors.New("gateway closed")
	// ErrQueueFull: the gateway's ledger tx queue (Enqueue) is full.
	ErrQueueFull = errors.New("gateway: the ledger tx queue is full")
)
