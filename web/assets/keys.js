// Keys in the page: a reader's key file opened in memory, the tokens it
// signs, and sealed readings opened with an organisation's data key. The
// primitives WebCrypto lacks (scrypt, XChaCha20-Poly1305,
// ChaCha20-Poly1305, X25519 in some browsers, SHA-3, ML-KEM) come from the
// audited @noble libraries, vendored as vendor/noble.js (web/vendor); it
// is loaded only when a key is used. Every format here is the Go code's,
// byte for byte: identity/keystore.go (key files), identity/cwt.go and
// cose.go (tokens), identity/hpke*.go (HPKE), reading/sealed.go (sealed
// values), record/datakey.go and client/sealed.go (data key shares).

import { decode, concat, head, bstr, tstr } from './cbor.js';
import { didKey, eq } from './verify.js';

let noble;
const lib = async () => (noble ??= await import('./vendor/noble.js'));
const utf8 = (s) => new TextEncoder().encode(s);
const b64std = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const u16 = (n) => Uint8Array.of(n >> 8, n & 255);

// options.webDH: Diffie-Hellman in WebCrypto where the browser has it
// (false: @noble only; the browser tests check both give the same values).
export const options = { webDH: true };

// --- key files (identity/keystore.go) ---

const MAX_KEY_FILE = 64 << 10;
const MIN_N = 1 << 10, MAX_N = 1 << 20, MAX_R = 16, MAX_P = 4, MAX_NR = 1 << 21;

// KeyFileError is a key file that cannot be used; wrongPassphrase tells a
// wrong passphrase (or an altered ciphertext) from a malformed file.
export class KeyFileError extends Error {
  constructor(msg, wrongPassphrase = false) { super(msg); this.wrongPassphrase = wrongPassphrase; }
}

// parseKeyFile checks a key file as the Go keystore does, before any key
// derivation: the work scrypt may be asked for is bounded.
export function parseKeyFile(text) {
  if (text.length > MAX_KEY_FILE) throw new KeyFileError(`not a thingnet key file: more than ${MAX_KEY_FILE} bytes`);
  let kf;
  try { kf = JSON.parse(text); } catch (e) { throw new KeyFileError('not a thingnet key file: not JSON (' + e.message + ')'); }
  const bad = (m) => { throw new KeyFileError('not a usable thingnet key file: ' + m); };
  if (!kf || typeof kf !== 'object' || Array.isArray(kf)) bad('not a JSON object');
  const known = ['version', 'name', 'alg', 'id', 'kdf', 'kdfparams', 'cipher', 'nonce', 'ciphertext'];
  for (const k of Object.keys(kf)) if (!known.includes(k)) bad(`unknown field "${k}"`);
  if (kf.version !== 1) bad(`version ${kf.version}, want 1`);
  if (typeof kf.name !== 'string' || !/^[a-zA-Z0-9._-]{1,64}$/.test(kf.name)) bad('name is not [a-zA-Z0-9._-]{1,64}');
  if (kf.alg !== 'ed25519' && kf.alg !== 'p256') bad(`alg "${kf.alg}", want ed25519 or p256`);
  let pub;
  try { pub = didKey(String(kf.id)); } catch (e) { bad('id: ' + e.message); }
  if ((pub.alg === 'Ed25519') !== (kf.alg === 'ed25519')) bad(`id is a ${pub.alg} key, alg says ${kf.alg}`);
  if (kf.kdf !== 'scrypt') bad(`kdf "${kf.kdf}", want "scrypt"`);
  const p = kf.kdfparams || {};
  const { n, r } = p, pp = p.p;
  if (!Number.isInteger(n) || n < MIN_N || n > MAX_N || (n & (n - 1)) !== 0) bad(`scrypt n ${n} is not a power of two from ${MIN_N} to ${MAX_N}`);
  if (!Number.isInteger(r) || !Number.isInteger(pp) || r < 1 || r > MAX_R || pp < 1 || pp > MAX_P || n * r > MAX_NR) bad(`scrypt r ${r}, p ${pp} out of range for n ${n}`);
  const field = (v, name) => { try { return b64std(String(v)); } catch { bad(`${name} is not base64`); } };
  const salt = field(p.salt, 'salt'), nonce = field(kf.nonce, 'nonce'), ct = field(kf.ciphertext, 'ciphertext');
  if (salt.length !== 16) bad(`salt is ${salt.length} bytes, want 16`);
  if (kf.cipher !== 'xchacha20-poly1305') bad(`cipher "${kf.cipher}", want "xchacha20-poly1305"`);
  if (nonce.length !== 24) bad(`nonce is ${nonce.length} bytes, want 24`);
  if (ct.length <= 16 || ct.length > 4096) bad(`ciphertext is ${ct.length} bytes`);
  return { name: kf.name, alg: kf.alg, id: kf.id, pub, n, r, p: pp, salt, nonce, ct };
}

