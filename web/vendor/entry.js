// The audited primitives the explorer needs and WebCrypto lacks (or lacks
// in some browsers): scrypt and XChaCha20-Poly1305 for key files,
// ChaCha20-Poly1305, HKDF, X25519, P-256, SHA-3 and ML-KEM-768 (with X25519:
// X-Wing) for sealed readings, Ed25519 for signing tokens. build.sh
// bundles this file into ../assets/vendor/noble.js.
export { scryptAsync } from '@noble/hashes/scrypt.js';
export { sha256, sha512 } from '@noble/hashes/sha2.js';
export { sha3_256, shake256 } from '@noble/hashes/sha3.js';
export { extract as hkdfExtract, expand as hkdfExpand } from '@noble/hashes/hkdf.js';
export { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
export { ed25519, x25519 } from '@noble/curves/ed25519.js';
export { p256 } from '@noble/curves/nist.js';
export { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
