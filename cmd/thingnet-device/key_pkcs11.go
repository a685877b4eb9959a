//go:build pkcs11

package main

import (
	"errors"
	"io"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/identity/pkcs11"
)

func init() {
	tokenKeys = func(uri string) (*identity.Key, bool, io.Closer, error) {
		k, tok, err := pkcs11.Open(uri)
		if errors.Is(err, pkcs11.ErrNoKey) {
			// First boot: the key is made on the token, and never leaves it.
			k, tok, err = pkcs11.Generate(uri, identity.P256)
			return k, err == nil, tok, err
		}
		return k, false, tok, err
	}
}