// openKeyFile decrypts a parsed key file with passphrase and returns the
// key (see privateKey). onProgress, if given, gets scrypt's progress (0-1).
export async function openKeyFile(kf, passphrase, onProgress) {
  const { scryptAsync, xchacha20poly1305 } = await lib();
  const key = await scryptAsync(utf8(passphrase), kf.salt, { N: kf.n, r: kf.r, p: kf.p, dkLen: 32, maxmem: 2 ** 29, onProgress });
  let der;
  try {
    der = xchacha20poly1305(key, kf.nonce, utf8(kf.id)).decrypt(kf.ct);
  } catch {
    throw new KeyFileError(`wrong passphrase for key "${kf.name}" (or the file was altered)`, true);
  } finally { key.fill(0); }
  try {
    const k = await privateKey(der);
    if (!eq(k.pub, kf.pub.raw)) throw new Error(`the decrypted key is not ${kf.id}`);
    return { ...k, id: kf.id, name: kf.name };
  } catch (e) {
    throw new KeyFileError(`key file "${kf.name}": ${e.message}`);
  } finally { der.fill(0); }
}

// der reads one DER TLV at b[i]: {tag, body, end}.
function tlv(b, i) {
  if (i + 2 > b.length) throw new Error('truncated PKCS #8 key');
  const tag = b[i];
  let len = b[i + 1], o = i + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 2 || o + n > b.length) throw new Error('bad DER length');
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + b[o + k];
    o += n;
  }
  if (o + len > b.length) throw new Error('truncated PKCS #8 key');
  return { tag, body: b.subarray(o, o + len), end: o + len };
}

const ED25519_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const OID_EC = Uint8Array.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
const OID_P256 = Uint8Array.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);

// privateKey decodes a PKCS #8 Ed25519 or P-256 private key (as Go's
// x509.MarshalPKCS8PrivateKey writes it): {alg: 'ed25519'|'p256', secret
// (the Ed25519 seed or the P-256 scalar), pub (the did:key's bytes)}.
export async function privateKey(der) {
  const { ed25519, p256 } = await lib();
  if (der.length === 48 && eq(der.subarray(0, 16), ED25519_PKCS8)) {
    const secret = der.slice(16);
    return { alg: 'ed25519', secret, pub: ed25519.getPublicKey(secret) };
  }
  const top = tlv(der, 0);
  if (top.tag !== 0x30 || top.end !== der.length) throw new Error('not a PKCS #8 key');
  const ver = tlv(top.body, 0), algid = tlv(top.body, ver.end), oct = tlv(top.body, algid.end);
  const oid1 = tlv(algid.body, 0), oid2 = tlv(algid.body, oid1.end);
  if (ver.tag !== 2 || algid.tag !== 0x30 || oct.tag !== 4 || !eq(oid1.body, OID_EC) || !eq(oid2.body, OID_P256)) throw new Error('not an Ed25519 or P-256 PKCS #8 key');
  const ec = tlv(oct.body, 0), ecver = tlv(ec.body, 0), d = tlv(ec.body, ecver.end);
  if (ec.tag !== 0x30 || d.tag !== 4 || d.body.length !== 32) throw new Error('not a P-256 private key');
  const secret = d.body.slice();
  return { alg: 'p256', secret, pub: p256.getPublicKey(secret, true), der: der.slice() };
}

// --- tokens (identity/cwt.go, identity/cose.go; what `thingnet token` prints) ---

const uint = (n) => head(0, n);
const nint = (n) => head(1, -1 - n);

