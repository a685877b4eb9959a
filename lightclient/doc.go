// Package lightclient lets a device with almost no storage trust the ledger
// without trusting any node: it keeps one trusted header and validator set,
// verifies newer headers with CometBFT's skipping verification, and checks
// state proofs against them.
//
// A device is provisioned with the hash of one header (TrustOptions). From
// then on it trusts a newer header only if CometBFT's light client rules
// (github.com/cometbft/cometbft/light) accept it: a header right after the
// trusted one must carry the validator set the trusted one announced, and a
// header further ahead must be signed by more than the trust level (1/3 by
// default) of the trusted validator set's power and by more than 2/3 of its
// own. When the validator set changed too much for one skip, the client
// bisects: it fetches the header half way, verifies to it, and carries on.
// Commit verification itself is CometBFT's; this package only drives it.
//
// The persistent state (State) is one signed header and one validator set:
// its size depends on the number of validators, never on the length of the
// ledger. A state encodes as one version byte (1) followed by a protobuf
// tendermint.types.LightBlock.
//
// The trusted header only moves forward. A header below it is verified
// backwards, as CometBFT's light client does (light.VerifyBackwards): the
// client fetches the headers down to it one at a time and checks that each
// one's hash is the LastBlockID of the one above (VerifyBack). This needs no
// validator set and does not change the state, so a proof at an old height
// verifies against a header hash-linked to the trusted one. A walk longer
// than WithMaxBackwards (DefaultMaxBackwards headers) is refused
// (ErrBelowTrusted).
// A trusted header older than the trusting period can no longer vouch for a
// new validator set (ErrExpired); the device must then be provisioned again.
//
// Headers come from a Source; APISource adapts a node's HTTP API client. A
// source is never trusted: a header it sends that does not verify is refused,
// and the device can resume from its State with another source (Restore).
package lightclient
