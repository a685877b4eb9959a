// Package identity holds keys, key ids (did:key), COSE_Sign1 signing and
// verification, and the passphrase-protected keystore.
//
// A device's identity is its key: Ed25519 by default, ECDSA P-256 for secure
// elements that only do P-256. Its id is the key's did:key string.
//
// Verification rules:
//
//   - Ed25519 signatures are verified with the ZIP-215 rule, as CometBFT
//     verifies its own (cofactored equation; A and R in any encoding that
//     decodes to a point, canonical or not, small order or not; S < L),
//     through curve25519-voi. Under that rule Batch gives the same answer as
//     verifying each signature on its own, for every input, including
//     adversarial ones. Every signature crypto/ed25519 makes verifies, but
//     crypto/ed25519's Verify (cofactorless) refuses some crafted signatures
//     that ZIP-215 accepts, so do not use it to check what a node accepted.
//   - P-256 signatures are 64-byte r||s (the COSE form) over SHA-256. ECDSA
//     signatures are malleable (s and n-s both verify), so never use the bytes
//     of a signature or of a signed message as a unique id.
//   - NewPublicKey and ParseDID refuse key encodings that are not points of
//     the curve, Ed25519 keys of small order (for which anyone can forge) and
//     non-canonical Ed25519 encodings (so one key has exactly one did:key).
//   - DecodeSign1 accepts only shortest-form, definite-length CBOR and an
//     empty unprotected header, so the unsigned parts of a message cannot be
//     re-encoded by a third party; only the optional tag 18 may differ.
package identity
