//go:build !cgo

package pkcs11

import "github.com/thingnet/thingnet/identity"

// Token is a session with a token; without cgo there is none.
type Token struct{}

// OpenToken returns ErrNoCgo: this program was built without cgo.
func OpenToken(*URI) (*Token, error) { return nil, ErrNoCgo }

// Key returns ErrNoCgo.
func (*Token) Key() (*identity.Key, error) { return nil, ErrNoCgo }

// Generate returns ErrNoCgo.
func (*Token) Generate(identity.Algorithm) (*identity.Key, error) { return nil, ErrNoCgo }

// Close does nothing.
func (*Token) Close() error { return nil }

// Open returns ErrNoCgo once uri parses: this program was built without cgo.
func Open(uri string) (*identity.Key, *Token, error) {
	if _, err := ParseURI(uri); err != nil {
		return nil, nil, err
	}
	return nil, nil, ErrNoCgo
}

// Generate returns ErrNoCgo once uri parses.
func Generate(uri string, _ identity.Algorithm) (*identity.Key, *Token, error) {
	if _, err := ParseURI(uri); err != nil {
		return nil, nil, err
	}
	return nil, nil, ErrNoCgo
}
