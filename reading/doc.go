// Package reading holds the signed reading format that devices send to
// gateways (MQTT, CoAP, HTTP) and that gateways log and prove.
//
// A reading envelope is a COSE_Sign1 message (identity.SignCOSE) whose kid
// is the signer's id and whose payload is a deterministic CBOR map with
// integer keys. The external data of the signature is ExternalAAD, so that a
// reading signature can never be taken for a transaction or a token signed
// by the same key. One envelope holds one reading (the single form) or 1 to
// MaxBatch readings of one device under one signature (the batch form, key
// 7). Devices too weak to sign may be registered as attested by a gateway:
// the gateway signs their readings with its own key and names the device in
// key 8. docs/readings.md describes the bytes for firmware writers.
//
// Decode is strict and cheap; it does not verify. A gateway decodes, checks
// the signer against the ledger and the sequence numbers against its
// SeqTracker (cheap checks first), verifies the signature (Envelope.Verify,
// or Envelope.ToBeSigned with an identity.Batch), and only then advances
// the tracker (SeqTracker.Advance), so that a forged envelope cannot use up
// a device's sequence numbers.
package reading
