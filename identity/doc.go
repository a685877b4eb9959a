// Package identity holds keys, key ids (did:key), COSE_Sign1 signing and
// verification, and the passphrase-protected keystore.
//
// A device's identity is its key: Ed25519 by default, ECDSA P-256 for secure
// elements that only do P-256. Its id is the key's did:key string.
//
// Verification rules:
//
//   - Ed25519 signatures are verified exactly as crypto/ed25519 verifies them
//     (cofactorless equation, S < L, canonical R), through curve25519-voi.
//     Batch gives the same answer as verifying each signature on its own, for
//     every input, including adversarial ones.
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
