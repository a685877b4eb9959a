//go:build tools

// Package deps pins modules that packages under construction will import,
// so that concurrent work does not need to change go.mod. Remove an import
// here once real code imports it.
package deps

import (
	_ "github.com/libp2p/go-libp2p"
	_ "github.com/libp2p/go-libp2p-kad-dht"
	_ "github.com/libp2p/go-libp2p-pubsub"
)
