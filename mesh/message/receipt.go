package message

import (
	"errors"
	"fmt"

	"github.com/thingnet/thingnet/identity"
)

// Status is the outcome of one message, as a receipt reports it.
type Status uint8

// Statuses. Delivered means the receiver (or the mailbox) has it durably.
const (
	StatusDelivered Status = iota
	StatusMalformed
	StatusWrongReceiver
	StatusUnknownSender
	StatusInactiveSender
	StatusNotGranted
	StatusReplay
	StatusBadSignature
	StatusRateLimited
	StatusPeerMismatch
	StatusUndecryptable
	StatusNoMailbox
	StatusRejected // the receiving application refused it
	StatusInternal
	StatusCount // the number of statuses, not one of them
)

var statusNames = [...]string{"delivered", "malformed", "wrong_receiver", "unknown_sender", "inactive_sender",
	"not_granted", "replay", "bad_signature", "rate_limited", "peer_mismatch", "undecryptable", "no_mailbox",
	"rejected", "internal"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Statuses lists every status name, for metrics.
func Statuses() []string { return statusNames[:] }

// StatusOf is the status a refusal error reports in a receipt.
func StatusOf(err error) Status {
	for _, c := range []struct {
		err error
		s   Status
	}{
		{ErrMalformed, StatusMalformed}, {ErrWrongReceiver, StatusWrongReceiver}, {ErrUnknownSender, StatusUnknownSender},
		{ErrInactiveSender, StatusInactiveSender}, {ErrNotGranted, StatusNotGranted}, {ErrReplay, StatusReplay},
		{identity.ErrBadSignature, StatusBadSignature}, {ErrRateLimited, StatusRateLimited},
		{ErrPeerMismatch, StatusPeerMismatch}, {ErrUndecryptable, StatusUndecryptable}, {ErrNoMailbox, StatusNoMailbox},
		{ErrRejected, StatusRejected},
	} {
		if errors.Is(err, c.err) {
			return c.s
		}
	}
	return StatusInternal
}

// ErrRejected wraps an error of the receiving application's Handler.
var ErrRejected = errors.New("mesh: receiver's application refused the message")

// Result is one message's outcome in a receipt.
type Result struct {
	Hash   []byte `cbor:"1,keyasint" json:"hash"` // SHA-256 of the signed message
	Status Status `cbor:"2,keyasint" json:"status"`
	Reason string `cbor:"3,keyasint,omitempty" json:"reason,omitempty"`
}

// Receipt answers a batch of messages: signed by the receiver (or the
// gateway keeping the mailbox), one result per message, in order.
type Receipt struct {
	Chain   string   `cbor:"1,keyasint" json:"chain"`
	By      string   `cbor:"2,keyasint" json:"by"`
	Results []Result `cbor:"3,keyasint" json:"results"`
}

// Err returns nil for a delivered result, else an error with its reason.
func (r *Result) Err() error {
	if r.Status == StatusDelivered {
		return nil
	}
	return fmt.Errorf("mesh: refused (%s): %s", r.Status, r.Reason)
}

// SignReceipt signs a receipt with the key of the receiver (or mailbox
// gateway) by.
func SignReceipt(k *identity.Key, by string, rc Receipt) ([]byte, error) {
	b, err := encMode.Marshal(rc)
	if err != nil {
		return nil, err
	}
	return identity.SignCOSE(k, by, b, []byte("thingnet receipt v1"))
}

// DecodeReceipt parses and verifies a signed receipt with the key of the
// device it must come from.
func DecodeReceipt(b []byte, by string, pub identity.PublicKey) (*Receipt, error) {
	s, err := identity.DecodeSign1(b)
	if err != nil {
		return nil, fmt.Errorf("%w: receipt: %v", ErrMalformed, err)
	}
	if s.KID != by {
		return nil, fmt.Errorf("%w: receipt signed by %q, expected %q", ErrMalformed, s.KID, by)
	}
	var rc Receipt
	if err := decMode.Unmarshal(s.Payload, &rc); err != nil {
		return nil, fmt.Errorf("%w: receipt payload: %v", ErrMalformed, err)
	}
	if rc.By != by {
		return nil, fmt.Errorf("%w: receipt says it is by %q, expected %q", ErrMalformed, rc.By, by)
	}
	if err := s.Verify(pub, []byte("thingnet receipt v1")); err != nil {
		return nil, fmt.Errorf("receipt by %s: %w", by, err)
	}
	return &rc, nil
}