// mintToken signs a CWT for the key's own id, for the chain chainID,
// valid for lifetime seconds from now, in its text form (base64url).
export async function mintToken(k, chainID, lifetime, now = Date.now()) {
  const iat = Math.floor(now / 1000), exp = iat + lifetime;
  const cti = crypto.getRandomValues(new Uint8Array(16));
  // Core deterministic CBOR: keys 1, 2, 3, 4, 6, 7 in order.
  const payload = concat(head(5, 6), uint(1), tstr(k.id), uint(2), tstr(k.id), uint(3), tstr(chainID),
    uint(4), uint(exp), uint(6), uint(iat), uint(7), bstr(cti));
  const alg = k.alg === 'ed25519' ? -8 : -7;
  const kid = utf8(k.id);
  const prot = concat(head(5, 2), uint(1), nint(alg), uint(4), bstr(kid));
  const tbs = concat(head(4, 4), tstr('Signature1'), bstr(prot), bstr(new Uint8Array(0)), bstr(payload));
  const sig = await sign(k, tbs);
  const msg = concat(head(6, 18), head(4, 4), bstr(prot), head(5, 0), bstr(payload), bstr(sig));
  let s = '';
  for (const c of msg) s += String.fromCharCode(c);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function sign(k, msg) {
  if (k.alg === 'ed25519') return (await lib()).ed25519.sign(msg, k.secret);
  // P-256 with WebCrypto: an ECDSA signature is r ‖ s, 64 bytes, as COSE wants.
  k.signer ??= crypto.subtle.importKey('pkcs8', k.der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']).finally(() => {
    k.der.fill(0); // the signing key is now a non-extractable CryptoKey
    k.der = null;
  });
  return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, await k.signer, msg));
}

// forget overwrites a key's secret bytes.
export function forget(k) {
  if (!k) return;
  k.secret?.fill(0);
  k.der?.fill(0);
  k.signer = null;
}

// --- HPKE (RFC 9180), as identity/hpke.go uses it ---

const SUITES = {
  1: { name: 'X25519', kem: 0x0020, enc: 32, pk: 32 },
  2: { name: 'P-256', kem: 0x0010, enc: 65, pk: 65 },
  3: { name: 'ML-KEM-768+X25519', kem: 0x647a, enc: 1120, pk: 1216 },
};
export const suiteName = (s) => SUITES[s]?.name || `suite ${s}`;
const HYBRID_IKM = 'thingnet hpke mlkem768-x25519 v1';

// hpkeKey is the HPKE private key of suite s of a ledger key k (as
// identity's hpkePrivateKey derives it) with its public key.
export async function hpkeKey(k, s) {
  const N = await lib();
  if (s === 1 && k.alg === 'ed25519') {
    const sk = N.sha512(k.secret).slice(0, 32); // X25519 clamps it
    return { s, sk, pk: N.x25519.getPublicKey(sk) };
  }
  if (s === 2 && k.alg === 'p256') return { s, sk: k.secret, pk: N.p256.getPublicKey(k.secret, false) };
  if (s === 3) {
    const ikm = N.hkdfExpand(N.sha256, N.hkdfExtract(N.sha256, k.secret, new Uint8Array(0)), utf8(HYBRID_IKM), 32);
    // DeriveKeyPair of MLKEM768-X25519: SHAKE256 LabeledDerive (draft-ietf-hpke-pq).
    const label = utf8('DeriveKeyPair');
    const seed = N.shake256(concat(ikm, utf8('HPKE-v1'), utf8('KEM'), u16(0x647a), u16(label.length), label, u16(32)), { dkLen: 32 });
    // The key pair of the seed, expanded once (X-Wing: SHAKE256(seed, 96)
    // = the ML-KEM-768 seed d ‖ z, then the X25519 private key).
    const x = N.shake256(seed, { dkLen: 96 });
    const pq = N.ml_kem768.keygen(x.subarray(0, 64));
    const t = { s: 1, sk: x.slice(64), pk: N.x25519.getPublicKey(x.subarray(64)) };
    x.fill(0);
    return { s, sk: seed, pq: pq.secretKey, t, pk: concat(pq.publicKey, t.pk) };
  }
  throw new Error(`a ${k.alg} key has no ${suiteName(s)} HPKE key`);
}

// decap is the KEM's shared secret for enc and the private key h.
async function decap(h, enc) {
  const N = await lib();
  if (h.s === 3) {
    // MLKEM768-X25519 (X-Wing): SHA3-256(ss_PQ ‖ ss_T ‖ ct_T ‖ pk_T ‖ label).
    const ctT = enc.subarray(1088);
    const ssT = (await webDH(h.t, ctT)) ?? N.x25519.getSharedSecret(h.t.sk, ctT);
    if (ssT.every((b) => b === 0)) throw new Error('HPKE: the X25519 shared secret is zero');
    return N.sha3_256(concat(N.ml_kem768.decapsulate(enc.subarray(0, 1088), h.pq), ssT, ctT, h.t.pk, utf8('\\.//^\\')));
  }
  let dh = await webDH(h, enc);
  if (!dh) dh = h.s === 1 ? N.x25519.getSharedSecret(h.sk, enc) : N.p256.getSharedSecret(h.sk, enc, true).slice(1);
  if (dh.every((x) => x === 0)) throw new Error('HPKE: the shared secret is zero');
  const sid = concat(utf8('KEM'), u16(SUITES[h.s].kem));
  const prk = labeledExtract(N, sid, new Uint8Array(0), 'eae_prk', dh);
  return labeledExpand(N, sid, prk, 'shared_secret', concat(enc, h.pk), 32);
}

