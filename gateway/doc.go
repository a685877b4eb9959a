// Package gateway turns signed readings from devices into data anyone can
// check: it authenticates devices against the ledger, bounds what each may
// cost, verifies readings in batches, stores them durably in a verifiable
// data log (package datalog) before acknowledging them, and anchors the
// log's root on the ledger. The protocol bridges (gateway/mqtt, HTTP) call
// into it.
package gateway
