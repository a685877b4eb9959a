// "Verify this reading", in the browser: the same checks as
// gateway.VerifyReading (docs/readings.md), with WebCrypto.
//
//  1. the envelope is a COSE_Sign1 reading (CBOR);
//  2. its RFC 6962 leaf hash and inclusion proof give the anchored root;
//  3. the anchor record (with that root) is in a recent ledger state: its
//     ICS23 proof gives the app hash of the proof's height, which is the app
//     hash in the next block's header;
//  4. in the same state, the signer's history event in force at the height
//     the gateway authenticated the reading (the last one at or before it:
//     the next event is later, or the device record counts no more) says
//     it was active, with a did:key: records that stay in the state, so
//     this holds however many old versions a node prunes;
//  5. the signature over the COSE Sig_structure checks with that key.
//
//  6. that header hashes to the block id its commit signed, and more than
//     2/3 of the voting power of the validator set the node reports signed
//     it (comet.js), as `thingnet readings verify` does; a light client
//     (`--trust HEIGHT:HASH`) also trusts no node for the validator set.

import { decode, concat, bstr, tstr, head } from './cbor.js';
import { verifyHeader } from './comet.js';

export const b64 = (s) => Uint8Array.from(atob(s || ''), (c) => c.charCodeAt(0));
export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
export const unhex = (s) => Uint8Array.from((s || '').match(/../g) || [], (h) => parseInt(h, 16));
export const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const utf8 = (s) => new TextEncoder().encode(s);

export async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(...parts)));
}

// merkleRoot recomputes an RFC 6962 root from a leaf's data, its index, the
// tree size and the inclusion path (RFC 9162, 2.1.3.2).
export async function merkleRoot(data, index, size, path) {
  return merkleRootOfLeaf(await sha256(Uint8Array.of(0), data), index, size, path);
}

// merkleRootOfLeaf is merkleRoot from the leaf's hash (an erased or
// withheld entry's entry_hash).
export async function merkleRootOfLeaf(leaf, index, size, path) {
  if (index >= size) throw new Error(`index ${index} is not below the tree size ${size}`);
  let fn = index, sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) throw new Error('the inclusion path is too long');
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('the inclusion path is too short');
  return r;
}

// --- protobuf, for ics23.CommitmentProof ---

function pbFields(b) {
  const out = [];
  let i = 0;
  const varint = () => {
    let v = 0, mul = 1;
    for (;;) {
      if (i >= b.length) throw new Error('truncated protobuf');
      const x = b[i++];
      v += (x & 0x7f) * mul;
      if (!(x & 0x80)) return v;
      mul *= 128;
    }
  };
  while (i < b.length) {
    const key = varint(), field = Math.floor(key / 8), wt = key % 8;
    if (wt === 0) out.push([field, varint()]);
    else if (wt === 2) { const n = varint(); if (i + n > b.length) throw new Error('truncated protobuf'); out.push([field, b.subarray(i, i + n)]); i += n; }
    else throw new Error(`unexpected protobuf wire type ${wt}`);
  }
  return out;
}

function varintBytes(n) {
  const out = [];
  while (n >= 128) { out.push((n % 128) | 128); n = Math.floor(n / 128); }
  out.push(n);
  return Uint8Array.from(out);
}

async function prehash(op, b) {
  if (op === 0) return b;
  if (op === 1) return sha256(b);
  throw new Error(`unsupported ics23 hash op ${op}`);
}

function lengthPrefix(op, b) {
  if (op === 0) return b;
  if (op === 1) return concat(varintBytes(b.length), b);
  throw new Error(`unsupported ics23 length op ${op}`);
}

// IAVL's ICS-23 spec (ics23.IavlSpec): leaves are SHA-256 over the prefix
// (starting 0x00), the length-prefixed key and the length-prefixed
// SHA-256 of the value; an inner node's prefix holds 4 to 12 bytes before
// its left child, and each child hash comes with its 1-byte length (33).
const IAVL = { childSize: 33, minPrefix: 4, maxPrefix: 12 };

