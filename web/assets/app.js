// The thingnet explorer: a read-only single-page app over the node's /v1
// API, /metrics and /v1/events. No framework, no build step.

import { verifyReading, hex, b64 } from './verify.js';

// Script errors are kept for the browser tests (window.__errors).
window.__errors = [];
window.addEventListener('error', (e) => window.__errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => window.__errors.push(String(e.reason && e.reason.message || e.reason)));

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const short = (s, n = 16) => (s && s.length > n + 6 ? s.slice(0, n) + '…' + s.slice(-4) : s || '');
const enc = encodeURIComponent;
const params = new URLSearchParams(location.search);

async function get(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(body && body.error ? `${body.error.code}: ${body.error.message}` : `${r.status} ${r.statusText}`);
  return body;
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const ago = (t) => {
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return new Date(t).toLocaleString();
};
const badge = (s) => `<span class="badge ${esc(s)}">${esc(s)}</span>`;
const devLink = (id) => `<a class="mono" href="#/device/${enc(id)}" title="${esc(id)}">${esc(short(id))}</a>`;
const card = (k, v, id) => `<div class="card"><div class="k">${esc(k)}</div><div class="v"${id ? ` id="${id}"` : ''}>${esc(v)}</div></div>`;
const kv = (pairs) => `<dl class="kv">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
const cli = (lines) => `<h2>Actions</h2><p class="muted">The explorer is read-only: changes are signed transactions. Run, with your key:</p><pre class="cli">${esc(lines.join('\n'))}</pre>`;

// --- page state: the current page's live handler and timers. A page is
// rendered into a detached element and shown when complete; events that
// arrive meanwhile are queued and given to it then, so none is lost. ---
const page = { onEvent: null, loading: null, timers: [], seq: 0 };
const every = (ms, f) => page.timers.push(setInterval(f, ms));

// --- routes ---
const routes = [
  [/^\/?$/, overview],
  [/^\/blocks(?:\/(\d+))?$/, blocks],
  [/^\/block\/(\d+)$/, block],
  [/^\/tx\/([0-9A-Fa-f]{64})$/, tx],
  [/^\/orgs$/, orgs],
  [/^\/org\/(.+)$/, org],
  [/^\/devices$/, devices],
  [/^\/device\/(.+)$/, device],
  [/^\/grants$/, grants],
  [/^\/anchors$/, anchors],
  [/^\/reading\/(\d+)$/, readingPage],
  [/^\/agreements$/, agreementsPage],
  [/^\/agreement\/(\d+)$/, agreementPage],
  [/^\/mesh$/, meshPage],
  [/^\/security$/, security],
  [/^\/api$/, apiPage],
];

async function route() {
  page.timers.forEach(clearInterval);
  page.timers = [];
  const seq = ++page.seq;
  const ctx = { handler: null, queue: [] };
  page.loading = ctx;
  const path = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  const view = $('#view');
  if (view.dataset.path !== path) {
    // Another page: take the old one away now. (A live refresh of the same
    // page keeps it on screen until the new one is ready.)
    delete view.dataset.path;
    view.innerHTML = '<p class="muted">loading…</p>';
  }
  const v = document.createElement('div');
  v.live = (h) => { ctx.handler = h; }; // a page's handler of live events
  const found = routes.find(([re]) => re.test(path));
  try {
    if (!found) throw new Error(`no such page: ${path}`);
    await found[1](v, ...path.match(found[0]).slice(1));
  } catch (err) {
    v.innerHTML = `<div class="err">${esc(err.message)}</div>`;
  }
  if (seq !== page.seq) return; // another page was asked for meanwhile
  view.replaceChildren(...v.childNodes);
  view.dataset.path = path; // the page shown, complete (the browser tests wait for it)
  page.loading = null;
  page.onEvent = ctx.handler;
  for (const [type, d] of ctx.queue) toPage(type, d);
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('cur', a.getAttribute('href') === '#' + path));
}

function toPage(type, d) {
  if (page.loading) {
    page.loading.queue.push([type, d]);
    return;
  }
  if (page.onEvent) {
    try { page.onEvent(type, d); } catch (err) { console.warn(err); }
  }
}

// --- overview and blocks ---

function blockRow(b, fresh) {
  const kinds = b.kinds ? Object.entries(b.kinds).map(([k, n]) => `${esc(k)}×${n}`).join(' ') : '';
  return `<tr data-height="${b.height}"${fresh ? ' class="new"' : ''}><td><a href="#/block/${b.height}">${b.height}</a></td>
    <td>${esc(new Date(b.time).toLocaleTimeString())}</td><td>${b.txs}</td><td class="muted">${kinds}</td>
    <td class="mono" title="${esc(b.proposer)}">${esc(short(b.proposer, 10))}</td><td class="mono">${esc(short(b.hash, 12))}</td></tr>`;
}
const blockTable = (rows) => `<table id="blocks"><thead><tr><th>height</th><th>time</th><th>txs</th><th>kinds</th><th>proposer</th><th>hash</th></tr></thead><tbody>${rows}</tbody></table>`;

async function recentBlocks(top, n) {
  const heights = [];
  for (let h = top; h > 0 && heights.length < n; h--) heights.push(h);
  const [list, recent] = await Promise.all([
    Promise.all(heights.map((h) => get('/v1/blocks/' + h))),
    get('/v1/events/recent?types=block&limit=' + Math.max(n, 1)).catch(() => ({ items: [] })),
  ]);
  const kinds = new Map(recent.items.map((e) => [e.data.height, e.data.kinds]));
  return list.map((b) => ({ height: b.height, time: b.time, txs: b.txs.length, proposer: b.proposer, hash: b.hash, kinds: kinds.get(b.height) }));
}

function rates(bs) {
  if (bs.length < 2) return { bt: '–', tps: '–' };
  const span = (new Date(bs[0].time) - new Date(bs[bs.length - 1].time)) / 1000;
  const txs = bs.slice(0, -1).reduce((s, b) => s + b.txs, 0);
  return { bt: (span / (bs.length - 1)).toFixed(2) + ' s', tps: span > 0 ? (txs / span).toFixed(2) : '–' };
}

// txBars draws transactions per block (newest on the right) as SVG bars.
function txBars(bs) {
  const W = 640, H = 90, n = Math.max(bs.length, 1), max = Math.max(1, ...bs.map((b) => b.txs));
  const w = W / n;
  return `<svg id="tx-bars" class="chart" viewBox="0 0 ${W} ${H + 16}" width="100%" role="img" aria-label="transactions per block">
    ${bs.slice().reverse().map((b, i) => { const h = Math.max(1, (b.txs / max) * H); return `<rect class="bar" x="${(i * w + 1).toFixed(1)}" y="${(H - h).toFixed(1)}" width="${Math.max(w - 2, 1).toFixed(1)}" height="${h.toFixed(1)}"><title>block ${b.height}: ${b.txs} tx</title></rect>`; }).join('')}
    <text x="2" y="${H + 13}">txs per block, last ${bs.length} (max ${max})</text></svg>`;
}

async function overview(v) {
  const [st, vals] = await Promise.all([get('/v1/status'), get('/v1/validators')]);
  const bs = await recentBlocks(st.height, 20);
  const r = rates(bs);
  v.innerHTML = `<h1>Network overview</h1>
    <div class="cards">${card('height', st.height, 'ov-height')}${card('block time (avg of 20)', r.bt, 'ov-blocktime')}${card('tx/s (last 20 blocks)', r.tps, 'ov-tps')}${card('validators', vals.items.length, 'ov-validators')}${card('node', st.moniker || short(st.node_id, 8))}</div>
    <h2>Transactions</h2><div id="tx-bars-box">${txBars(bs)}</div>
    <h2>Latest blocks</h2>${blockTable(bs.map((b) => blockRow(b)).join(''))}
    <h2>Validators</h2><table><thead><tr><th>public key (Ed25519)</th><th>power</th></tr></thead><tbody>
    ${vals.items.map((x) => `<tr><td class="mono">${hex(b64(x.pub_key))}</td><td>${x.power}</td></tr>`).join('')}</tbody></table>`;
  v.live((type, d) => {
    if (type !== 'block' || (bs.length && d.height <= bs[0].height)) return;
    bs.unshift({ ...d });
    bs.splice(20);
    const rr = rates(bs);
    $('#ov-height').textContent = d.height;
    $('#ov-blocktime').textContent = rr.bt;
    $('#ov-tps').textContent = rr.tps;
    $('#tx-bars-box').innerHTML = txBars(bs);
    const body = $('#blocks tbody');
    body.insertAdjacentHTML('afterbegin', blockRow(d, true));
    while (body.rows.length > 20) body.deleteRow(-1);
  });
}

async function blocks(v, from) {
  const st = await get('/v1/status');
  const top = from ? Math.min(+from, st.height) : st.height;
  const bs = await recentBlocks(top, 50);
  const older = bs.length ? bs[bs.length - 1].height - 1 : 0;
  v.innerHTML = `<h1>Blocks</h1>${blockTable(bs.map((b) => blockRow(b)).join(''))}
    <p>${older > 0 ? `<a href="#/blocks/${older}">older blocks →</a>` : ''}</p>`;
  if (!from) {
    let shown = bs.length ? bs[0].height : 0;
    v.live((type, d) => {
      if (type !== 'block' || d.height <= shown) return;
      shown = d.height;
      $('#blocks tbody').insertAdjacentHTML('afterbegin', blockRow(d, true));
    });
  }
}

async function block(v, h) {
  const b = await get('/v1/blocks/' + h);
  const txs = await Promise.all(b.txs.slice(0, 100).map((x) => get('/v1/txs/' + x).catch(() => ({ hash: x }))));
  v.innerHTML = `<h1>Block ${b.height}</h1>
    ${kv([['hash', `<span class="mono">${esc(b.hash)}</span>`], ['time', esc(b.time)], ['proposer', `<span class="mono">${esc(b.proposer)}</span>`], ['app hash', `<span class="mono">${esc(b.app_hash)}</span>`], ['transactions', b.txs.length]])}
    <p><a href="#/block/${b.height - 1}">← ${b.height - 1}</a> · <a href="#/block/${b.height + 1}">${b.height + 1} →</a></p>
    <h2>Transactions</h2>${txTable(txs)}`;
}

function txTable(txs) {
  return `<table id="txs"><thead><tr><th>hash</th><th>kind</th><th>signer</th><th>result</th></tr></thead><tbody>
    ${txs.map((t) => `<tr><td><a class="mono" href="#/tx/${esc(t.hash)}">${esc(short(t.hash, 12))}</a></td><td>${esc(t.kind)}</td>
      <td>${t.signer ? devLink(t.signer) : ''}</td><td>${t.reason ? badge(t.code === 0 ? 'ok' : 'bad').replace(/>ok<|>bad</, `>${esc(t.reason)}<`) : ''}</td></tr>`).join('')}</tbody></table>`;
}

async function tx(v, hash) {
  const t = await get('/v1/txs/' + hash);
  v.innerHTML = `<h1>Transaction</h1>
    ${kv([['hash', `<span class="mono">${esc(t.hash)}</span>`], ['block', `<a href="#/block/${t.height}">${t.height}</a> (index ${t.index})`], ['kind', esc(t.kind)], ['signer', t.signer ? devLink(t.signer) : ''], ['nonce', t.nonce], ['result', `${esc(t.reason)} ${esc(t.log || '')}`]])}
    <h2>Message</h2><pre class="json">${esc(JSON.stringify(t.msg, null, 2))}</pre>
    <h2>Events</h2><pre class="json">${esc(JSON.stringify(t.events, null, 2))}</pre>`;
}

// --- organisations, devices, grants ---

async function orgs(v) {
  const p = await get('/v1/orgs?limit=1000');
  v.innerHTML = `<h1>Organisations</h1><table id="orgs"><thead><tr><th>id</th><th>name</th><th>admins</th><th>devices registered</th><th>created at height</th></tr></thead><tbody>
    ${p.items.map((o) => `<tr><td><a href="#/org/${enc(o.id)}">${esc(o.id)}</a></td><td>${esc(o.name)}</td><td>${o.admins.length}</td><td>${o.devices}</td><td>${o.created}</td></tr>`).join('')}</tbody></table>
    ${cli(['thingnet org create ORG --key ADMIN_KEY --name "Name"'])}`;
  v.live((type) => { if (type === 'org') route(); });
}

async function org(v, id) {
  const [o, ds] = await Promise.all([get('/v1/orgs/' + enc(id)), get('/v1/devices?limit=1000&org=' + enc(id))]);
  v.innerHTML = `<h1>Organisation ${esc(id)}</h1>
    ${kv([['name', esc(o.record.name)], ['created at height', o.record.created], ['devices registered', o.record.devices]])}
    <h2>Admins</h2><ul>${o.record.admins.map((a) => `<li class="mono">${esc(a)}</li>`).join('')}</ul>
    <h2>Devices</h2>${deviceTable(ds.items)}
    ${cli([`thingnet org admin add ${id} ADMIN_DID --key ADMIN_KEY`, `thingnet device register --org ${id} --device-key DEVICE_KEY --class sensor --key ADMIN_KEY`])}`;
}

function deviceTable(items) {
  return `<table id="devices"><thead><tr><th>device</th><th>org</th><th>class</th><th>status</th><th>firmware</th><th>updated at height</th></tr></thead><tbody>
    ${items.map((d) => `<tr data-id="${esc(d.id)}"><td>${devLink(d.id)}</td><td><a href="#/org/${enc(d.org)}">${esc(d.org)}</a></td><td>${esc(d.class)}</td>
      <td>${badge(d.status)}</td><td>${esc(d.firmware)}</td><td>${d.updated}</td></tr>`).join('')}</tbody></table>`;
}

async function devices(v) {
  const p = await get('/v1/devices?limit=1000');
  v.innerHTML = `<h1>Devices</h1><p class="muted">${p.items.length} device(s) at height ${p.height}${p.next ? ' (first 1000)' : ''}</p>${deviceTable(p.items)}`;
  v.live((type) => { if (type.startsWith('device.')) route(); });
}

function chart(items) {
  const pts = items.filter((r) => typeof r.value === 'number').map((r) => ({ t: new Date(r.time).getTime(), v: r.value }));
  if (pts.length === 0) return '<p class="muted">no numeric readings to chart</p>';
  const W = 640, H = 200, L = 48, R = 12, T = 12, B = 28;
  const t0 = Math.min(...pts.map((p) => p.t)), t1 = Math.max(...pts.map((p) => p.t));
  let v0 = Math.min(...pts.map((p) => p.v)), v1 = Math.max(...pts.map((p) => p.v));
  if (v0 === v1) { v0 -= 1; v1 += 1; }
  const x = (t) => L + (t1 === t0 ? (W - L - R) / 2 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (val) => T + (1 - (val - v0) / (v1 - v0)) * (H - T - B);
  const line = pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  return `<svg id="chart" class="chart" viewBox="0 0 ${W} ${H}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="readings over time">
    <line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/>
    <text x="${L - 6}" y="${y(v1) + 4}" text-anchor="end">${+v1.toFixed(3)}</text><text x="${L - 6}" y="${y(v0) + 4}" text-anchor="end">${+v0.toFixed(3)}</text>
    <text x="${L}" y="${H - 8}">${esc(new Date(t0).toLocaleTimeString())}</text><text x="${W - R}" y="${H - 8}" text-anchor="end">${esc(new Date(t1).toLocaleTimeString())}</text>
    <polyline class="line" points="${line}"/>${pts.map((p) => `<circle class="dot" cx="${x(p.t).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="3"/>`).join('')}</svg>`;
}

function readingRows(items) {
  return items.slice().reverse().map((r) => `<tr data-index="${r.index}"><td>${r.index}</td><td>${r.seq}</td><td>${esc(new Date(r.time).toLocaleString())}</td>
    <td>${esc(r.content_type)}</td><td>${r.value !== undefined ? esc(r.value) : `<span class="muted">${b64(r.bytes).length} bytes</span>`}</td>
    <td><button class="verify" data-index="${r.index}">verify this reading</button></td></tr>`).join('');
}

async function device(v, id) {
  const seq = page.seq;
  const [d, h, rs] = await Promise.all([
    get('/v1/devices/' + enc(id)),
    get('/v1/devices/' + enc(id) + '/history?limit=1000'),
    get('/v1/readings?limit=1000&device=' + enc(id)).catch((err) => ({ items: [], error: err.message })),
  ]);
  if (seq !== page.seq) return;
  const r = d.record;
  const items = rs.items.slice(-100);
  v.innerHTML = `<h1>Device <span class="mono">${esc(short(id, 24))}</span></h1>
    ${kv([['id', `<span class="mono">${esc(r.id)}</span>`], ['status', `<span id="device-status">${badge(r.status)}</span>`], ['organisation', `<a href="#/org/${enc(r.org)}">${esc(r.org)}</a>`],
      ['key', `<span class="mono">${esc(r.key)}</span>${r.key !== r.id ? ' (rotated)' : ''}`], ['class', esc(r.class)], ['firmware', esc(r.firmware) || '<span class="muted">–</span>'],
      ['labels', esc(Object.entries(r.labels || {}).map(([k, x]) => `${k}=${x}`).join(', '))], ['registered at height', r.registered], ['attested by', r.attested_by ? devLink(r.attested_by) : '–']])}
    <h2>Recent readings <span class="muted">(on this node's gateway; last ${items.length})</span></h2>
    <div id="chart-box">${chart(items)}</div>
    <div id="verify-box"></div>
    ${rs.error ? `<p class="muted">${esc(rs.error)}</p>` : ''}
    <table id="readings"><thead><tr><th>log index</th><th>seq</th><th>time</th><th>type</th><th>value</th><th></th></tr></thead><tbody>${readingRows(items)}</tbody></table>
    <h2>History</h2><ol id="history" class="timeline">${h.items.map((e) => `<li class="${esc(e.status)}"><b>${esc(e.kind)}</b> → ${badge(e.status)}
      at height <a href="#/block/${e.height}">${e.height}</a>, signed by ${devLink(e.signer)}${e.note ? ` — <i>${esc(e.note)}</i>` : ''}</li>`).join('')}</ol>
    ${cli([`thingnet device suspend ${id} --key ADMIN_KEY --reason "why"`, `thingnet device resume ${id} --key ADMIN_KEY`, `thingnet device update ${id} --firmware 1.2.3 --key ADMIN_KEY`,
      `thingnet device rotate ${id} --new-key NEW_KEY --key ADMIN_KEY`, `thingnet readings list --device ${id}`])}`;
  let last = items.length ? items[items.length - 1].index : -1;
  every(2000, async () => {
    const fresh = await get('/v1/readings?limit=1000&device=' + enc(id)).catch(() => null);
    if (!fresh || seq !== page.seq) return;
    const all = fresh.items.slice(-100);
    const newest = all.length ? all[all.length - 1].index : -1;
    if (newest === last) return;
    last = newest;
    $('#chart-box').innerHTML = chart(all);
    $('#readings tbody').innerHTML = readingRows(all);
  });
  v.live((type, ev) => {
    if (type.startsWith('device.') && ev.device === id) route();
  });
}

async function onVerifyClick(e) {
  const b = e.target.closest('button.verify');
  if (!b) return;
  const box = $('#verify-box');
  box.innerHTML = '<p class="muted">verifying…</p>';
  box.innerHTML = await verifyHTML(+b.dataset.index);
}

// --- verification ---

async function headerJSON(h) {
  for (let i = 0; ; i++) {
    try {
      const res = await get('/v1/headers/' + h);
      if (params.get('tamper') === 'header') {
        // As a lying node would: another app hash in the header.
        const hh = res.signed_header.header;
        hh.app_hash = (hh.app_hash[0] === '0' ? '1' : '0') + hh.app_hash.slice(1);
      }
      return res;
    } catch (err) {
      if (i >= 20) throw err;
      await sleep(250); // the next block may not be committed yet
    }
  }
}

async function verifyHTML(index) {
  const tamper = params.get('tamper') === '1'; // ?tamper=header alters the header instead
  let p;
  try {
    p = await get('/v1/readings/' + index);
  } catch (err) {
    return `<div id="verify-verdict" class="verdict bad">could not fetch reading ${index}: ${esc(err.message)}</div>`;
  }
  const res = await verifyReading(p, headerJSON, { tamper });
  const altered = tamper ? ' <span class="badge bad">tampered copy</span>' : params.get('tamper') === 'header' ? ' <span class="badge bad">header altered</span>' : '';
  return `<h2>Reading ${index}${altered}</h2>
    <div id="verify-verdict" class="verdict ${res.ok ? 'ok' : 'bad'}">${res.ok ? '✓ verified: signed by the device, in the gateway log, anchored on the ledger' : '✗ NOT verified'}</div>
    <ul id="verify-steps" class="steps">${res.steps.map((s) => `<li class="${s.ok ? 'ok' : 'bad'}"><span class="n">${esc(s.name)}</span> <span class="d">${esc(s.detail)}</span></li>`).join('')}</ul>
    <p class="muted">Checked in this page with WebCrypto: RFC 6962 inclusion, ICS23 state proofs to the header's app hash, the header against the
    validators' signatures, the device's signature. The validator set is the one this node reports; to trust no node, use a light client:
    <code>thingnet readings verify ${index} --trust HEIGHT:HASH</code>.</p>`;
}

async function readingPage(v, index) {
  v.innerHTML = `<h1>Verify reading ${index}</h1><div id="verify-box"><p class="muted">verifying…</p></div>`;
  const html = await verifyHTML(+index);
  $('#verify-box', v).innerHTML = html + `<p><a href="${params.get('tamper') === '1' ? '?' : '?tamper=1'}#/reading/${index}">${params.get('tamper') === '1' ? 'verify the genuine reading' : 'try a tampered copy (one payload byte changed)'}</a></p>`;
}

async function grants(v) {
  const p = await get('/v1/grants?limit=1000');
  v.innerHTML = `<h1>Grants</h1><table id="grants"><thead><tr><th>id</th><th>grantor</th><th>subject</th><th>action</th><th>resource</th><th>expiry</th><th>state</th></tr></thead><tbody>
    ${p.items.map((g) => `<tr><td>${g.id}</td><td class="mono">${esc(short(g.grantor, 24))}</td><td class="mono">${esc(short(g.subject, 24))}</td><td>${esc(g.action)}</td>
      <td class="mono">${esc(short(g.resource, 30))}</td><td>${g.expiry || '–'}</td><td>${g.revoked ? badge('revoked') : badge('active')}</td></tr>`).join('')}</tbody></table>
    ${cli(['thingnet grant add --grantor org:ORG --subject org:OTHER --action read --resource device:DID/readings --key ADMIN_KEY', 'thingnet grant revoke ID --key ADMIN_KEY'])}`;
  v.live((type) => { if (type === 'grant') route(); });
}

async function anchors(v) {
  const ds = await get('/v1/devices?limit=1000');
  const gws = ds.items.filter((d) => d.class === 'gateway');
  const as = await Promise.all(gws.map((g) => get('/v1/anchors/' + enc(g.id)).then((a) => a.record).catch(() => null)));
  v.innerHTML = `<h1>Data anchors</h1>
    <p class="muted">Each gateway appends the readings it stores to an RFC 6962 log and anchors the log's root on the ledger.</p>
    <table id="anchors"><thead><tr><th>gateway</th><th>log size</th><th>root</th><th>anchored at height</th><th>anchors</th></tr></thead><tbody>
    ${gws.map((g, i) => { const a = as[i]; return `<tr><td>${devLink(g.id)}</td>${a ? `<td>${a.size}</td><td class="mono">${hex(b64(a.root))}</td><td><a href="#/block/${a.height}">${a.height}</a></td><td>${a.count}</td>` : '<td colspan="4" class="muted">no anchor yet</td>'}</tr>`; }).join('')}</tbody></table>
    <h2>Verify a reading stored by this node's gateway</h2>
    <form id="verify-form" class="row"><label>log index <input id="verify-index" type="number" min="0" value="0"></label><button>verify this reading</button></form>`;
  $('#verify-form', v).addEventListener('submit', (e) => { e.preventDefault(); location.hash = '#/reading/' + $('#verify-index').value; });
  v.live((type) => { if (type === 'anchor') route(); });
}

// --- agreements ---

const partyList = (ps) => (ps || []).map((p) => `${esc(p.name)}: <span class="mono">${esc(short(p.principal, 20))}</span> ${p.accepted ? badge('ok').replace('>ok<', '>accepted<') : badge('warn').replace('>warn<', '>pending<')}`).join('<br>');

async function agreementsPage(v) {
  const p = await get('/v1/agreements?limit=1000');
  v.innerHTML = `<h1>Agreements</h1><p class="muted">Contracts between devices and organisations, executed by the ledger.</p>
    <table id="agreements"><thead><tr><th>id</th><th>name</th><th>status</th><th>parties</th><th>deployed at</th><th>updated at</th><th>transitions</th></tr></thead><tbody>
    ${p.items.map((a) => `<tr><td><a href="#/agreement/${a.id}">${a.id}</a></td><td>${esc(a.name)}</td><td>${badge(a.status)}</td><td>${partyList(a.parties)}</td>
      <td>${a.deployed}</td><td>${a.updated}</td><td>${a.history}</td></tr>`).join('') || '<tr><td colspan="7" class="muted">no agreements yet</td></tr>'}</tbody></table>
    ${cli(['thingnet agreement deploy FILE.yaml --party NAME=org:ID --key KEY', 'thingnet agreement accept ID --key KEY', 'thingnet agreement list'])}`;
  v.live((type, d) => { if (type === 'tx' && String(d.kind).startsWith('agreement.')) route(); });
}

async function agreementPage(v, id) {
  const [a, h] = await Promise.all([get('/v1/agreements/' + id), get(`/v1/agreements/${id}/history?limit=1000`).catch(() => ({ items: [] }))]);
  const r = a.record;
  v.innerHTML = `<h1>Agreement ${r.id}: ${esc(r.name)}</h1>
    ${kv([['status', badge(r.status)], ['parties', partyList(r.parties)], ['deployed', `height <a href="#/block/${r.deployed}">${r.deployed}</a> by ${devLink(r.deployer)}`],
      ['updated', `height ${r.updated}`], ['escrow', esc(r.escrow)], ['deposits', esc(JSON.stringify(r.deposits || {}))]])}
    <h2>State</h2><pre class="json" id="agreement-state">${esc(JSON.stringify(r.state, null, 2))}</pre>
    <h2>History</h2><ol id="agreement-history" class="timeline">${h.items.map((e) => `<li class="${e.error ? 'revoked' : ''}"><b>${esc(e.trigger)}</b>${e.transition ? ' → ' + esc(e.transition) : ''}
      at height <a href="#/block/${e.height}">${e.height}</a>${e.signer ? ', by ' + devLink(e.signer) : ''}${e.cel_cost ? `, CEL cost ${e.cel_cost}` : ''}${e.error ? ` — <i>${esc(e.error)}</i>` : ''}
      ${e.actions && e.actions.length ? `<div class="mono muted">${esc(JSON.stringify(e.actions))}</div>` : ''}</li>`).join('')}</ol>
    <h2>Document</h2><pre class="json">${esc(r.source)}</pre>
    ${cli([`thingnet agreement call ${r.id} TRANSITION --arg NAME=VALUE --key KEY`, `thingnet agreement dry-run ${r.id} TRANSITION --signer KEY --arg NAME=VALUE`, `thingnet agreement history ${r.id}`])}`;
  v.live((type, d) => { if (type === 'tx' && String(d.kind).startsWith('agreement.')) route(); });
}

// --- the mesh: peer-to-peer messaging and mailboxes ---

async function meshPage(v) {
  let m;
  try {
    m = await get('/v1/mesh');
  } catch (err) {
    v.innerHTML = `<h1>Mesh</h1><p class="muted">This node runs no peer-to-peer mesh (${esc(err.message)}).</p>`;
    return;
  }
  const st = m.stats || {};
  const flat = (o) => (o && typeof o === 'object' ? Object.entries(o).map(([k, n]) => `${esc(k)}: ${esc(n)}`).join(', ') || '–' : esc(o));
  v.innerHTML = `<h1>Mesh</h1>
    <div class="cards">${card('peers', st.Peers ?? '–', 'mesh-peers')}${card('messages delivered', st.Delivered ?? '–')}${card('held in mailboxes', st.MailboxDepth ?? '–', 'mesh-depth')}${card('wake-ups', st.Wakes ?? '–')}</div>
    ${kv([['gateway', devLink(m.id)], ['peer id', `<span class="mono">${esc(m.peer_id)}</span>`], ['addresses', (m.addrs || []).map((a) => `<div class="mono">${esc(a)}</div>`).join('')], ['relay', m.relay ? 'yes' : 'no']])}
    <h2>Counters</h2><table id="mesh-stats"><thead><tr><th>counter</th><th>value</th></tr></thead><tbody>
    ${Object.entries(st).map(([k, n]) => `<tr><td>${esc(k)}</td><td>${flat(n)}</td></tr>`).join('')}</tbody></table>`;
  const seq = page.seq;
  every(3000, async () => {
    const fresh = await get('/v1/mesh').catch(() => null);
    if (fresh && seq === page.seq) {
      const s2 = fresh.stats || {};
      $('#mesh-peers').textContent = s2.Peers ?? '–';
      $('#mesh-depth').textContent = s2.MailboxDepth ?? '–';
      $('#mesh-stats tbody').innerHTML = Object.entries(s2).map(([k, n]) => `<tr><td>${esc(k)}</td><td>${flat(n)}</td></tr>`).join('');
    }
  });
}

// --- security events, from /metrics ---

function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m) out.push({ name: m[1], labels: m[2] || '', value: +m[3] });
  }
  return out;
}

const counterTable = (ms, id, none) => `<table id="${id}"><thead><tr><th>counter</th><th>labels</th><th>count</th></tr></thead><tbody>
  ${ms.sort((a, b) => a.name.localeCompare(b.name)).map((m) => `<tr><td class="mono">${esc(m.name.replace(/^thingnet_/, ''))}</td>
    <td class="mono">${esc(m.labels.replace(/[{}"]/g, ''))}</td><td>${m.value > 0 ? badge('warn').replace('>warn<', `>${m.value}<`) : '0'}</td></tr>`).join('') || `<tr><td colspan="3" class="muted">${none}</td></tr>`}</tbody></table>`;

const securityRe = /(rejected|refused|rate_limited|offenders|quarantin|too_large|dropped|overloaded|denied|banned|bans)/;

async function security(v) {
  const draw = async () => {
    const [text, devs, recent] = await Promise.all([
      fetch('/metrics').then((r) => r.text()),
      get('/v1/devices?limit=1000'),
      get('/v1/events/recent?types=device.status&limit=1024').catch(() => ({ items: [] })),
    ]);
    const gateways = new Set(devs.items.filter((d) => d.class === 'gateway').map((d) => d.id));
    const quarantines = recent.items.filter((e) => e.data.status === 'suspended' && gateways.has(e.data.signer)).reverse();
    const suspended = devs.items.filter((d) => d.status !== 'active');
    const ms = parseMetrics(text).filter((m) => m.name.startsWith('thingnet_') && securityRe.test(m.name + m.labels));
    const total = ms.reduce((s, m) => s + m.value, 0);
    return `<h1>Security events</h1>
      <p class="muted">Counters of this node since it started (from <a href="/metrics">/metrics</a>): transactions CheckTx refused, readings and connections
      refused, rate-limit hits, devices reported for exceeding their limits again and again, wake-ups denied to protect sleeping devices.</p>
      <div class="cards">${card('refusals counted', total, 'sec-total')}${card('quarantines (recent)', quarantines.length, 'sec-quarantines')}${card('devices not active', suspended.length, 'sec-inactive')}</div>
      <h2>Quarantines</h2><p class="muted">Devices a gateway suspended for exceeding their limits again and again (their organisation granted it <code>manage</code>), among the last events this node keeps.</p>
      <table id="quarantines"><thead><tr><th>device</th><th>by gateway</th><th>height</th><th>reason</th></tr></thead><tbody>
      ${quarantines.map((e) => `<tr><td>${devLink(e.data.device)}</td><td>${devLink(e.data.signer)}</td><td><a href="#/block/${e.data.height}">${e.data.height}</a></td><td>${esc(e.data.reason)}</td></tr>`).join('') || '<tr><td colspan="4" class="muted">none</td></tr>'}</tbody></table>
      <h2>Devices not active</h2><table><thead><tr><th>device</th><th>org</th><th>status</th></tr></thead><tbody>
      ${suspended.map((d) => `<tr><td>${devLink(d.id)}</td><td>${esc(d.org)}</td><td>${badge(d.status)}</td></tr>`).join('') || '<tr><td colspan="3" class="muted">none</td></tr>'}</tbody></table>
      <h2>Counters</h2>
      ${counterTable(ms.filter((m) => m.value > 0), 'security', 'no refusals counted since the node started')}
      <details><summary class="muted">${ms.filter((m) => m.value === 0).length} counters at zero</summary>${counterTable(ms.filter((m) => m.value === 0), 'security-zero', '')}</details>`;
  };
  v.innerHTML = await draw();
  const seq = page.seq;
  every(3000, async () => {
    const html = await draw().catch(() => null);
    if (!html || seq !== page.seq) return;
    const view = $('#view');
    const open = $('details', view)?.open;
    view.innerHTML = html;
    if (open) $('details', view).open = true;
  });
}

async function apiPage(v) {
  const doc = await get('/v1/openapi.json');
  const rows = [];
  for (const [path, ops] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(ops)) rows.push(`<tr><td>${esc(m.toUpperCase())}</td><td class="mono">${esc(path)}</td><td>${esc(op.summary)}</td></tr>`);
  v.innerHTML = `<h1>API</h1><p>Everything this explorer shows comes from the node's API, described in <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI ${esc(doc.openapi)}).
    Errors are <code>{"error": {"code", "message"}}</code>; live events: <code>curl -N ${esc(location.origin)}/v1/events?types=block,device</code>.</p>
    <table><thead><tr><th>method</th><th>path</th><th>does</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

// --- live events: the SSE stream, read with fetch so that every event type
// (including ones added later) arrives ---

let lastID = 0;
async function follow() {
  for (;;) {
    try {
      const r = await fetch('/v1/events' + (lastID ? '?after=' + lastID : ''), { headers: { Accept: 'text/event-stream' } });
      if (!r.ok || !r.body) throw new Error('status ' + r.status);
      $('#live').className = 'on';
      $('#live').textContent = 'live';
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const chunk = buf.slice(0, k);
          buf = buf.slice(k + 2);
          const ev = { type: 'message', data: '' };
          for (const line of chunk.split('\n')) {
            if (line.startsWith('id: ')) ev.id = +line.slice(4);
            else if (line.startsWith('event: ')) ev.type = line.slice(7);
            else if (line.startsWith('data: ')) ev.data += line.slice(6);
          }
          if (ev.data) dispatch(ev);
        }
      }
    } catch (err) {
      console.warn('event stream:', err.message);
    }
    $('#live').className = 'off';
    $('#live').textContent = 'reconnecting';
    await sleep(2000);
  }
}

