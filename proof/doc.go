// Package proof checks what the network proves, with no I/O of its own:
// RFC 6962 inclusion and consistency in a gateway's data log, and a stored
// reading end to end (Reading: its envelope, its entry's inclusion under an
// anchored root, and the ledger records, proved in one recent state, of
// that anchor and of the key its signer held when the gateway
// authenticated it; docs/protocol.md, "The signer rule"). The state proofs
// are checked against headers by a Checker: a node's validator set
// (client) or a light client (lightclient). Gateways build these proofs;
// devices, the CLI and auditors check them.
package proof
