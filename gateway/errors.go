package gateway

import (
	"errors"

	"github.com/thingnet/thingnet/gateway/edge"
)

// Sentinel errors; wrapped errors say which device and why. The device and
// reading ones are the edge contract's (package gateway/edge), which the
// transports answer by, named here for the gateway's own callers: so a
// bridge can tell a refusal from a duplicate or an overload.
var (
	ErrUnknownDevice  = edge.ErrUnknownDevice
	ErrInactiveDevice = edge.ErrInactiveDevice
	ErrBadToken       = edge.ErrBadToken
	ErrRejected       = edge.ErrRejected
	ErrOverloaded     = edge.ErrOverloaded
	ErrDuplicate      = edge.ErrDuplicate // already stored: acknowledge as success
	ErrFutureReading  = edge.ErrFutureReading
	ErrClosed         = errors.New("gateway closed")
	// ErrQueueFull: the gateway's ledger tx queue (Enqueue) is full.
	ErrQueueFull = errors.New("gateway: the ledger tx queue is full")
)
