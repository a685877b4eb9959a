// Package client is the Go client of a node's /v1 HTTP API (docs/api.md)
// and the shapes of its answers: reads with and without proofs, the
// headers a proof checks against, transaction submission. The device SDK,
// the CLI and the node's own components use it; it carries no server.
package client
