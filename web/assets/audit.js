// Checking an audit bundle in the browser (docs/protocol.md, "Audit
// bundles"): the page (#/audit) takes a dropped bundle and a trusted
// header (HEIGHT:HASH) and checks, with WebCrypto and no request to any
// node, what `thingnet audit verify` checks, with the same verifiers the
// explorer's "verify this reading" uses: readings with verify.js's
// verifyReading, headers with comet.js's verifyHeader and headerHash.
//
//  1. every header hashes to the block id its commit signed and more than
//     2/3 of its validators' power signed it;
//  2. the trusted header has the trusted hash; headers below it are linked
//     to it by hash (last_block_id), headers above it are signed by more
//     than 1/3 of the last verified header's validators (skipping) or by
//     the set it named next (adjacent). The browser applies no trusting
//     period: `thingnet audit verify` does;
//  3. every ledger proof gives the app hash of the state's header;
//  4. every device's record counts exactly the history events given;
//  5. every reading verifies end to end (verifyReading); an erased or
//     withheld entry's hash is in the anchored log (verifyAnchored);
//  6. the exporter's signature, when the bundle is signed.

import { verifyReading, verifyAnchored, ics23Root, deviceKey, historyKey, parseEnvelope, didKey, b64, hex, unhex, eq, sha256 } from './verify.js';
import { verifyHeader, headerHash, voteSignBytes } from './comet.js';
import { decode } from './cbor.js';

const utf8 = (s) => new TextEncoder().encode(s);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

// keyName prints a state key: its text, a binary suffix in hex.
function keyName(k) {
  const i = k.findIndex((c) => c < 0x20 || c > 0x7e);
  return i < 0 ? new TextDecoder().decode(k) : new TextDecoder().decode(k.subarray(0, i)) + hex(k.subarray(i));
}

// trustedPower is the power of vals (the last verified header's
// validators) whose valid signatures are in commit.
async function trustedPower(vals, commit, chainID) {
  const byAddr = new Map(vals.map((v) => [v.address, v]));
  let power = 0n, total = 0n;
  for (const v of vals) total += BigInt(v.voting_power);
  for (const s of commit.signatures) {
    if (s.block_id_flag !== 2) continue;
    const v = byAddr.get(s.validator_address);
    if (!v) continue;
    const k = await crypto.subtle.importKey('raw', b64(v.pub_key.value), { name: 'Ed25519' }, false, ['verify']);
    if (await crypto.subtle.verify({ name: 'Ed25519' }, k, b64(s.signature), voteSignBytes(chainID, commit, s))) power += BigInt(v.voting_power);
  }
  return { power, total };
}

