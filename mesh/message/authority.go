package message

import (
	"errors"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/identity"
)

// Why a message is refused. Each is also a Status in receipts.
var (
	ErrUnknownSender  = errors.New("mesh: sender is not a registered device")
	ErrInactiveSender = errors.New("mesh: sender is not active")
	ErrNotGranted     = errors.New("mesh: sender holds no grant for this")
	ErrReplay         = errors.New("mesh: sequence number already used (replay)")
	ErrPeerMismatch   = errors.New("mesh: connection's key is not the sender's current ledger key")
	ErrWrongReceiver  = errors.New("mesh: message is for another receiver or chain")
	ErrRateLimited    = errors.New("mesh: sender or peer is over its rate limit")
	ErrUndecryptable  = errors.New("mesh: sealed body does not open with the receiver's key")
	ErrNoMailbox      = errors.New("mesh: this gateway keeps no mailbox for the receiver")
)

// Device is what the mesh needs to know of a device from the ledger.
type Device struct {
	ID, Org, Class string
	Key            identity.PublicKey // current key
	Active         bool
	AttestedBy     string            // gateway that attests its readings
	Labels         map[string]string // e.g. LabelMailboxes, LabelDownlinks
}

// Device labels the mesh reads from the ledger.
const (
	// LabelMailboxes lists the gateways (device ids, comma-separated) that
	// keep the device's mailbox; its attesting gateway always may.
	LabelMailboxes = "mailboxes"
	// LabelDownlinks is the device's daily downlink (wake-up) budget.
	LabelDownlinks = "downlinks_per_day"
)

// Authority answers the ledger questions the mesh asks: who a device is
// and whether a sender may act on a receiver or topic. Implementations
// read the latest committed state (mesh.LedgerAuthority) or verify proofs
// against a light client (the device SDK).
type Authority interface {
	ChainID() string
	Device(id string) (*Device, error) // wraps ErrUnknownSender when there is none
	// Granted reports whether sender may perform action on resource
	// ("device:<id>", or "org:<org>/topic/<name>" for a topic).
	Granted(sender *Device, action, resource string) (bool, error)
}

// DownlinkBudget is the device's daily downlink budget: its
// LabelDownlinks label, else def.
func (d *Device) DownlinkBudget(def int) int {
	if v, ok := d.Labels[LabelDownlinks]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return n
		}
	}
	return def
}

// MailboxAt reports whether gateway keeps the device's mailbox.
func (d *Device) MailboxAt(gateway string) bool {
	if d.AttestedBy == gateway {
		return true
	}
	for _, g := range strings.Split(d.Labels[LabelMailboxes], ",") {
		if strings.TrimSpace(g) == gateway {
			return true
		}
	}
	return false
}
