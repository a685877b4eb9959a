// Package device is the Go SDK for things: a device with a key, a few
// gateways it knows, and kilobytes of storage.
//
// A Device signs readings (one signature per reading or per batch, see
// package reading) and sends them to its gateways over HTTP, MQTT (Eclipse
// Paho) or CoAP (go-coap), trying the gateways in the order given. It
// authenticates with short-lived CWTs (Token). It keeps a light client
// (package lightclient): one trusted header and validator set in a small
// file, saved atomically after every change and reloaded on restart with no
// network, and checks what gateways tell it against that header:
//
//   - IsActiveAndGranted: a sender's device record (active) and a ledger
//     grant letting it act on this device, each with a state proof;
//   - WasAnchored: a reading's inclusion in a gateway's data log under a
//     root anchored on the ledger, with the anchor's and signer's proofs.
//
// No gateway is trusted. A gateway that fails, or that lies (a forged
// header, a wrong state proof, a stale validator set), is set aside and
// the next one is asked; the trusted state moves only when verification
// succeeds.
//
// The persistent state (StateDir) is two small files: the light client's
// state (about 1.2 KB for 4 validators, independent of the ledger's length)
// and the next sequence number, reserved in blocks so that flash is written
// once per SeqBlock readings.
package device