// verifyBundle checks a bundle's text from a trusted header
// ({height, hash: hex}). It returns a summary, or throws an Error naming
// the item refused.
export async function verifyBundle(text, trust, progress = () => {}) {
  let b;
  try {
    b = JSON.parse(text);
  } catch (err) {
    throw new Error(`not a bundle: ${err.message}`);
  }
  if (b.format !== 'thingnet-audit-bundle') throw new Error(`not a bundle: format ${JSON.stringify(b.format)}`);
  if (b.version !== 1) throw new Error(`bundle version ${b.version}; this page reads version 1`);
  for (const m of ['headers', 'proofs', 'anchors', 'devices', 'readings']) {
    if (!Array.isArray(b[m])) throw new Error(`the bundle has no ${m}`);
  }

  // 1. Headers, each on its own.
  const byHeight = new Map();
  let prev = 0;
  for (const h of b.headers) {
    const height = Number(h.signed_header.header.height);
    if (height <= prev) throw new Error(`header ${height}: headers must be in ascending height, each once`);
    prev = height;
    try {
      await verifyHeader(h, b.chain_id);
    } catch (err) {
      throw new Error(`header ${height}: ${err.message}`);
    }
    byHeight.set(height, h);
  }
  progress(`${b.headers.length} header(s) signed by their validators`);

  // 2. From the trusted header.
  const th = byHeight.get(trust.height);
  if (!th) throw new Error(`the trusted header ${trust.height} is not in the bundle (the exporter built it from header ${b.trust_height})`);
  const thHash = await headerHash(th.signed_header.header);
  if (!eq(thHash, unhex(trust.hash))) throw new Error(`the trusted header ${trust.height}: it hashes to ${hex(thHash).toUpperCase()}, not the trusted ${trust.hash.toUpperCase()}`);
  const heights = [...byHeight.keys()];
  for (const h of heights.filter((x) => x < trust.height).reverse()) {
    const above = byHeight.get(h + 1);
    const hash = await headerHash(byHeight.get(h).signed_header.header);
    if (!above || !eq(hash, unhex(above.signed_header.header.last_block_id.hash))) {
      throw new Error(`header ${h}: not the header that header ${h + 1} links to (walking back from the trusted header ${trust.height})`);
    }
  }
  let verified = th;
  for (const h of heights.filter((x) => x > trust.height)) {
    const u = byHeight.get(h), vh = Number(verified.signed_header.header.height);
    if (h === vh + 1) {
      if (u.signed_header.header.validators_hash !== verified.signed_header.header.next_validators_hash) {
        throw new Error(`header ${h}: its validators are not those header ${vh} named next`);
      }
    } else {
      const { power, total } = await trustedPower(verified.validators, u.signed_header.commit, b.chain_id);
      if (power * 3n <= total) throw new Error(`header ${h}: validators of header ${vh} holding ${power} of ${total} power signed it: not more than 1/3`);
    }
    verified = u;
  }
  progress(`every header linked to the trusted header ${trust.height}`);

  // 3. Proofs, against the state header's app hash.
  const sh = byHeight.get(b.state_height + 1);
  if (!sh) throw new Error(`header ${b.state_height + 1}, which carries the app hash of the state height ${b.state_height}, is not in the bundle`);
  const appHash = unhex(sh.signed_header.header.app_hash);
  for (const [i, p] of b.proofs.entries()) {
    const name = `proof ${i} (key ${keyName(b64(p.key))})`;
    if (p.height !== b.state_height || !p.value) throw new Error(`${name}: not a record of the state height ${b.state_height}`);
    let root;
    try {
      root = await ics23Root(b64(p.proof), b64(p.key), b64(p.value));
    } catch (err) {
      throw new Error(`${name}: ${err.message}`);
    }
    if (!eq(root, appHash) || !eq(b64(p.root), appHash)) throw new Error(`${name}: proof does not verify against the app hash ${hex(appHash).toUpperCase()} of header ${b.state_height + 1}`);
  }
  progress(`${b.proofs.length} ledger proof(s) against the app hash of header ${b.state_height + 1}`);

  // 4. Devices.
  const devices = new Map();
  for (const d of b.devices) {
    const p = b.proofs[d.record];
    if (!p || !eq(b64(p.key), deviceKey(d.id))) throw new Error(`device ${d.id}: its record proof is of another key`);
    const rec = decode(b64(p.value));
    if (rec.get(1) !== d.id) throw new Error(`device ${d.id}: its record is of ${rec.get(1)}`);
    if (rec.get(2) !== b.org) throw new Error(`device ${d.id}: it belongs to organisation ${rec.get(2)}, not ${b.org}`);
    if (rec.get(10) !== d.history.length) throw new Error(`device ${d.id}: its record counts ${rec.get(10)} history events, the bundle has ${d.history.length}`);
    d.history.forEach((pi, i) => {
      const q = b.proofs[pi];
      if (!q || !eq(b64(q.key), historyKey(d.id, i + 1))) throw new Error(`device ${d.id}: history event ${i + 1}: its proof is of another key`);
    });
    const erasures = (d.erasures || []).map((pi, j) => {
      const q = b.proofs[pi];
      const e = q && decode(b64(q.value));
      if (!e || e.get(3) !== d.id || e.get(2) !== b.org || !keyName(b64(q.key)).startsWith('er/')) throw new Error(`device ${d.id}: erasure ${j} is not an erasure of its readings`);
      return e.get(1);
    });
    devices.set(d.id, { id: d.id, status: rec.get(4), events: d.history.length, readings: 0, attested: 0, entries: 0, erased: 0, withheld: 0, erasures, refused: d.refused ? d.refused.message : '' });
  }

  // 5. Readings.
  const header = async (h) => byHeight.get(h);
  let full = 0, erased = 0, withheld = 0;
  for (const [i, r] of b.readings.entries()) {
    const name = `reading ${i} (gateway ${r.gateway}, index ${r.index})`;
    const dev = devices.get(r.device);
    if (!dev || dev.refused) throw new Error(`${name}: listed under device ${r.device}, which the bundle does not export`);
    const a = b.anchors[r.anchor];
    if (!a) throw new Error(`${name}: refers to an anchor not in the bundle`);
    const ap = b.proofs[a.proof];
    if (!r.envelope) {
      const res = await verifyAnchored({
        gateway: r.gateway, index: r.index, entry_hash: r.entry_hash, auth_height: r.auth_height || 0, received_at: r.received_at || 0,
        anchor: { gateway: a.gateway, size: a.size, root: a.root, height: a.height, count: a.count },
        inclusion: r.inclusion, height: b.state_height, anchor_proof: ap,
      }, header);
      if (!res.ok) {
        const s = res.steps.find((x) => !x.ok) || { name: 'proof', detail: 'incomplete' };
        throw new Error(`${name} (${r.withheld.code}): ${s.name}: ${s.detail}`);
      }
      if (r.withheld.code === 'erased') { erased++; dev.erased++; } else { withheld++; dev.withheld++; }
      continue;
    }
    const p = {
      gateway: r.gateway, index: r.index, envelope: r.envelope, auth_height: r.auth_height || 0, received_at: r.received_at || 0,
      anchor: { gateway: a.gateway, size: a.size, root: a.root, height: a.height, count: a.count },
      inclusion: r.inclusion, height: b.state_height, anchor_proof: ap,
      signer: { event: b.proofs[r.signer[0]], next: b.proofs[r.signer[1]] },
    };
    const res = await verifyReading(p, header);
    if (!res.ok) {
      const s = res.steps.find((x) => !x.ok) || { name: 'proof', detail: 'incomplete' };
      throw new Error(`${name}: ${s.name}: ${s.detail}`);
    }
    const e = parseEnvelope(b64(r.envelope));
    if (e.device !== r.device) throw new Error(`${name}: the envelope is of device ${e.device}, not ${r.device}`);
    full++;
    dev.entries++;
    dev.readings += e.readings.length;
    if (e.attested) dev.attested += e.readings.length; // signed by the attesting gateway, not the device
    if (i % 50 === 0) progress(`${i + 1} of ${b.readings.length} log entries verified`);
  }

  // 6. The exporter's signature.
  let signed = '';
  if (b.signature || b.exporter) {
    const at = text.lastIndexOf(',"signature":"');
    if (!b.signature || at < 0) throw new Error(`the bundle names its exporter ${b.exporter} but is not signed`);
    const digest = await sha256(utf8(text.slice(0, at) + '}\n'));
    const msg = new Uint8Array([...utf8('thingnet/audit-bundle/v1'), 0, ...digest]);
    const k = didKey(b.exporter);
    const key = await crypto.subtle.importKey('raw', k.raw, k.alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const ok = await crypto.subtle.verify(k.alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' }, key, b64(b.signature), msg);
    if (!ok) throw new Error(`the bundle: the exporter's signature does not check`);
    signed = b.exporter;
  }
  return {
    chainID: b.chain_id, org: b.org, from: b.from, to: b.to, exporter: signed, trusted: trust.height,
    stateHeight: b.state_height, headers: heights, devices: [...devices.values()], full, erased, withheld,
  };
}

// parseTrust reads HEIGHT:HASH.
export function parseTrust(s) {
  const m = /^\s*(\d+):([0-9A-Fa-f]{64})\s*$/.exec(s || '');
  if (!m) throw new Error('the trusted header is HEIGHT:HASH (the hash in hex, as `thingnet tx block HEIGHT` prints it)');
  return { height: Number(m[1]), hash: m[2] };
}

// auditPage is #/audit: a drop zone for a bundle, checked in the page.
export async function auditPage(v) {
  v.innerHTML = `<h2>Check an audit bundle</h2>
    <p class="muted">A bundle (<span class="mono">thingnet audit export</span>) holds an organisation's devices' history and readings with every proof and the
    headers that tie them to one header you trust. It is checked here, in your browser, with no request to any node: give the header you trust
    (its hash from a source you trust, e.g. <span class="mono">thingnet tx block HEIGHT</span>) and drop the file.</p>
    <p><label>trusted header <input id="audit-trust" class="mono" size="80" placeholder="HEIGHT:HASH"></label></p>
    <div id="audit-drop" class="dropzone" tabindex="0">drop a bundle here, or <label class="link">choose a file<input id="audit-file" type="file" hidden></label></div>
    <div id="audit-progress" class="muted"></div>
    <div id="audit-result"></div>`;
  const zone = v.querySelector('#audit-drop');
  const out = v.querySelector('#audit-result');
  const prog = v.querySelector('#audit-progress');
  const check = async (file) => {
    out.innerHTML = '';
    delete out.dataset.done;
    try {
      const trust = parseTrust(document.querySelector('#audit-trust').value);
      const s = await verifyBundle(await file.text(), trust, (m) => { prog.textContent = m; });
      const rows = s.devices.map((d) => `<tr><td class="mono">${esc(d.id)}</td><td>${esc(d.status)}</td><td>${d.events}</td>
        <td>${d.refused ? `<span class="muted">not exported: ${esc(d.refused)}</span>` : `${d.readings} in ${d.entries} entries${d.attested ? ` (${d.attested} gateway-attested)` : ''}`}</td><td>${d.erased}${d.erasures.length ? ` (erasure ${d.erasures.join(', ')})` : ''}</td><td>${d.withheld}</td></tr>`).join('');
      out.innerHTML = `<p id="audit-verdict" class="verdict ok">verified: ${s.full} log entries in full, ${s.erased} erased, ${s.withheld} withheld, from the trusted header ${s.trusted}</p>
        <p>organisation ${esc(s.org)} on chain ${esc(s.chainID)}; every ledger proof is of state ${s.stateHeight}; headers ${s.headers[0]}..${s.headers[s.headers.length - 1]};
        ${s.exporter ? `signed by <span class="mono">${esc(s.exporter)}</span>` : 'unsigned'}</p>
        <table id="audit-devices"><thead><tr><th>device</th><th>status</th><th>history events</th><th>readings verified</th><th>erased</th><th>withheld</th></tr></thead><tbody>${rows}</tbody></table>`;
    } catch (err) {
      out.innerHTML = `<p id="audit-verdict" class="verdict bad">refused: ${esc(err.message)}</p>`;
    }
    prog.textContent = '';
    out.dataset.done = '1';
  };
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) check(f);
  });
  v.querySelector('#audit-file').addEventListener('change', (e) => { if (e.target.files[0]) check(e.target.files[0]); });
}
