// Package ledger is thingnet's deterministic state machine: the CometBFT ABCI
// application that records organisations, devices (with their whole history),
// grants and the validator set, in an IAVL tree whose root is the block's app hash.
//
// Transactions are COSE_Sign1 envelopes over deterministic CBOR (see
// docs/protocol.md). Execution uses no wall clock, randomness, map iteration
// order or goroutines: every validator computes the same app hash.
package ledger