// webDH is the Diffie-Hellman of h and enc with WebCrypto, native and
// much faster than JavaScript, where the browser has the curve (X25519
// is recent); null sends the caller to @noble. The private key is
// imported once, not extractable.
async function webDH(h, enc) {
  if (!options.webDH) return null;
  const alg = h.s === 1 ? { name: 'X25519' } : { name: 'ECDH', namedCurve: 'P-256' };
  if (h.webKey === undefined) {
    const u = (b) => btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const jwk = h.s === 1 ? { kty: 'OKP', crv: 'X25519', d: u(h.sk), x: u(h.pk) }
      : { kty: 'EC', crv: 'P-256', d: u(h.sk), x: u(h.pk.subarray(1, 33)), y: u(h.pk.subarray(33)) };
    h.webKey = crypto.subtle.importKey('jwk', jwk, alg, false, ['deriveBits']).catch(() => null);
  }
  const priv = await h.webKey;
  if (!priv) return null;
  try {
    const pub = await crypto.subtle.importKey('raw', enc, alg, false, []);
    return new Uint8Array(await crypto.subtle.deriveBits({ name: alg.name, public: pub }, priv, 256));
  } catch {
    return null; // a point WebCrypto refuses: @noble says why
  }
}

function labeledExtract(N, sid, salt, label, ikm) {
  return N.hkdfExtract(N.sha256, concat(utf8('HPKE-v1'), sid, utf8(label), ikm), salt);
}

function labeledExpand(N, sid, prk, label, info, L) {
  return N.hkdfExpand(N.sha256, prk, concat(u16(L), utf8('HPKE-v1'), sid, utf8(label), info), L);
}

// hpkeContext runs the base-mode key schedule with HKDF-SHA256 and the
// AEAD aead (3: ChaCha20-Poly1305, 0xffff: export only).
async function hpkeContext(h, enc, info, aead) {
  const N = await lib();
  const ss = await decap(h, enc);
  const sid = concat(utf8('HPKE'), u16(SUITES[h.s].kem), u16(1), u16(aead));
  const empty = new Uint8Array(0);
  const ctx = concat(Uint8Array.of(0), labeledExtract(N, sid, empty, 'psk_id_hash', empty), labeledExtract(N, sid, empty, 'info_hash', info));
  const secret = labeledExtract(N, sid, ss, 'secret', empty);
  const out = { export: (c, L) => labeledExpand(N, sid, labeledExpand(N, sid, secret, 'exp', ctx, 32), 'sec', c, L) };
  if (aead === 3) {
    out.key = labeledExpand(N, sid, secret, 'key', ctx, 32);
    out.nonce = labeledExpand(N, sid, secret, 'base_nonce', ctx, 12);
  }
  return out;
}

// hpkeOpen opens a single-shot HPKE message (enc ‖ ciphertext, empty
// associated data; identity.Seal) with ChaCha20-Poly1305.
async function hpkeOpen(h, info, sealed) {
  const n = SUITES[h.s].enc;
  if (sealed.length < n + 16) throw new Error('too short');
  const c = await hpkeContext(h, sealed.subarray(0, n), info, 3);
  return (await lib()).chacha20poly1305(c.key, c.nonce).decrypt(sealed.subarray(n));
}

// --- data keys (cmd/thingnet/datakey.go, client/sealed.go) ---

// checkDataKey checks that the private key k is the published data key dk
// ({org, version, suite, key}); it returns its HPKE private key.
export async function checkDataKey(k, dk) {
  const h = await hpkeKey(k, dk.suite);
  if (!eq(h.pk, b64std(dk.key))) throw new Error(`the key is not "${dk.org}" data key version ${dk.version}`);
  return h;
}

// openShare opens a grantee's share (record.DataKeyShare) with the
// reader's key and returns the data private key it wraps.
export async function openShare(reader, chainID, sh) {
  const info = utf8(`thingnet/datakey-share/v1\0${chainID}\0${sh.org}\0${sh.version}\0${sh.grantee}`);
  const h = await hpkeKey(reader, sh.suite);
  let der;
  try {
    der = await hpkeOpen(h, info, b64std(sh.sealed));
  } catch {
    throw new Error(`the share of "${sh.org}" data key version ${sh.version} does not open with ${reader.id}`);
  }
  try { return await privateKey(der); } finally { der.fill(0); }
}

