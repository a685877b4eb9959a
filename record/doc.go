// Package record is the ledger's wire format, shared by the ledger, the
// node side and the device side: the records of the ledger's state and the
// keys they live under, the messages of transactions and the COSE_Sign1
// transaction envelope, all in deterministic CBOR (docs/protocol.md); the
// result codes; the ICS-23 check of a state proof against an app hash; and
// the signer rule (SignerKeyAt). It executes nothing: the state machine is
// package ledger, which a device never imports.
package record
