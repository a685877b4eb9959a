package lightclient

import "errors"

var (
	// ErrBadTrustOptions is returned by New for unusable trust options.
	ErrBadTrustOptions = errors.New("lightclient: bad trust options")
	// ErrBadOption is returned by New and Restore for an unusable Option.
	ErrBadOption = errors.New("lightclient: bad option")
	// ErrTrustedHashMismatch is returned by New when the header at the
	// trusted height is not the one the device was provisioned with.
	ErrTrustedHashMismatch = errors.New("lightclient: the header at the trusted height does not have the trusted hash")
	// ErrBadHeader is returned when a source sends a header or validator set
	// that is malformed, of another chain or height, or inconsistent with
	// its own commit (for instance a tampered header).
	ErrBadHeader = errors.New("lightclient: the source sent an invalid header")
	// ErrNotVerified is returned when a header, although well formed, cannot
	// be verified from the trusted one (not signed by validators the client
	// can trust).
	ErrNotVerified = errors.New("lightclient: header cannot be verified from the trusted header")
	// ErrExpired is returned when the trusted header is older than the
	// trusting period: it can no longer vouch for newer headers, and the
	// device must be provisioned again with a recent trusted hash.
	ErrExpired = errors.New("lightclient: the trusted header is older than the trusting period")
	// ErrBelowTrusted is returned for a height below the trusted header that
	// backwards verification cannot reach: further back than
	// WithMaxBackwards allows.
	ErrBelowTrusted = errors.New("lightclient: height is too far below the trusted header to verify backwards")
	// ErrHeaderNotFound is what a Source wraps when it has no header at the
	// height asked for (not committed yet, or pruned).
	ErrHeaderNotFound = errors.New("lightclient: the source has no header at this height")
	// ErrSourceBehind is returned by Update when the source's latest header
	// is below the trusted one (a lagging node; try another source).
	ErrSourceBehind = errors.New("lightclient: the source is behind the trusted header")
	// ErrAppHashMismatch is returned when a proof's root is not the app hash
	// of the verified header of its height.
	ErrAppHashMismatch = errors.New("lightclient: the proof's root is not the verified app hash")
	// ErrBadState is returned for a persisted state that cannot be decoded
	// or is inconsistent (corrupted storage, or a state of another chain).
	ErrBadState = errors.New("lightclient: bad light client state")
)
