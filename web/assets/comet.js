// Checking a CometBFT signed header in the browser, as
// api.Client.VerifyProof does: the header hashes to the block id the
// commit signed, the validator set hashes to the header's validators_hash,
// and more than 2/3 of that set's voting power signed the commit (Ed25519
// over CometBFT's canonical vote bytes). Like the CLI's default mode, it
// trusts the validator set the node reports; a light client
// (thingnet readings verify --trust) trusts none.

import { concat } from './cbor.js';

const sha = async (b) => new Uint8Array(await crypto.subtle.digest('SHA-256', b));
const unhex = (s) => Uint8Array.from((s || '').match(/../g) || [], (h) => parseInt(h, 16));
const b64 = (s) => Uint8Array.from(atob(s || ''), (c) => c.charCodeAt(0));
const utf8 = (s) => new TextEncoder().encode(s);
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// --- protobuf encoding (proto3: zero values are left out) ---

function uvarint(n) {
  let v = BigInt(n);
  const out = [];
  while (v >= 128n) { out.push(Number(v & 127n) | 128); v >>= 7n; }
  out.push(Number(v));
  return Uint8Array.from(out);
}
const key = (field, wire) => uvarint(field * 8 + wire);
const pbVarint = (field, n) => (BigInt(n) === 0n ? new Uint8Array() : concat(key(field, 0), uvarint(BigInt.asUintN(64, BigInt(n)))));
const pbBytes = (field, b) => (b.length === 0 ? new Uint8Array() : concat(key(field, 2), uvarint(b.length), b));
const pbMsg = (field, b) => concat(key(field, 2), uvarint(b.length), b); // embedded messages are always written
function pbSfixed64(field, n) {
  if (BigInt(n) === 0n) return new Uint8Array();
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(n), true);
  return concat(key(field, 1), b);
}

// timestamp splits an RFC 3339 time with up to 9 fractional digits.
function timestamp(s) {
  const m = s.match(/^(.*?)(?:\.(\d+))?Z$/);
  if (!m) throw new Error(`bad time ${s}`);
  const secs = Math.floor(Date.parse(m[1] + 'Z') / 1000);
  const nanos = m[2] ? Number((m[2] + '000000000').slice(0, 9)) : 0;
  return concat(pbVarint(1, secs), pbVarint(2, nanos));
}

// merkle is CometBFT's merkle.HashFromByteSlices (RFC 6962 shape).
async function merkle(items) {
  if (items.length === 0) return sha(new Uint8Array());
  if (items.length === 1) return sha(concat(Uint8Array.of(0), items[0]));
  let k = 1;
  while (k * 2 < items.length) k *= 2;
  return sha(concat(Uint8Array.of(1), await merkle(items.slice(0, k)), await merkle(items.slice(k))));
}

const partSet = (p) => concat(pbVarint(1, p.total), pbBytes(2, unhex(p.hash)));

// headerHash is types.Header.Hash.
export async function headerHash(h) {
  const blockID = concat(pbBytes(1, unhex(h.last_block_id.hash)), pbMsg(2, partSet(h.last_block_id.parts)));
  const bv = (hx) => pbBytes(1, unhex(hx)); // gogoproto BytesValue
  return merkle([
    concat(pbVarint(1, h.version.block), pbVarint(2, h.version.app || 0)),
    pbBytes(1, utf8(h.chain_id)),
    pbVarint(1, h.height),
    timestamp(h.time),
    blockID,
    bv(h.last_commit_hash), bv(h.data_hash), bv(h.validators_hash), bv(h.next_validators_hash),
    bv(h.consensus_hash), bv(h.app_hash), bv(h.last_results_hash), bv(h.evidence_hash), bv(h.proposer_address),
  ]);
}

// validatorsHash is types.ValidatorSet.Hash.
export async function validatorsHash(vals) {
  return merkle(vals.map((v) => {
    if (v.pub_key.type !== 'tendermint/PubKeyEd25519') throw new Error(`validator key type ${v.pub_key.type} is not supported here`);
    return concat(pbMsg(1, pbBytes(1, b64(v.pub_key.value))), pbVarint(2, v.voting_power));
  }));
}

// voteSignBytes is types.VoteSignBytes of a precommit for the commit's block.
export function voteSignBytes(chainID, commit, sig) {
  const blockID = concat(pbBytes(1, unhex(commit.block_id.hash)), pbMsg(2, partSet(commit.block_id.parts)));
  const vote = concat(pbVarint(1, 2), pbSfixed64(2, commit.height), pbSfixed64(3, commit.round), pbMsg(4, blockID),
    pbMsg(5, timestamp(sig.timestamp)), pbBytes(6, utf8(chainID)));
  return concat(uvarint(vote.length), vote);
}

// verifyHeader checks a GET /v1/headers/{h} answer and returns what it
// established: {height, appHash (hex), power, total}.
export async function verifyHeader(res, chainID) {
  const { header, commit } = res.signed_header;
  if (chainID && header.chain_id !== chainID) throw new Error(`header of chain ${header.chain_id}, not ${chainID}`);
  if (commit.height !== header.height) throw new Error('the commit is of another height');
  const hh = await headerHash(header);
  if (!eq(hh, unhex(commit.block_id.hash))) throw new Error('the header does not hash to the block the commit signed');
  const vh = await validatorsHash(res.validators);
  if (!eq(vh, unhex(header.validators_hash))) throw new Error('the validator set does not hash to the header\'s validators_hash');
  const byAddr = new Map(res.validators.map((v) => [v.address, v]));
  let total = 0n, power = 0n;
  for (const v of res.validators) total += BigInt(v.voting_power);
  for (const s of commit.signatures) {
    if (s.block_id_flag !== 2) continue; // absent, or voted nil
    const v = byAddr.get(s.validator_address);
    if (!v) continue;
    const k = await crypto.subtle.importKey('raw', b64(v.pub_key.value), { name: 'Ed25519' }, false, ['verify']);
    if (await crypto.subtle.verify({ name: 'Ed25519' }, k, b64(s.signature), voteSignBytes(header.chain_id, commit, s))) power += BigInt(v.voting_power);
  }
  if (power * 3n <= total * 2n) throw new Error(`valid signatures hold ${power} of ${total} voting power: not more than 2/3`);
  return { height: Number(header.height), appHash: header.app_hash, power: Number(power), total: Number(total) };
}
