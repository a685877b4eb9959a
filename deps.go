//go:build tools

package thingnet

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/cometbft/cometbft/abci/example/kvstore"
	_ "github.com/cometbft/cometbft/light"
	_ "github.com/cometbft/cometbft/node"
	_ "github.com/cometbft/cometbft/rpc/client/http"
	_ "github.com/cometbft/cometbft/rpc/client/local"
	_ "github.com/cosmos/iavl"
	_ "github.com/cosmos/ics23/go"
	_ "github.com/fxamacker/cbor/v2"
	_ "github.com/mr-tron/base58"
	_ "github.com/multiformats/go-multicodec"
	_ "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	_ "github.com/spf13/cobra"
	_ "github.com/veraison/go-cose"
	_ "golang.org/x/crypto/chacha20poly1305"
	_ "golang.org/x/crypto/scrypt"
)