// --- sealed values (reading/sealed.go) ---

export const SEAL_LABEL = 'thingnet/sealed/v1';
const EXPORTER = utf8('thingnet/sealed/v1 key');
const COMMIT = utf8('thingnet/sealed/v1 commit');
const MAX_BYTES = 64 << 10;
const MAX_CT = MAX_BYTES + 5 + 16;

// sealInfo is CBOR [label, chain id, device, seq, version].
export const sealInfo = (chainID, device, seq, version) => concat(head(4, 5), tstr(SEAL_LABEL), tstr(chainID), tstr(device), uint(seq), uint(version));

// SealedError is a sealed value that does not open, with the reason.
export class SealedError extends Error {}

// checkSealed checks a sealed value's bounds (Sealed.check) and decodes its
// fields from the API's JSON.
export function checkSealed(j) {
  const s = SUITES[j.suite];
  if (!s) throw new SealedError(`suite ${j.suite} is not a known HPKE suite (1, 2 or 3)`);
  if (!Number.isSafeInteger(j.version) || j.version < 1) throw new SealedError(`version ${j.version}, want 1 or more`);
  const enc = b64std(j.enc || ''), commit = b64std(j.commit || ''), ct = b64std(j.ciphertext || '');
  if (enc.length !== s.enc) throw new SealedError(`enc is ${enc.length} bytes, want ${s.enc} for ${s.name}`);
  if (commit.length !== 32) throw new SealedError(`commit is ${commit.length} bytes, want 32`);
  if (ct.length < 17 || ct.length > MAX_CT) throw new SealedError(`ciphertext is ${ct.length} bytes, want 17 to ${MAX_CT}`);
  return { suite: j.suite, version: j.version, enc, commit, ct };
}

// openSealed opens sealed value j of reading (device, seq) with the data
// key's HPKE private key h: the secret, its commitment, the ciphertext
// with the reading as associated data, then the value. It returns
// {value} or {bytes}, or throws a SealedError saying why.
export async function openSealed(h, chainID, device, seq, j) {
  const N = await lib();
  const s = checkSealed(j);
  if (s.suite !== h.s) throw new SealedError(`sealed with ${suiteName(s.suite)}, the key is ${suiteName(h.s)}`);
  const info = sealInfo(chainID, device, seq, s.version);
  const secret = (await hpkeContext(h, s.enc, info, 0xffff)).export(EXPORTER, 32);
  if (!eq(N.sha256(concat(COMMIT, secret)), s.commit)) throw new SealedError(`not sealed to this key (version ${s.version}), or to another chain or reading`);
  let pt;
  try {
    pt = N.chacha20poly1305(secret, new Uint8Array(12), info).decrypt(s.ct);
  } catch {
    throw new SealedError('the ciphertext does not open for this chain, device, seq and version');
  }
  return plaintextValue(pt);
}

// plaintextValue decodes a sealed plaintext as reading.decodePlaintext
// does: one CBOR item, a byte string or a finite number.
export function plaintextValue(pt) {
  if (pt.length === 0 || pt.length > MAX_BYTES + 5) throw new SealedError(`the plaintext is ${pt.length} bytes`);
  let v;
  try { v = decode(pt); } catch (e) { throw new SealedError('the plaintext is not one CBOR item: ' + e.message); }
  const major = pt[0] >> 5, ai = pt[0] & 31;
  if (major === 2) {
    if (v.length > MAX_BYTES) throw new SealedError(`the plaintext is ${v.length} bytes, more than ${MAX_BYTES}`);
    return { bytes: v.slice() };
  }
  if (major === 0 || major === 1) {
    if (ai === 27) {
      const n = new DataView(pt.buffer, pt.byteOffset + 1, 8).getBigUint64(0);
      if (major === 0 ? n > 2n ** 53n : n >= 2n ** 53n) throw new SealedError('the plaintext is an integer of magnitude over 2^53');
    }
    return { value: v };
  }
  if (major === 7 && ai >= 25 && ai <= 27) {
    if (!Number.isFinite(v)) throw new SealedError(`the plaintext is ${v}, want a finite number`);
    return { value: v };
  }
  throw new SealedError('the plaintext is not an integer, a float or a byte string');
}