// existence parses an ics23 ExistenceProof and computes its root, after
// checking its ops against the IAVL spec. It returns the key, the value,
// the root and the path (leaf to root) of {prefix, suffix}.
async function existence(b) {
  let k, v, leaf = null;
  const raw = [];
  for (const [f, x] of pbFields(b)) {
    if (f === 1) k = x; else if (f === 2) v = x; else if (f === 3) leaf = x; else if (f === 4) raw.push(x);
  }
  if (!k || !v) throw new Error('the state proof has no key or value');
  if (!leaf) throw new Error('the state proof has no leaf');
  const lo = { hash: 0, pk: 0, pv: 0, len: 0, prefix: new Uint8Array() };
  for (const [f, x] of pbFields(leaf)) {
    if (f === 1) lo.hash = x; else if (f === 2) lo.pk = x; else if (f === 3) lo.pv = x; else if (f === 4) lo.len = x; else if (f === 5) lo.prefix = x;
  }
  if (lo.hash !== 1) throw new Error('the state proof does not use SHA-256');
  if (lo.prefix[0] !== 0) throw new Error('the state proof\'s leaf is not an IAVL leaf');
  let h = await sha256(lo.prefix, lengthPrefix(lo.len, await prehash(lo.pk, k)), lengthPrefix(lo.len, await prehash(lo.pv, v)));
  const path = [];
  for (const step of raw) {
    let hop = 0, prefix = new Uint8Array(), suffix = new Uint8Array();
    for (const [f, x] of pbFields(step)) {
      if (f === 1) hop = x; else if (f === 2) prefix = x; else if (f === 3) suffix = x;
    }
    if (hop !== 1) throw new Error('the state proof does not use SHA-256');
    if (prefix[0] === 0 || branchOf({ prefix, suffix }) < 0) throw new Error('the state proof has an inner node that is not an IAVL one');
    h = await sha256(prefix, h, suffix);
    path.push({ prefix, suffix });
  }
  return { key: k, value: v, root: h, path };
}

// branchOf is the side (0 left, 1 right) an inner step's child is on, from
// its padding, or -1 (ics23's orderFromPadding).
function branchOf(s) {
  for (const b of [0, 1]) {
    const pre = b * IAVL.childSize;
    if (s.prefix.length >= pre + IAVL.minPrefix && s.prefix.length <= pre + IAVL.maxPrefix && s.suffix.length === (1 - b) * IAVL.childSize) return b;
  }
  return -1;
}
const allOn = (path, b) => path.every((s) => branchOf(s) === b);

// leftNeighbours says whether the leaves of paths l and r are adjacent, l
// just left of r (ics23's IsLeftNeighbor): below the node where their
// paths part, l always goes right and r always left.
function leftNeighbours(l, r) {
  let i = l.length - 1, j = r.length - 1;
  while (i >= 0 && j >= 0 && eq(l[i].prefix, r[j].prefix) && eq(l[i].suffix, r[j].suffix)) { i--; j--; }
  if (i < 0 || j < 0 || branchOf(l[i]) !== 0 || branchOf(r[j]) !== 1) return false;
  return allOn(l.slice(0, i), 1) && allOn(r.slice(0, j), 0);
}

const cmp = (a, b) => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
};

// ics23Root computes the root an ICS23 existence proof commits to, after
// checking that it proves key = value.
export async function ics23Root(proof, key, value) {
  const exist = pbFields(proof).find(([f]) => f === 1);
  if (!exist) throw new Error('the state proof is not a membership proof');
  const e = await existence(exist[1]);
  if (!eq(e.key, key)) throw new Error('the state proof is of another key');
  if (!eq(e.value, value)) throw new Error('the state proof is of another value');
  return e.root;
}

// ics23AbsentRoot computes the root an ICS23 non-existence proof commits
// to, after checking that it proves key absent: the leaves either side of
// key are adjacent in the tree (or the first or last leaf), and both give
// the same root (ics23.VerifyNonMembership with the IAVL spec).
export async function ics23AbsentRoot(proof, key) {
  const ne = pbFields(proof).find(([f]) => f === 2);
  if (!ne) throw new Error('the state proof is not a proof of absence');
  let left = null, right = null;
  for (const [f, x] of pbFields(ne[1])) {
    if (f === 1 && !eq(x, key)) throw new Error('the proof of absence is of another key');
    if (f === 2) left = await existence(x); else if (f === 3) right = await existence(x);
  }
  if (!left && !right) throw new Error('the proof of absence has no neighbour');
  if (left && right && !eq(left.root, right.root)) throw new Error('the proof of absence\'s neighbours give two roots');
  if (left && cmp(left.key, key) >= 0) throw new Error('the proof of absence\'s left neighbour is not left of the key');
  if (right && cmp(key, right.key) >= 0) throw new Error('the proof of absence\'s right neighbour is not right of the key');
  const adjacent = !left ? allOn(right.path, 0) : !right ? allOn(left.path, 1) : leftNeighbours(left.path, right.path);
  if (!adjacent) throw new Error('the proof of absence\'s neighbours are not adjacent leaves');
  return (left || right).root;
}

