//go:build pkcs11

package main

import (
	"errors"
	"io"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/identity/pkcs11"
)

func init() {
	tokenKeys = func(uri string, alg identity.Algorithm) (*identity.Key, bool, io.Closer, error) {
		k, tok, err := pkcs11.Open(uri) // a P-256 or an Ed25519 key, as the token holds it
		if errors.Is(err, pkcs11.ErrNoKey) {
			// First boot: the key is made on the token, and never leaves it.
			k, tok, err = pkcs11.Generate(uri, alg)
			return k, err == nil, tok, err
		}
		return k, false, tok, err
	}
}
