// Package api serves a node's HTTP JSON API under /v1: submitting signed
// transactions and reading organisations, devices (with history), grants,
// blocks and transactions, with state proofs on request.
package api
