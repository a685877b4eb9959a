// Package pkcs11 gives thingnet keys held in a PKCS#11 token: a secure
// element, an HSM, a TPM behind its PKCS#11 module, or SoftHSM standing
// in for one. The private key is made on the token and never leaves it;
// identity.Key signs through it as through any crypto.Signer (and checks
// each signature before using it).
//
// A key is named by an RFC 7512 token URI:
//
//	pkcs11:token=thingnet;object=device?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/thingnet/pin
//
// ParseURI is pure Go. Talking to a token (Open, Generate) needs cgo, as
// every PKCS#11 module is a C library loaded with dlopen: built with
// CGO_ENABLED=0 they return ErrNoCgo. P-256 keys, what most secure
// elements offer, sign through github.com/ThalesGroup/crypto11; Ed25519
// keys (PKCS#11 3.0 CKK_EC_EDWARDS and CKM_EDDSA, which crypto11 does not
// do) through its binding, github.com/miekg/pkcs11. Open takes the
// algorithm from the token's key object. See docs/devices.md for how a
// board vendor cross-builds it.
package pkcs11
