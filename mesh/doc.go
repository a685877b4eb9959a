// Package mesh is the peer-to-peer network of things: a go-libp2p host in
// every node and full device (QUIC and TCP, Noise, yamux, a resource manager
// with limits, mDNS, a Kademlia DHT, circuit relay v2 and gossipsub) and the
// thingnet protocols on top of it.
//
// A host's libp2p key is its ledger key, so a connection is an
// authenticated device. Every message is a COSE_Sign1 envelope signed by the
// sending device with a sequence number, delivered only if the ledger says
// the sender is active and holds a grant for the receiver (or topic), and
// only once. Payloads may be sealed to the receiver with HPKE. Gateways keep
// bounded, end-to-end encrypted mailboxes for sleeping devices and wake a
// device only for an authorized sender within its daily downlink budget.
//
// The message format, receipts, replay windows and the mailbox's HTTP
// client are in package mesh/message, which a device uses with no host.
// The wire formats are in docs/protocol.md ("Mesh").
package mesh
