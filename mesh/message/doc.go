// Package message is the mesh's wire format and the checks a receiver
// runs, with no network of its own: signed (COSE_Sign1) and sealed (HPKE)
// messages, composing them, the ledger questions a receiver asks
// (Authority), signed receipts and their statuses, the anti-replay window
// per sender and its file store, the Merkle root of an exchange, and the
// HTTP client of a gateway's mailbox.
//
// A mesh node (package mesh) and a device with no libp2p host (package
// device) both use it, so a device reads its mailbox over HTTP with the
// same checks a node runs, and links no libp2p. The wire formats are in
// docs/protocol.md ("Mesh").
package message