function dispatch(ev) {
  if (ev.id) lastID = ev.id;
  let d;
  try { d = JSON.parse(ev.data); } catch { return; }
  if (ev.type === 'block') $('#chain').textContent = `height ${d.height}`;
  feedItem(ev.type, d);
  toPage(ev.type, d);
}

// feedItem adds an event to the live feed (blocks only when they hold txs).
function feedItem(type, d) {
  if (type === 'block' && d.txs === 0) return;
  const what = type === 'block' ? `#${d.height}: ${d.txs} tx` : type === 'tx' ? `${d.kind} ${d.reason}`
    : d.device ? `${short(d.device, 12)} ${d.status || d.kind}` : type === 'anchor' ? `${short(d.gateway, 12)} size ${d.size}` : JSON.stringify(d).slice(0, 60);
  const feed = $('#feed');
  feed.insertAdjacentHTML('afterbegin', `<li title="${esc(JSON.stringify(d))}"><span class="t">${esc(type)}</span>${esc(what)}</li>`);
  while (feed.children.length > 60) feed.lastElementChild.remove();
}

// The feed starts with the events the node kept, then follows the stream
// from there.
async function start() {
  try {
    const recent = await get('/v1/events/recent?limit=200');
    for (const e of recent.items) {
      feedItem(e.type, e.data);
      lastID = e.id;
    }
  } catch (err) {
    console.warn('recent events:', err.message);
  }
  follow();
}

window.addEventListener('hashchange', route);
document.addEventListener('click', onVerifyClick);
get('/v1/status').then((s) => { $('#chain').textContent = `${s.chain_id} · height ${s.height}`; }).catch(() => {});
route();
start();
