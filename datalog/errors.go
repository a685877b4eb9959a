package datalog

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) and say what went wrong.
var (
	// ErrInvalidEntry reports an empty entry or an Append with no entries.
	ErrInvalidEntry = errors.New("datalog: invalid entry")
	// ErrTooLarge reports an entry larger than MaxEntrySize or an Append
	// larger than MaxAppendBytes.
	ErrTooLarge = errors.New("datalog: too large")
	// ErrNotFound reports an entry index at or beyond the log's size.
	ErrNotFound = errors.New("datalog: entry not found")
	// ErrOutOfRange reports a tree size beyond the log's size, a leaf index
	// not below the tree size, or a consistency proof with from > to.
	ErrOutOfRange = errors.New("datalog: out of range")
	// ErrInvalidProof reports a proof that does not verify, or is malformed.
	ErrInvalidProof = errors.New("datalog: invalid proof")
	// ErrCorrupt reports stored data that cannot be decoded or is
	// inconsistent.
	ErrCorrupt = errors.New("datalog: corrupt store")
	// ErrClosed reports use of a closed Log.
	ErrClosed = errors.New("datalog: log closed")
)