// checkProof checks, as steps, a record proof (record.Proof: GET ...?prove=true):
// its ICS-23 proof (inclusion of p.value, or with none, absence of p.key)
// gives p.root, and that is the app hash in the header after p.height,
// signed by > 2/3 of the voting power. It returns the app hash, or null
// after a failed step. name names the proof's step; what says what it
// proves.
export async function checkProof(p, name, what, step, header) {
  let appHash;
  try {
    appHash = p.value ? await ics23Root(b64(p.proof), b64(p.key), b64(p.value)) : await ics23AbsentRoot(b64(p.proof), b64(p.key));
  } catch (err) {
    step(name, false, err.message);
    return null;
  }
  if (!step(name, eq(appHash, b64(p.root)), `ICS23 proof ${what}: app hash ${hex(appHash)} of the state at height ${p.height}`)) return null;
  let hv;
  try {
    hv = await verifyHeader(await header(p.height + 1));
  } catch (err) {
    step('header', false, `header ${p.height + 1}: ${err.message}`);
    return null;
  }
  if (!step('header', hv.appHash.toLowerCase() === hex(appHash),
    `header ${hv.height} hashes to the block its commit signed, by validators holding ${hv.power} of ${hv.total} voting power (> 2/3); its app hash ${hv.appHash.toLowerCase()}`)) return null;
  return appHash;
}

// --- did:key ---

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function base58(s) {
  let n = 0n;
  for (const c of s) {
    const d = B58.indexOf(c);
    if (d < 0) throw new Error(`"${c}" is not base58`);
    n = n * 58n + BigInt(d);
  }
  const out = [];
  while (n > 0n) { out.unshift(Number(n % 256n)); n /= 256n; }
  for (const c of s) { if (c !== '1') break; out.unshift(0); }
  return Uint8Array.from(out);
}

// didKey returns the algorithm and raw public key of a did:key.
export function didKey(did) {
  if (!did.startsWith('did:key:z')) throw new Error(`${did} is not a base58btc did:key`);
  const b = base58(did.slice(9));
  if (b[0] === 0xed && b[1] === 0x01 && b.length === 34) return { alg: 'Ed25519', raw: b.subarray(2) };
  if (b[0] === 0x80 && b[1] === 0x24 && b.length === 35) return { alg: 'P-256', raw: b.subarray(2) };
  throw new Error('unknown did:key key type');
}

// --- the reading ---

export const EXTERNAL_AAD = 'thingnet/reading/v1';

// parseEnvelope decodes a COSE_Sign1 reading envelope.
export function parseEnvelope(env) {
  const m = decode(env);
  if (!m || m.tag !== 18 || !Array.isArray(m.value) || m.value.length !== 4) throw new Error('not a COSE_Sign1 message (tag 18, 4 items)');
  const [prot, , payload, sig] = m.value;
  const ph = decode(prot);
  const fields = decode(payload);
  const kid = ph.get(4);
  return {
    protected: prot, payload, signature: sig, alg: ph.get(1),
    kid: kid instanceof Uint8Array ? new TextDecoder().decode(kid) : String(kid),
    device: fields.get(1), attested: fields.get(8),
    readings: fields.has(7) ? fields.get(7) : [fields],
  };
}

// sigStructure is what the device signed (RFC 9052 4.4).
export function sigStructure(e) {
  return concat(head(4, 4), tstr('Signature1'), bstr(e.protected), bstr(utf8(EXTERNAL_AAD)), bstr(e.payload));
}

export async function verifySignature(e, did) {
  const k = didKey(did);
  const data = sigStructure(e);
  if (k.alg === 'Ed25519') {
    if (e.alg !== -8) throw new Error(`the envelope says alg ${e.alg}, the key is Ed25519`);
    let key;
    try {
      key = await crypto.subtle.importKey('raw', k.raw, { name: 'Ed25519' }, false, ['verify']);
    } catch (err) {
      throw new Error(`this browser has no WebCrypto Ed25519 (${err.message}); use thingnet readings verify`);
    }
    return crypto.subtle.verify({ name: 'Ed25519' }, key, e.signature, data);
  }
  if (e.alg !== -7) throw new Error(`the envelope says alg ${e.alg}, the key is P-256`);
  const key = await crypto.subtle.importKey('raw', k.raw, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, e.signature, data);
}

