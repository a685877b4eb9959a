package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
)

// tokenKeys opens (or, the first time, makes) a key in a PKCS#11 token
// named by an RFC 7512 URI. It is nil unless the program is built with
// -tags pkcs11 (and cgo): key_pkcs11.go.
var tokenKeys func(uri string, alg identity.Algorithm) (k *identity.Key, created bool, tok io.Closer, err error)

// loadKey is the device's key: the -key token URI's, or the file key in
// the state directory (made the first time). alg (-key-alg) is the
// algorithm of a key made the first time: "" is ed25519 for a file key
// and p256, what most secure elements do, for a token's. A key that is
// already there keeps its own algorithm.
func loadKey(uri, state, alg string) (*identity.Key, bool, io.Closer, error) {
	a := identity.Ed25519
	if uri != "" {
		a = identity.P256
	}
	if alg != "" {
		var err error
		if a, err = identity.ParseAlgorithm(alg); err != nil {
			return nil, false, nil, fmt.Errorf("-key-alg: %w", err)
		}
	}
	if uri == "" {
		k, created, err := device.LoadOrCreateKey(state, a)
		return k, created, nil, err
	}
	if !strings.HasPrefix(strings.ToLower(uri), "pkcs11:") {
		return nil, false, nil, fmt.Errorf("-key %q: want a PKCS#11 token URI (pkcs11:token=...;object=...), or no -key for a key file in the state directory", uri)
	}
	if tokenKeys == nil {
		return nil, false, nil, errors.New("-key pkcs11:...: this thingnet-device was built without PKCS#11; build it with CGO_ENABLED=1 go build -tags pkcs11 (docs/devices.md)")
	}
	return tokenKeys(uri, a)
}
