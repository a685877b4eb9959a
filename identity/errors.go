package identity

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) and say in their message what exactly is wrong.
var (
	// ErrUnsupportedAlgorithm reports an algorithm other than Ed25519 and
	// P-256, or a key of another type.
	ErrUnsupportedAlgorithm = errors.New("identity: unsupported algorithm")

	// ErrInvalidKey reports key material that is not a valid key of its
	// algorithm.
	ErrInvalidKey = errors.New("identity: invalid key")

	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("identity: bad signature")

	// ErrMalformed reports a did:key string or a COSE_Sign1 message that
	// does not parse.
	ErrMalformed = errors.New("identity: malformed")

	// ErrNotExportable reports an attempt to export a private key that is
	// held behind an opaque crypto.Signer, such as a secure element.
	ErrNotExportable = errors.New("identity: key is not exportable")

	// ErrInvalidName reports a keystore key name outside [a-zA-Z0-9._-]{1,64}.
	ErrInvalidName = errors.New("identity: invalid key name")

	// ErrKeyExists reports that the keystore already holds a key of that name.
	ErrKeyExists = errors.New("identity: key already exists")

	// ErrKeyNotFound reports that the keystore holds no key of that name.
	ErrKeyNotFound = errors.New("identity: key not found")

	// ErrWrongPassphrase reports that a key file did not decrypt: the
	// passphrase is wrong, or the file was altered.
	ErrWrongPassphrase = errors.New("identity: wrong passphrase")

	// ErrInvalidKeyFile reports a key file that is not in the keystore format.
	ErrInvalidKeyFile = errors.New("identity: invalid key file")
)

// malformed returns an error wrapping ErrMalformed with a formatted message.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