// anchorKey and deviceKey are the ledger's state keys (ledger/state.go).
export const anchorKey = (gw, size) => {
  const s = new Uint8Array(8);
  new DataView(s.buffer).setBigUint64(0, BigInt(size));
  return concat(utf8('L/' + gw + '/'), s);
};
export const deviceKey = (id) => utf8('d/' + id);
// historyKey is ledger.HistoryKey: h/<device>/<seq, 8 bytes big-endian>.
export const historyKey = (id, seq) => {
  const s = new Uint8Array(8);
  new DataView(s.buffer).setBigUint64(0, BigInt(seq));
  return concat(utf8('h/' + id + '/'), s);
};

// logEntry rebuilds the log entry whose hash is the leaf (reading.EntryBytes
// in Go, docs/protocol.md): the envelope alone (layout 1, no auth height);
// or 0x02, the height the gateway authenticated the reading at (8 bytes,
// big-endian), the envelope (layout 2); or 0x03, that height, the time the
// gateway received it (Unix ms, 8 bytes, big-endian), the envelope
// (layout 3).
export function logEntry(env, authHeight, receivedAt) {
  if (!authHeight && !receivedAt) return env;
  const head = receivedAt ? 17 : 9;
  const b = new Uint8Array(head + env.length);
  const v = new DataView(b.buffer);
  b[0] = receivedAt ? 0x03 : 0x02;
  v.setBigUint64(1, BigInt(authHeight || 0));
  if (receivedAt) v.setBigUint64(9, BigInt(receivedAt));
  b.set(env, head);
  return b;
}

// verifyReading checks a ReadingProof (GET /v1/readings/{index}).
// header(h) returns the answer of GET /v1/headers/{h}. With
// tamper, one byte of the reading's payload is changed first, as a forger
// would, to show that the checks catch it. It returns the steps taken, each
// {name, ok, detail}; the reading is verified when every step is ok.
// checkAnchor checks, as steps, the anchor record of p against the
// anchored root, its ICS-23 proof to the app hash of p.height, and the
// header after it (signed by > 2/3 of the voting power); it returns the
// app hash, or null after a failed step.
async function checkAnchor(p, anchored, step, header) {
  const ap = p.anchor_proof;
  if (!eq(b64(ap.key), anchorKey(p.gateway, p.anchor.size))) { step('anchor record', false, 'the anchor proof is of another key'); return null; }
  const rec = decode(b64(ap.value));
  if (!step('anchor record', rec.get(1) === p.gateway && rec.get(2) === p.anchor.size && eq(rec.get(3), anchored) && rec.get(4) === p.anchor.height,
    `ledger record L/${p.gateway.slice(0, 20)}…/${p.anchor.size}: root ${hex(rec.get(3))}, anchored at height ${rec.get(4)}`)) return null;
  // The signer must have been active where the gateway authenticated the
  // reading, before the anchor (or at the anchor's height for layout 1).
  const auth = p.auth_height || 0;
  if (auth && auth >= p.anchor.height) {
    step('authentication height', false, `the entry says it was authenticated at height ${auth}, not before its anchor at height ${p.anchor.height}`);
    return null;
  }
  return checkProof(ap, 'anchor proof', 'of the anchor record', step, header);
}

// verifyAnchored checks the public part of a reading whose value is
// withheld (or erased): its entry hash is leaf p.index of the gateway's
// log under a root anchored on the ledger, proved to a signed header. It
// says nothing of the signer or the value (proof.VerifyAnchored in Go).
export async function verifyAnchored(p, header) {
  const steps = [];
  const step = (name, ok, detail) => { steps.push({ name, ok, detail }); return ok; };
  const done = () => ({ ok: steps.length > 0 && steps.every((s) => s.ok), steps });
  try {
    const anchored = b64(p.anchor.root);
    const root = await merkleRootOfLeaf(b64(p.entry_hash), p.index, p.anchor.size, (p.inclusion || []).map(b64));
    step('inclusion', eq(root, anchored), `entry hash ${hex(b64(p.entry_hash))} is leaf ${p.index} of ${p.anchor.size}: computed root ${hex(root)}; anchored root ${hex(anchored)}`);
    if (p.proof_error) {
      step('ledger proofs', false, `the node has no proof of this entry: ${p.proof_error.message}`);
      return done();
    }
    if (!p.anchor_proof || p.anchor_proof.height !== p.height) {
      step('ledger proofs', false, `the anchor proof is missing, or not of the proof's height ${p.height}`);
      return done();
    }
    await checkAnchor(p, anchored, step, header);
  } catch (err) {
    step('error', false, err.message);
  }
  return done();
}

