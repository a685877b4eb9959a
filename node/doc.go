// Package node runs a thingnet node: the ledger application inside an
// embedded CometBFT node, and the node's HTTP API, configured from
// <home>/thingnet.toml.
package node
