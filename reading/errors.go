package reading

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) and say in their message what exactly is wrong. Signature
// failures of Envelope.Verify wrap identity.ErrBadSignature.
var (
	// ErrMalformed reports an envelope that does not decode: not a
	// COSE_Sign1 message, or a payload with a missing, unknown, duplicate
	// or invalid field. The message names the field.
	ErrMalformed = errors.New("reading: malformed envelope")

	// ErrTooLarge reports an envelope over MaxEnvelopeSize bytes. Such
	// errors wrap ErrMalformed too.
	ErrTooLarge = errors.New("reading: envelope too large")

	// ErrInvalid reports a reading that Sign or SignAttested cannot encode,
	// or an invalid argument.
	ErrInvalid = errors.New("reading: invalid reading")

	// ErrReplay reports a sequence number that is not above the highest
	// one accepted from the device.
	ErrReplay = errors.New("reading: replayed sequence number")

	// ErrSeqUnknown reports a device whose highest accepted sequence
	// number a SeqTracker no longer holds, because it has evicted devices
	// to stay within its bound: the caller must load the device's highest
	// sequence number from durable storage (SeqTracker.Accept) and check
	// again.
	ErrSeqUnknown = errors.New("reading: sequence state of device unknown")
)

// malformed returns an error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// invalid returns an error wrapping ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