export async function verifyReading(p, header, { tamper = false } = {}) {
  const steps = [];
  const step = (name, ok, detail) => { steps.push({ name, ok, detail }); return ok; };
  const done = () => ({ ok: steps.length > 0 && steps.every((s) => s.ok), steps });
  try {
    const env = b64(p.envelope);
    let e = parseEnvelope(env);
    if (tamper) {
      env[e.payload.offset + e.payload.length - 1] ^= 0x01;
      e = parseEnvelope(env);
    }
    const r0 = e.readings[0];
    step('envelope', true, `COSE_Sign1 by ${e.kid}, ${e.readings.length} reading(s), first: seq ${r0.get(2)}, ${r0.get(4)} = ${r0.has(5) ? r0.get(5) : r0.has(9) ? '(sealed)' : '(bytes)'}`);

    const auth = p.auth_height || 0;
    const root = await merkleRoot(logEntry(env, auth, p.received_at || 0), p.index, p.anchor.size, (p.inclusion || []).map(b64));
    const anchored = b64(p.anchor.root);
    // Go on after a mismatch: the signature check below says more about it.
    step('inclusion', eq(root, anchored), `leaf ${p.index} of ${p.anchor.size}: computed root ${hex(root)}; anchored root ${hex(anchored)}`);

    if (p.proof_error) {
      step('ledger proofs', false, `the node has no proof of this reading: ${p.proof_error.message}`);
      return done();
    }
    const ap = p.anchor_proof, sp = p.signer || {};
    if (!ap || !sp.event || !sp.next || ap.height !== p.height || sp.event.height !== p.height || sp.next.height !== p.height) {
      step('ledger proofs', false, `the anchor and signer proofs are missing, or not all of the proof's height ${p.height}`);
      return done();
    }
    const sh0 = auth || p.anchor.height;
    const appHash = await checkAnchor(p, anchored, step, header);
    if (!appHash) return done();

    const signer = e.attested ? e.kid : e.device;
    if (e.kid !== signer) { step('signer', false, `kid ${e.kid} differs from the payload's device ${e.device}`); return done(); }
    const held = decode(b64(sp.event.value));
    const seq = held.get(1);
    const inState = async (q) => eq(await ics23Root(b64(q.proof), b64(q.key), b64(q.value)), appHash);
    if (!eq(b64(sp.event.key), historyKey(signer, seq)) || !(await inState(sp.event))) {
      step('signer history', false, `the signer proof is not a history event of ${signer} in the state of height ${p.height}`);
      return done();
    }
    let follows;
    const nk = b64(sp.next.key);
    if (eq(nk, historyKey(signer, seq + 1))) {
      const nx = decode(b64(sp.next.value));
      follows = nx.get(2) > sh0 ? `event ${seq + 1} follows at height ${nx.get(2)}` : null;
    } else if (eq(nk, deviceKey(signer))) {
      const dev = decode(b64(sp.next.value));
      follows = dev.get(10) === seq ? 'it is the latest event' : null;
    }
    if (!step('signer history', follows !== null && follows !== undefined && held.get(2) <= sh0 && (await inState(sp.next)),
      `${signer.slice(0, 24)}…'s history event ${seq} (height ${held.get(2)}) is the one in force at height ${sh0}: ${follows || 'NOT SHOWN'}`)) return done();
    if (!step('signer record', held.get(6) === 'active' && typeof held.get(8) === 'string',
      `${signer.slice(0, 24)}… was ${held.get(6)} at height ${sh0}, key ${String(held.get(8)).slice(0, 24)}…`)) return done();

    const ok = await verifySignature(e, held.get(8));
    step('signature', ok, ok ? `${e.alg === -8 ? 'Ed25519' : 'ECDSA P-256'} signature checks with the signer's key` : 'the signature does not check: the bytes are not what the device signed');
  } catch (err) {
    step('error', false, err.message);
  }
  return done();
}
