// The thingnet explorer: a read-only single-page app over the node's /v1
// API, /metrics and /v1/events. No framework, no build step.

import { verifyReading, verifyAnchored, checkProof, didKey, sha256, hex, b64, eq } from './verify.js';
import { decode, concat, head, bstr, tstr } from './cbor.js';
import { auditPage } from './audit.js';
import * as keys from './keys.js';

// Script errors are kept for the browser tests (window.__errors).
window.__errors = [];
window.addEventListener('error', (e) => window.__errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => window.__errors.push(String(e.reason && e.reason.message || e.reason)));

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const short = (s, n = 16) => (s && s.length > n + 6 ? s.slice(0, n) + '…' + s.slice(-4) : s || '');
const enc = encodeURIComponent;
const params = new URLSearchParams(location.search);

// --- who is reading: the explorer signs in with a token, kept for this tab
// only (session storage); every API call presents it. The token is either
// pasted (thingnet token) or minted in the page from a key file opened
// with its passphrase: that key, and any data key loaded to open sealed
// readings, live in this module's memory only, never in storage, and are
// forgotten on sign-out or when the tab closes; while the page is open it
// re-mints the token before it expires. Without a token the explorer
// shows the public view: counts, hashes, proofs, never values. ---
const TOKEN = 'thingnet.token';
// The lifetime of a token minted in the page, in seconds (short: it is a
// bearer token); ?token-lifetime=S changes it (the browser tests).
const TOKEN_LIFETIME = Math.min(Math.max(+params.get('token-lifetime') || 600, 2), 3600);
const session = { key: null, dataKeys: [], timer: null, opened: new Map(), dataKeyOf: new Map(), chainID: null, clock: 0 };
// nodeNow is the time on the node's clock, as its Date header tells it: a
// token is minted and judged on it, so a browser whose clock is off still
// signs in (the node allows 30 s). ?clock-skew=S sets this page's clock S
// seconds off (the browser tests).
const pageNow = () => Date.now() + (+params.get('clock-skew') || 0) * 1000;
const nodeNow = () => pageNow() + session.clock;
const b64url = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));

// tokenClaims decodes a token's claims (it does not check the signature:
// the node does) and throws if it is not a thingnet token.
export function tokenClaims(tok) {
  let v = decode(b64url(tok.trim()));
  if (v && v.tag === 61) v = v.value;
  if (v && v.tag === 18) v = v.value;
  if (!Array.isArray(v) || v.length !== 4 || !(v[2] instanceof Uint8Array)) throw new Error('not a CWT (COSE_Sign1)');
  const c = decode(v[2]);
  const sub = c.get(2), exp = c.get(4);
  if (typeof sub !== 'string' || typeof exp !== 'number') throw new Error('the token lacks its subject or expiry');
  return { sub, aud: c.get(3), exp: new Date(exp * 1000) };
}

function signedIn() {
  const t = sessionStorage.getItem(TOKEN);
  if (!t) return null;
  try {
    const c = tokenClaims(t);
    if (c.exp <= nodeNow()) { sessionStorage.removeItem(TOKEN); return null; }
    return { token: t, ...c };
  } catch { sessionStorage.removeItem(TOKEN); return null; }
}

// status fetches /v1/status, and sets the node's clock from its answer.
async function status() {
  const r = await fetch('/v1/status', { headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`status: ${r.status} ${r.statusText}`);
  const s = await r.json();
  const d = Date.parse(r.headers.get('Date')); // whole seconds: ignore less than 5 s
  session.clock = Number.isFinite(d) && Math.abs(d - pageNow()) > 5000 ? d - pageNow() : 0;
  session.chainID = s.chain_id;
  return s;
}

async function chainID() {
  if (!session.chainID) await status();
  return session.chainID;
}

// signInWithKey makes k (from keys.openKeyFile) the tab's identity: it
// mints a token now and again when half of its lifetime has passed.
async function signInWithKey(k) {
  signOut();
  await status(); // the chain id and the node's clock, fresh
  const tok = await keys.mintToken(k, session.chainID, TOKEN_LIFETIME, nodeNow());
  session.key = k;
  sessionStorage.setItem(TOKEN, tok);
  session.timer = setInterval(async () => {
    const who = signedIn();
    if (!session.key || (who && who.exp - nodeNow() > (TOKEN_LIFETIME * 1000) / 2)) return;
    try {
      sessionStorage.setItem(TOKEN, await keys.mintToken(session.key, await chainID(), TOKEN_LIFETIME, nodeNow()));
      showWho();
    } catch (err) { console.warn('re-minting the token:', err.message); }
  }, Math.min(30, TOKEN_LIFETIME / 4) * 1000);
}

// signOut forgets the token, the key and the data keys.
function signOut() {
  clearInterval(session.timer);
  keys.forget(session.key);
  session.dataKeys.forEach((d) => keys.forget(d.key));
  for (const p of session.dataKeyOf.values()) p.then((h) => h.sk.fill(0), () => {});
  Object.assign(session, { key: null, dataKeys: [], timer: null, opened: new Map(), dataKeyOf: new Map() });
  sessionStorage.removeItem(TOKEN);
}

function showWho() {
  const who = signedIn(), el = $('#who');
  if (!el) return;
  el.textContent = who ? 'signed in as ' + short(who.sub) : 'sign in';
  el.title = who ? `${who.sub}, until ${who.exp.toLocaleString()}` : 'read what your identity may read';
}

async function get(path) {
  const headers = { Accept: 'application/json' };
  const who = signedIn();
  if (who) headers.Authorization = 'Bearer ' + who.token;
  const r = await fetch(path, { headers });
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
  [/^\/files(?:\/([^/]+))?$/, filesPage],
  [/^\/file\/([^/]+)\/([^/]+)$/, filePage],
  [/^\/fleet(?:\/([^/]+))?$/, fleetPage],
  [/^\/jobs\/([^/]+)$/, jobsPage],
  [/^\/jobs\/([^/]+)\/(\d+)$/, jobPage],
  [/^\/firmware$/, firmwarePage],
  [/^\/firmware\/([^/]+)\/([^/]+)$/, firmwareClass],
  [/^\/mesh$/, meshPage],
  [/^\/network$/, networkPage],
  [/^\/security$/, security],
  [/^\/api$/, apiPage],
  [/^\/signin$/, signinPage],
  [/^\/audit$/, auditPage],
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
  const route0 = path.split('?')[0]; // a page's own parameters follow '?' (#/fleet/ORG?class=sensor)
  const found = routes.find(([re]) => re.test(route0));
  try {
    if (!found) throw new Error(`no such page: ${path}`);
    await found[1](v, ...route0.match(found[0]).slice(1));
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

// --- fleet health: GET /v1/fleet/{org}. Signed in, the devices of the
// identity's organisations as the read rule lets it read them: state, last
// seen (at this gateway), the last status report; silent devices first.
// Not signed in (or refused), the public view: the gateway's counts by
// class and state, never a device or a value. ---

const FLEET_STATES = ['silent', 'never', 'ok', 'suspended', 'revoked'];
const fleetBadge = (s) => badge(s).replace('class="badge ', `class="badge ${s === 'silent' ? 'bad' : s === 'never' ? 'warn' : ''} `);

function fleetCounts(f) {
  const classes = Object.keys(f.counts || {}).sort();
  const states = FLEET_STATES.filter((st) => classes.some((c) => f.counts[c][st]));
  return `<table id="fleet-counts"><thead><tr><th>class</th>${states.map((st) => `<th>${esc(st)}</th>`).join('')}</tr></thead><tbody>
    ${classes.map((c) => `<tr data-class="${esc(c)}"><td>${esc(c)}</td>${states.map((st) => `<td class="n" data-state="${esc(st)}">${f.counts[c][st] || 0}</td>`).join('')}</tr>`).join('')
      || `<tr><td colspan="${states.length + 1}" class="muted">no devices</td></tr>`}</tbody></table>`;
}

const fmtUptime = (s) => (s >= 86400 ? `${Math.floor(s / 86400)} d` : s >= 3600 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 60)} min`);
const fmtBytes = (b) => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`);

function fleetRow(d) {
  const st = d.status || {};
  const by = Object.entries(d.last_seen_by || {}).map(([g, t]) => `${esc(g)}: ${esc(ago(t))}`).join('<br>');
  const labels = Object.entries(d.labels || {}).sort().map(([k, v]) => `<span class="mono">${esc(k)}=${esc(v)}</span>`).join(' ');
  return `<tr data-id="${esc(d.device)}" data-state="${esc(d.state)}"><td>${devLink(d.device)}</td><td>${esc(d.class)}</td><td class="labels">${labels}</td>
    <td class="state">${fleetBadge(d.state)}</td><td class="seen" title="${esc(d.last_seen || '')}">${d.last_seen ? esc(ago(d.last_seen)) : '<span class="muted">never</span>'}</td><td class="by">${by}</td>
    <td class="n battery">${st.battery != null ? esc(st.battery) + ' %' : ''}</td><td class="n signal">${st.signal != null ? esc(st.signal) + ' dBm' : ''}</td>
    <td class="n uptime">${st.uptime_s ? fmtUptime(st.uptime_s) : ''}</td><td class="n mem">${st.free_mem ? fmtBytes(st.free_mem) : ''}</td><td class="fw">${esc(st.firmware || '')}</td></tr>`;
}

async function fleetPage(v, org) {
  const who = signedIn();
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const os = (await get('/v1/orgs?limit=1000')).items;
  const mine = who ? os.filter((o) => o.admins.includes(who.sub)).map((o) => o.id) : [];
  const choices = mine.length ? mine : os.map((o) => o.id);
  org = org || choices[0] || '';
  const sel = (id, opts, cur) => `<select id="${id}">${opts.map(([val, label]) => `<option value="${esc(val)}"${val === cur ? ' selected' : ''}>${esc(label)}</option>`).join('')}</select>`;
  const ds = org ? (await get('/v1/devices?limit=1000&org=' + enc(org))).items.filter((d) => d.class !== 'gateway') : [];
  const classes = [...new Set(ds.map((d) => d.class))].sort();
  const cls = q.get('class') || '', label = q.get('label') || '', status = q.get('status') || '';
  const form = `<form id="fleet-form" class="range">organisation ${sel('fleet-org', choices.map((o) => [o, o]), org)}
    class ${sel('fleet-class', [['', 'all'], ...classes.map((c) => [c, c])], cls)}
    label <input id="fleet-label" placeholder="key=value" value="${esc(label)}" size="14">
    status ${sel('fleet-status', [['', 'all'], ...FLEET_STATES.map((st) => [st, st])], status)} <button>filter</button></form>`;
  let body;
  if (!org) {
    body = '<p class="muted">no organisations</p>';
  } else {
    const args = new URLSearchParams();
    if (cls) args.set('class', cls);
    if (label) args.set('label', label);
    let f, refused = '';
    try {
      f = await get(`/v1/fleet/${enc(org)}?${args}`);
    } catch (err) {
      if (!/^(unauthenticated|forbidden)/.test(err.message)) throw err;
      refused = err.message.replace(/^\w+: /, '');
      f = await get(`/v1/fleet/${enc(org)}?view=counts${cls ? '&class=' + enc(cls) : ''}`);
    }
    const rows = f.devices.filter((d) => !status || d.state === status);
    body = `<p class="muted" id="fleet-summary">at ${esc(new Date(f.now).toLocaleString())}; silent: ${f.missed} wake intervals without a reading${f.public ? ' (this gateway’s census)' : ''}</p>
      <h2>By class and state</h2>${fleetCounts(f)}
      ${f.public ? `<p id="fleet-public" class="muted">${refused ? esc(refused) + ' ' : ''}This is the public view: counts only. <a href="#/signin">Sign in</a> as an admin of ${esc(org)} (or a holder of read grants on its devices) to see each device, when it was last seen and what it reports.</p>`
      : `<h2>Devices</h2><table id="fleet-devices"><thead><tr><th>device</th><th>class</th><th>labels</th><th>state</th><th>last seen</th><th>per gateway</th><th>battery</th><th>signal</th><th>uptime</th><th>free memory</th><th>firmware</th></tr></thead><tbody>
        ${rows.map(fleetRow).join('') || '<tr><td colspan="11" class="muted">no devices</td></tr>'}</tbody></table>`}`;
  }
  v.innerHTML = `<h1>Fleet health${org ? ` of <a href="#/org/${enc(org)}">${esc(org)}</a>` : ''}</h1>
    <p class="muted">Devices by state at this node’s gateway: <b>ok</b> (a reading within its wake intervals), <b>silent</b> (seen, then missed them), <b>never</b>, or their ledger status. Silent devices first.</p>
    ${form}${org ? `<p><a id="fleet-jobs" href="#/jobs/${enc(org)}">jobs</a>: commands sent to these devices in waves</p>` : ''}${body}
    ${cli([`thingnet fleet status --org ${org || 'ORG'} --identity ADMIN_KEY`, 'thingnet rules add --rule silent.toml --identity ADMIN_KEY   # [rules.fleet]: alert when more than N are silent'])}`;
  $('#fleet-form', v).addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, id] of [['class', '#fleet-class'], ['label', '#fleet-label'], ['status', '#fleet-status']]) {
      const val = $(id).value.trim();
      if (val) p.set(k, val);
    }
    location.hash = `#/fleet/${enc($('#fleet-org').value)}${p.size ? '?' + p : ''}`;
  });
  every(30000, route);
}

// --- jobs (docs/management.md, "Commands and jobs"): ledger data, public.
// The pages read; creating and cancelling are signed transactions (the CLI). ---

const JOB_COUNTS = ['targeted', 'succeeded', 'failed', 'rejected', 'pending', 'timed_out', 'skipped'];
const jobBadge = (s) => badge(s).replace('class="badge ', `class="badge ${s === 'aborted' ? 'bad' : s === 'cancelled' ? 'warn' : ''} `);
const jobTarget = (t) => (t.class ? `class ${esc(t.class)}` : t.label ? `label <span class="mono">${esc(t.label)}</span>` : `${(t.devices || []).length} device(s): ${(t.devices || []).map(devLink).join(' ')}`);
const jobCommand = (c) => `<span class="mono">${esc(c.command)}</span>${Object.keys(c.args || {}).length ? ` <span class="mono muted">${esc(Object.entries(c.args).map(([k, x]) => `${k}=${JSON.stringify(x)}`).join(' '))}</span>` : ''}`;

// jobWave is the wave of j open at height h, as record.Waves.Wave (0: none
// yet), capped at the job's last wave.
function jobWave(j, h) {
  if (h < j.start || !j.job.blocks_per_wave) return 0;
  return Math.min(1 + Math.floor((h - j.start) / j.job.blocks_per_wave), j.job.waves);
}

// jobState is record.JobRecord.StateAt: an active job is done from its
// timeout height on.
const jobState = (j, h) => (j.state === 'active' && h >= j.timeout ? 'done' : j.state);

async function jobsPage(v, org) {
  const items = [];
  let height = 0;
  for (let after = 0, n = 0; n < 20; n++) { // pages of 1,000, oldest first
    const p = await get(`/v1/jobs?limit=1000&org=${enc(org)}&after=${after}`);
    items.push(...p.items);
    height = p.height;
    if (!p.next || !p.items.length) break;
    after = p.items[p.items.length - 1].id;
  }
  items.reverse(); // newest first
  const h = height + 1; // the next block, as GET /v1/jobs/{org}/{id} reckons
  v.innerHTML = `<h1>Jobs of <a href="#/org/${enc(org)}">${esc(org)}</a></h1>
    <p class="muted">Commands its admins sent to its devices in waves, newest first, at height ${height}. Jobs are ledger data, public like every record: each device reports succeeded, failed (with a reason) or rejected in a signed transaction.</p>
    <table id="jobs"><thead><tr><th>id</th><th>command</th><th>target</th><th>state</th><th>wave open</th><th>succeeded</th><th>failed</th><th>rejected</th><th>created</th></tr></thead><tbody>
    ${items.map((j) => `<tr data-id="${j.id}" data-state="${esc(jobState(j, h))}"><td><a href="#/jobs/${enc(org)}/${j.id}">${j.id}</a></td><td>${jobCommand(j.job)}</td><td>${jobTarget(j.job.target)}</td>
      <td class="state">${jobBadge(jobState(j, h))}</td><td class="n wave">${jobWave(j, h)} / ${j.job.waves}</td><td class="n succeeded">${j.succeeded || 0}</td><td class="n failed">${j.failed || 0}</td><td class="n rejected">${j.rejected || 0}</td>
      <td><a href="#/block/${j.start}">${j.start}</a> by ${devLink(j.signer)}</td></tr>`).join('') || '<tr><td colspan="9" class="muted">no jobs</td></tr>'}</tbody></table>
    <p><a href="#/fleet/${enc(org)}">fleet health</a></p>
    ${cli([`thingnet job create --org ${org} --class sensor --command ping --waves 3 --wave-blocks 20 --max-failures 5% --key ADMIN_KEY`, `thingnet job list --org ${org}`, `thingnet job cancel ${org}/ID --key ADMIN_KEY`])}`;
  v.live((type, d) => { if (type === 'tx' && String(d.kind).startsWith('job.')) route(); });
}

const jobCountCells = (c) => JOB_COUNTS.map((k) => `<td class="n" data-count="${k}">${c[k] || 0}</td>`).join('');

async function jobPage(v, org, id) {
  const p = (await get(`/v1/jobs/${enc(org)}/${enc(id)}`)).record;
  const j = p.job;
  v.innerHTML = `<h1>Job <a href="#/jobs/${enc(org)}">${esc(org)}</a> / ${j.id}</h1>
    ${kv([['command', jobCommand(j.job)], ['target', jobTarget(j.job.target)], ['state', `<span id="job-state">${jobBadge(p.state)}</span>`],
      ['wave open', `<span id="job-wave">${Math.min(p.open_wave, j.job.waves)} / ${j.job.waves}</span> (one every ${j.job.blocks_per_wave} block(s))`], ['failure threshold', `aborted at ${j.job.max_failures} failed or rejected`],
      ['created', `height <a href="#/block/${j.start}">${j.start}</a> by ${devLink(j.signer)}${j.grant ? ` (grant ${j.grant})` : ''}`],
      ['timeout', `height ${j.timeout}`], ['ended', j.ended ? `height <a href="#/block/${j.ended}">${j.ended}</a>` : '–'], ['at height', p.height]])}
    <h2>Progress</h2>
    <table id="job-counts"><thead><tr><th>wave</th><th>opens at</th>${JOB_COUNTS.map((k) => `<th>${esc(k.replace('_', ' '))}</th>`).join('')}</tr></thead><tbody>
      ${(p.waves || []).map((w) => `<tr data-wave="${w.wave}"><td>${w.wave}</td><td>${w.opens}</td>${jobCountCells(w.counts)}</tr>`).join('')}
      <tr data-wave="total"><td><b>total</b></td><td></td>${jobCountCells(p.counts)}</tr></tbody></table>
    <h2>Failed and rejected</h2>
    <table id="job-outcomes"><thead><tr><th>device</th><th>outcome</th><th>reason</th><th>wave</th><th>reported at</th></tr></thead><tbody>
      ${(p.outcomes || []).map((o) => `<tr data-device="${esc(o.device)}" data-outcome="${esc(o.outcome)}"><td>${devLink(o.device)}</td><td>${badge(o.outcome)}</td><td class="reason">${esc(o.reason || '')}</td><td>${o.wave}</td><td><a href="#/block/${o.height}">${o.height}</a></td></tr>`).join('')
        || '<tr><td colspan="5" class="muted">none</td></tr>'}</tbody></table>
    ${cli([`thingnet job show ${org}/${j.id}`, `thingnet job cancel ${org}/${j.id} --key ADMIN_KEY`])}`;
  v.live((type, d) => { if (type === 'tx' && String(d.kind).startsWith('job.')) route(); });
  if (p.state === 'active') every(10000, route); // waves open and the timeout passes with blocks, not transactions
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
    <p><a id="org-fleet" href="#/fleet/${enc(id)}">fleet health</a> · <a id="org-jobs" href="#/jobs/${enc(id)}">jobs</a> · <a href="#/files/${enc(id)}">its files</a> · <a href="#/firmware">firmware</a>${[...new Set(ds.items.map((d) => d.class))].filter((c) => c !== 'gateway').sort().map((c) => ` · <a href="#/firmware/${enc(id)}/${enc(c)}">${esc(c)} firmware</a>`).join('')}</p>
    <h2>Admins</h2><ul>${o.record.admins.map((a) => `<li class="mono">${esc(a)}</li>`).join('')}</ul>
    <h2>Devices</h2>${deviceTable(ds.items)}
    <h2>Readings of its devices</h2>
    <p class="muted">Aggregates over the devices whose readings this node's gateway holds and you may read (<code>GET /v1/readings/query?org=</code>), per reading type. <span id="series-range"></span></p>
    ${rangeForm(['auto', '1h', '1d'])}
    <div id="org-series-box"></div>
    ${cli([`thingnet org admin add ${id} ADMIN_DID --key ADMIN_KEY`, `thingnet device register --org ${id} --device-key DEVICE_KEY --class sensor --key ADMIN_KEY`, `thingnet readings query --org ${id} --bucket 1h`])}`;
  const els = { box: $('#org-series-box', v), range: $('#series-range', v) }; // v is emptied when the page is shown
  bindRange(v, () => orgSeries(els, id));
  orgSeries(els, id);
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

// sealedCell shows a sealed value: opened in the page, refused with the
// reason, or sealed (no data key at hand).
function sealedCell(r) {
  const o = session.opened.get(r.index);
  if (o && o.value !== undefined) return `<span class="sealed-open">${esc(o.value)}</span> <span class="badge ok" title="sealed to the organisation's data key (${esc(keys.suiteName(r.sealed.suite))}, version ${r.sealed.version}); opened in this page">sealed</span>`;
  if (o && o.bytes) return `<span class="sealed-open muted">${o.bytes.length} bytes</span> <span class="badge ok" title="opened in this page">sealed</span>`;
  if (o && o.refused) return `<span class="sealed-refused bad">sealed value refused: ${esc(o.refused)}</span>`;
  return `<span class="sealed muted" title="${esc(o ? o.nokey : '')}">sealed</span>`;
}

// openSealed opens the sealed values of items (of organisation org) that
// are not opened yet, with a data key at hand: one loaded on the sign-in
// page, or the signed-in reader's share on the ledger.
async function openSealed(items, org) {
  const todo = items.filter((r) => r.sealed && !session.opened.has(r.index));
  if (todo.length === 0) return;
  const chain = await chainID();
  for (const r of todo) {
    let h;
    try {
      h = await dataKey(org, r.sealed.version);
    } catch (err) {
      session.opened.set(r.index, { nokey: err.message });
      continue;
    }
    try {
      session.opened.set(r.index, await keys.openSealed(h, chain, r.device, r.seq, r.sealed));
    } catch (err) {
      session.opened.set(r.index, { refused: err.message });
    }
  }
}

// dataKey is the HPKE private key of org's data key version, checked
// against the one the ledger publishes; it throws if none is at hand.
function dataKey(org, version) {
  const id = `${org}/${version}`;
  if (!session.dataKeyOf.has(id)) {
    const p = (async () => {
      const dk = (await get(`/v1/orgs/${enc(org)}/datakey?version=${version}`)).record;
      for (const d of session.dataKeys) {
        try { return await keys.checkDataKey(d.key, dk); } catch { /* another key */ }
      }
      if (!session.key) throw new Error(`no data key for "${org}" version ${version}: load it on the sign-in page`);
      let sh;
      try {
        sh = (await get(`/v1/orgs/${enc(org)}/datakey/shares/${enc(session.key.id)}?version=${version}`)).record;
      } catch (err) {
        throw new Error(`no data key for "${org}" version ${version}: none loaded, and no share for ${session.key.id} (${err.message})`);
      }
      const k = await keys.openShare(session.key, await chainID(), sh);
      const h = await keys.checkDataKey(k, dk).finally(() => k.der?.fill(0));
      if (h.sk !== k.secret) k.secret.fill(0); // only the HPKE key is kept
      return h;
    })();
    session.dataKeyOf.set(id, p);
    p.catch(() => session.dataKeyOf.delete(id)); // asked again next time (a key loaded, a share published)
  }
  return session.dataKeyOf.get(id);
}

// sealedNote says why sealed readings stay sealed, and what opens them.
function sealedNote(items) {
  const closed = items.filter((r) => session.opened.get(r.index)?.nokey);
  if (closed.length === 0) return '';
  return `<p id="sealed-note" class="muted">${closed.length} sealed reading(s) not opened: ${esc(session.opened.get(closed[0].index).nokey)}.
    <a href="#/signin">Sign in with your key file or load the data key</a> to open them in this page, or run <code>thingnet readings get INDEX --decrypt</code>.</p>`;
}

// shown is items with their opened sealed values, for the chart.
const shown = (items) => items.map((r) => (session.opened.get(r.index)?.value !== undefined ? { ...r, value: session.opened.get(r.index).value } : r));

function readingRows(items) {
  return items.slice().reverse().map((r) => `<tr data-index="${r.index}"><td>${r.index}</td><td>${r.seq}</td><td>${esc(new Date(r.time).toLocaleString())}</td>
    <td>${esc(r.content_type)}</td><td>${r.value !== undefined ? esc(r.value) : r.sealed ? sealedCell(r) : `<span class="muted">${b64(r.bytes).length} bytes</span>`}${r.attested_by ? ` <span class="badge warn attested" title="signed by gateway ${esc(r.attested_by)} for a device that cannot sign: attested, not device-signed">attested</span>` : ''}</td>
    <td><button class="verify" data-index="${r.index}">verify this reading</button></td></tr>`).join('');
}

// --- readings over a range: GET /v1/readings/query (docs/data.md). The
// range and bucket chosen are kept while the tab is open, for every
// device and organisation page. ---

const SPANS = { hour: 3600e3, day: 86400e3, week: 7 * 86400e3, month: 30 * 86400e3 };
const MAX_PAGES = 20;
// Readings or buckets per page; ?query-limit=N makes pages smaller (the
// browser tests page through a few readings).
const QUERY_LIMIT = Math.min(Math.max(+params.get('query-limit') || 10000, 1), 10000);
const rangeState = { span: 'hour', bucket: 'auto', axis: 'device', from: '', to: '' };

// autoBucket is the bucket for a range of ms milliseconds: raw up to an
// hour, minutes up to a day, hours up to a month, days beyond.
export function autoBucket(ms) {
  if (ms <= SPANS.hour) return 'raw';
  if (ms <= SPANS.day) return '1m';
  if (ms <= 31 * 86400e3) return '1h';
  return '1d';
}

// chosenRange is [from, to) in Unix ms for the state s; it throws on a
// custom range that is not one.
function chosenRange(s) {
  if (s.span === 'custom') {
    const from = Date.parse(s.from), to = Date.parse(s.to);
    if (!Number.isFinite(from) || !Number.isFinite(to)) throw new Error('custom range: give both from and to');
    if (from >= to) throw new Error('custom range: from must be before to');
    return [from, to];
  }
  const to = Math.ceil(nodeNow() / 60e3) * 60e3; // the end of this minute
  return [to - SPANS[s.span], to];
}

// queryAll reads every page of a query (base: its parameters), at most
// MAX_PAGES; it returns the items or buckets, the withheld and device
// counts, and whether it stopped with more to read.
async function queryAll(base) {
  const out = { items: [], buckets: [], withheld: 0, devices: 0, truncated: false, pages: 0 };
  let cursor = '';
  do {
    const a = await get('/v1/readings/query?' + base + (cursor ? '&cursor=' + enc(cursor) : ''));
    out.items.push(...(a.items || []));
    out.buckets.push(...(a.buckets || []));
    out.withheld = Math.max(out.withheld, a.withheld || 0);
    out.devices = Math.max(out.devices, a.devices || 0);
    cursor = a.next || '';
    out.pages++;
  } while (cursor && out.pages < MAX_PAGES);
  out.truncated = !!cursor;
  return out;
}

// rangeForm is the range, bucket and time-axis controls; buckets lists
// the bucket choices offered.
function rangeForm(buckets) {
  const s = rangeState;
  const opt = (v, label, cur) => `<option value="${v}"${v === cur ? ' selected' : ''}>${esc(label)}</option>`;
  return `<form id="range-form" class="row">
    <label>range <select id="range-span">${[['hour', 'last hour'], ['day', 'last day'], ['week', 'last week'], ['month', 'last month'], ['custom', 'custom']].map(([v, l]) => opt(v, l, s.span)).join('')}</select></label>
    <label class="custom">from <input id="range-from" type="datetime-local" value="${esc(s.from)}"></label>
    <label class="custom">to <input id="range-to" type="datetime-local" value="${esc(s.to)}"></label>
    <label>bucket <select id="range-bucket">${buckets.map((b) => opt(b, b === 'auto' ? 'auto' : b === 'raw' ? 'raw readings' : b, buckets.includes(s.bucket) ? s.bucket : 'auto')).join('')}</select></label>
    <label>time <select id="range-axis">${opt('device', "device's", s.axis)}${opt('received', 'received by the gateway', s.axis)}</select></label>
    <button>show</button></form>`;
}

// bindRange makes the form in v redraw with draw() on every change.
function bindRange(v, draw) {
  const form = $('#range-form', v);
  const custom = () => form.classList.toggle('is-custom', $('#range-span', form).value === 'custom');
  custom();
  const read = () => {
    Object.assign(rangeState, { span: $('#range-span', form).value, bucket: $('#range-bucket', form).value, axis: $('#range-axis', form).value,
      from: $('#range-from', form).value, to: $('#range-to', form).value });
    custom();
    if (rangeState.span === 'custom' && !(rangeState.from && rangeState.to)) return;
    draw();
  };
  form.addEventListener('change', read);
  form.addEventListener('submit', (e) => { e.preventDefault(); read(); });
}

const fmtNum = (x) => (typeof x === 'number' ? String(+x.toPrecision(6)) : '–');
const fmtTime = (ms) => new Date(ms).toLocaleString();

// seriesChart draws one type's series over [from, to): for buckets the
// mean line with a min–max band, for raw readings points. Its data-series
// holds the points drawn ({t, count, min, mean, max} or {t, value}).
export function seriesChart(pts, from, to, raw, id) {
  if (pts.length === 0) return '<p class="muted">no numeric values in this range</p>';
  const W = 640, H = 200, L = 48, R = 12, T = 12, B = 28;
  const lo = raw ? pts.map((p) => p.value) : pts.map((p) => p.min), hi = raw ? lo : pts.map((p) => p.max);
  let v0 = Math.min(...lo), v1 = Math.max(...hi);
  if (v0 === v1) { v0 -= 1; v1 += 1; }
  const x = (t) => L + ((t - from) / (to - from)) * (W - L - R);
  const y = (val) => T + (1 - (val - v0) / (v1 - v0)) * (H - T - B);
  const xy = (t, val) => `${x(t).toFixed(1)},${y(val).toFixed(1)}`;
  let body;
  if (raw) {
    body = pts.map((p) => `<circle class="dot" cx="${x(p.t).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="2.5"/>`).join('');
  } else {
    const band = pts.map((p) => xy(p.t, p.max)).concat(pts.slice().reverse().map((p) => xy(p.t, p.min))).join(' ');
    body = `<polygon class="band" points="${band}"/><polyline class="line" points="${pts.filter((p) => p.mean !== undefined).map((p) => xy(p.t, p.mean)).join(' ')}"/>`
      + (pts.length === 1 ? `<line class="whisker" x1="${x(pts[0].t).toFixed(1)}" y1="${y(pts[0].min).toFixed(1)}" x2="${x(pts[0].t).toFixed(1)}" y2="${y(pts[0].max).toFixed(1)}"/>`
        + `<circle class="dot" cx="${x(pts[0].t).toFixed(1)}" cy="${y(pts[0].mean ?? pts[0].min).toFixed(1)}" r="3"/>` : '');
  }
  return `<svg id="${id}" class="chart series" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${raw ? 'readings' : 'mean, min and max per bucket'}" data-series="${esc(JSON.stringify(pts))}">
    <line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/>
    <text x="${L - 6}" y="${y(v1) + 4}" text-anchor="end">${fmtNum(v1)}</text><text x="${L - 6}" y="${y(v0) + 4}" text-anchor="end">${fmtNum(v0)}</text>
    <text x="${L}" y="${H - 8}">${esc(fmtTime(from))}</text><text x="${W - R}" y="${H - 8}" text-anchor="end">${esc(fmtTime(to))}</text>${body}</svg>`;
}

// mergeBuckets adds up buckets of several devices by start: count, min,
// max, and the mean as the sum over the count.
export function mergeBuckets(bs) {
  const by = new Map();
  for (const b of bs) {
    const t = Date.parse(b.start);
    const sum = b.sum ?? (b.mean !== undefined ? b.mean * b.count : undefined);
    const m = by.get(t);
    if (!m) { by.set(t, { t, count: b.count, min: b.min, max: b.max, sum }); continue; }
    m.count += b.count;
    m.min = Math.min(m.min, b.min);
    m.max = Math.max(m.max, b.max);
    m.sum = m.sum === undefined || sum === undefined ? undefined : m.sum + sum;
  }
  return [...by.values()].sort((a, b) => a.t - b.t).map((m) => ({ t: m.t, count: m.count, min: m.min, mean: m.sum === undefined ? undefined : m.sum / m.count, max: m.max }));
}

// summary is count, min, mean and max over a series' points.
function summary(pts, raw) {
  const count = raw ? pts.length : pts.reduce((s, p) => s + p.count, 0);
  if (count === 0) return { count: 0 };
  const sum = raw ? pts.reduce((s, p) => s + p.value, 0) : pts.reduce((s, p) => (s === undefined || p.mean === undefined ? undefined : s + p.mean * p.count), 0);
  return { count, min: Math.min(...pts.map((p) => (raw ? p.value : p.min))), max: Math.max(...pts.map((p) => (raw ? p.value : p.max))), mean: sum === undefined ? undefined : sum / count };
}

const byType = (rows) => {
  const m = new Map();
  for (const r of rows) {
    const k = r.type ?? r.content_type;
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(r);
  }
  return [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
};

// rangeQuery is the query parameters for the state's range over scope
// (device=…, org=…), with the bucket to use, and the range itself.
function rangeQuery(scope, allowed) {
  const [from, to] = chosenRange(rangeState);
  let bucket = rangeState.bucket === 'auto' || !allowed.includes(rangeState.bucket) ? autoBucket(to - from) : rangeState.bucket;
  // Not offered here (an organisation's page has no raw or 1m): the
  // next larger that is.
  const order = ['raw', '1m', '1h', '1d'];
  if (!allowed.includes(bucket)) bucket = allowed.find((x) => order.indexOf(x) > order.indexOf(bucket)) || allowed[allowed.length - 1];
  return { from, to, bucket, q: `${scope}&from=${from}&to=${to}&time=${rangeState.axis}&bucket=${bucket}&limit=${QUERY_LIMIT}` };
}

const rangeText = (from, to, bucket) => `${fmtTime(from)} – ${fmtTime(to)}, ${bucket === 'raw' ? 'raw readings' : bucket + ' buckets'}, by ${rangeState.axis === 'device' ? "the devices' time" : 'receive time'}`;

const privateNote = (msg, who) => `<p class="muted series-private">${/^(unauthenticated|forbidden)/.test(msg)
  ? `Readings are private: ${esc(msg.replace(/^\w+: /, ''))} <a href="#/signin">Sign in</a> as ${who}.` : esc(msg)}</p>`;

// loadRange asks the query of the chosen range over scope (device=…,
// org=…) with a bucket of allowed, saying which in els.box's data-query
// and els.range; it returns the range and the answer, or null when the
// query failed (els.box then says why, with failed(message)) or the page
// moved on meanwhile.
async function loadRange(els, scope, allowed, failed) {
  const { box } = els;
  const seq = page.seq;
  const done = (html) => { box.innerHTML = html; box.dataset.state = 'done'; return null; };
  let r;
  try {
    r = rangeQuery(scope, allowed);
  } catch (err) { return done(`<p class="bad">${esc(err.message)}</p>`); }
  box.dataset.query = r.q;
  box.dataset.state = 'loading';
  els.range.textContent = rangeText(r.from, r.to, r.bucket);
  const current = () => seq === page.seq && box.dataset.query === r.q; // else another page or range was asked for meanwhile
  try {
    const a = await queryAll(r.q);
    return current() ? { r, a, current } : null;
  } catch (err) {
    return current() ? done(failed(err.message)) : null;
  }
}

// deviceSeries draws the device's readings over the chosen range into
// els.box (els.range says the range), per reading type.
async function deviceSeries(els, id, org) {
  const { box } = els;
  const got = await loadRange(els, 'device=' + enc(id), ['raw', '1m', '1h', '1d'], (msg) => privateNote(msg, 'the device, an admin of its organisation or a read grantee'));
  if (!got) return;
  const { r, a, current } = got;
  const raw = r.bucket === 'raw';
  let rows = a.buckets;
  let sealed = 0;
  if (raw) {
    await openSealed(a.items, org);
    if (!current()) return;
    rows = shown(a.items);
    sealed = rows.filter((x) => x.sealed && typeof x.value !== 'number').length;
  }
  const groups = byType(rows);
  box.innerHTML = `${a.truncated ? `<p id="series-truncated" class="warn">Stopped after ${MAX_PAGES} pages (${raw ? a.items.length + ' readings' : a.buckets.length + ' buckets'}): narrow the range or choose a larger bucket to see all of it.</p>` : ''}
    ${!raw ? '<p class="muted">Buckets hold numeric values only: sealed values are never in them (the gateway cannot read them); choose raw readings to open them in this page.</p>'
      : sealed ? `<p class="muted">${sealed} sealed value(s) not opened: <a href="#/signin">load the data key</a> to chart them.</p>` : ''}
    ${groups.map(([type, xs], i) => {
      const pts = raw ? xs.filter((x) => typeof x.value === 'number').map((x) => ({ t: Date.parse(rangeState.axis === 'received' && x.received_at ? x.received_at : x.time), value: x.value }))
        : xs.map((b) => ({ t: Date.parse(b.start), count: b.count, min: b.min, mean: b.mean, max: b.max }));
      const s = summary(pts, raw);
      return `<section class="series" data-type="${esc(type)}"><h3>${esc(type)}</h3>
        <table class="series-summary"><thead><tr><th>values</th><th>min</th><th>mean</th><th>max</th></tr></thead>
        <tbody><tr><td class="count">${s.count}</td><td class="min">${fmtNum(s.min)}</td><td class="mean">${fmtNum(s.mean)}</td><td class="max">${fmtNum(s.max)}</td></tr></tbody></table>
        ${seriesChart(pts, r.from, r.to, raw, 'series-chart-' + i)}
        ${raw ? '' : `<details><summary class="muted">${pts.length} bucket(s)</summary><table class="series-buckets"><thead><tr><th>start</th><th>count</th><th>min</th><th>mean</th><th>max</th></tr></thead><tbody>
          ${pts.map((p) => `<tr data-start="${new Date(p.t).toISOString()}"><td>${esc(fmtTime(p.t))}</td><td class="count">${p.count}</td><td class="min">${fmtNum(p.min)}</td><td class="mean">${fmtNum(p.mean)}</td><td class="max">${fmtNum(p.max)}</td></tr>`).join('')}</tbody></table></details>`}</section>`;
    }).join('') || '<p id="series-none" class="muted">no readings in this range</p>'}`;
  box.dataset.state = 'done';
}

// orgSeries draws the aggregates of an organisation's devices over the
// chosen range into els.box (els.range says the range), per reading type.
async function orgSeries(els, id) {
  const { box } = els;
  const got = await loadRange(els, 'org=' + enc(id), ['1h', '1d'], (msg) => `<p class="bad">${esc(msg)}</p>`);
  if (!got) return;
  const { r, a } = got;
  const groups = byType(a.buckets);
  box.innerHTML = `<div class="cards">${card('devices with readings you may read', a.devices, 'org-devices-read')}${card('devices withheld from you', a.withheld, 'org-withheld')}</div>
    ${a.withheld ? `<p class="muted">${a.withheld} device(s) of this organisation have readings here that you may not read: they are left out. <a href="#/signin">Sign in</a> as an admin or a read grantee to include them.</p>` : ''}
    ${a.truncated ? `<p id="series-truncated" class="warn">Stopped after ${MAX_PAGES} pages (${a.buckets.length} buckets): narrow the range or choose 1d buckets.</p>` : ''}
    <p class="muted">Buckets hold numeric values only: sealed values are never in them.</p>
    <table id="org-aggregates"><thead><tr><th>type</th><th>devices</th><th>count</th><th>min</th><th>mean</th><th>max</th></tr></thead><tbody>
    ${groups.map(([type, bs]) => { const s = summary(mergeBuckets(bs), false); return `<tr data-type="${esc(type)}"><td>${esc(type)}</td><td class="devices">${new Set(bs.map((b) => b.device)).size}</td><td class="count">${s.count}</td><td class="min">${fmtNum(s.min)}</td><td class="mean">${fmtNum(s.mean)}</td><td class="max">${fmtNum(s.max)}</td></tr>`; }).join('')
      || '<tr><td colspan="6" class="muted">no readings you may read in this range</td></tr>'}</tbody></table>
    ${groups.map(([type, bs], i) => `<h3>${esc(type)}</h3>${seriesChart(mergeBuckets(bs), r.from, r.to, false, 'org-chart-' + i)}`).join('')}`;
  box.dataset.state = 'done';
}

// --- configuration (docs/management.md): the desired side is ledger data,
// public; the reported side is a reading (thingnet/config-reported, a CBOR
// record.ConfigReport), private under the read rule like any reading. ---

const CONFIG_REPORTED = 'thingnet/config-reported';
const cfgValue = (x) => (x === undefined ? '<span class="muted">–</span>' : `<span class="mono">${esc(JSON.stringify(x))}</span>`);

// plain turns a decoded CBOR item's maps into objects (setting values are
// scalars or lists; a byte string is shown as its length).
function plain(x) {
  if (x instanceof Map) return Object.fromEntries([...x].map(([k, y]) => [String(k), plain(y)]));
  if (x instanceof Uint8Array) return `${x.length} bytes`;
  return Array.isArray(x) ? x.map(plain) : x;
}

// configReport decodes a reading's record.ConfigReport (CBOR keys: 1
// height, 2 layers, 3 applied, 4 refused), strictly: the bytes are the
// device's, so a field of another type refuses the whole report (null).
export function configReport(item) {
  const is = (x, t) => { if (typeof x !== t) throw new Error(`not a ${t}`); return x; };
  const map = (x) => { if (!(x instanceof Map)) throw new Error('not a map'); return x; };
  const list = (x) => { if (x === undefined) return []; if (!Array.isArray(x)) throw new Error('not a list'); return x; };
  const opt = (x, t) => (x === undefined ? undefined : is(x, t));
  try {
    const m = map(decode(b64(item.bytes)));
    const layer = (l) => ({ scope: is(map(l).get(1), 'string'), name: is(l.get(2), 'string'), version: is(l.get(3), 'number'), height: is(l.get(4), 'number') });
    const ref = (r) => ({ scope: opt(map(r).get(1), 'string'), name: opt(r.get(2), 'string'), setting: opt(r.get(3), 'string'), version: opt(r.get(4), 'number'), reason: is(r.get(5), 'string') });
    const applied = Object.create(null); // setting names are the device's: no prototype to collide with
    for (const [k, x] of map(m.get(3) || new Map())) applied[is(k, 'string')] = plain(x);
    return { index: item.index, time: item.time, height: is(m.get(1), 'number'), layers: list(m.get(2)).map(layer), applied, refused: list(m.get(4)).map(ref) };
  } catch {
    return null; // a malformed report is the device's own: the readings table shows it
  }
}

const refusalItem = (r) => `<li>${r.scope ? `${esc(r.scope)} ${esc(r.name || '')}${r.version ? ` v${r.version}` : ''}` : ''}${r.setting ? ` setting <span class="mono">${esc(r.setting)}</span>` : ''}: ${esc(r.reason)}</li>`;

// configReadings are the device's configuration reports among its
// readings on this gateway (GET /v1/readings, oldest first): those of the
// page's first 1,000 (rs), then later pages, at most 20 more; null when
// the readings may not be read.
async function configReadings(id, rs) {
  if (rs.error) return null;
  const of = (items) => items.filter((r) => r.content_type === CONFIG_REPORTED && r.bytes);
  const out = of(rs.items);
  for (let items = rs.items, n = 0; items.length === 1000 && n < 20; n++) {
    items = (await get(`/v1/readings?limit=1000&device=${enc(id)}&from=${new Date(items[items.length - 1].time).getTime()}`).catch(() => ({ items: [] }))).items; // a page that fails ends the search: the reports so far stand
    out.push(...of(items));
  }
  return out;
}

// configSection is the device page's Configuration: desired (public) and,
// when readings could be read (reports is not null), the last report and
// the difference per setting.
export function configSection(want, reports) {
  if (want.error) return `<h2>Configuration</h2><p class="muted" id="config-desired">${esc(want.error)}</p>`;
  const ds = want.settings || {};
  const report = reports && reports.map(configReport).filter(Boolean).pop();
  const got = report ? report.applied : {};
  const names = [...new Set([...Object.keys(ds), ...Object.keys(got)])].sort();
  const has = Object.hasOwn, at = (o, k) => (has(o, k) ? o[k] : undefined);
  const diff = (k) => (!has(got, k) ? 'not reported' : !has(ds, k) ? 'not desired' : JSON.stringify(ds[k]) === JSON.stringify(got[k]) ? 'in sync' : 'differs');
  const diffBadge = (s) => `<span class="badge ${s === 'differs' ? 'bad' : s === 'in sync' ? '' : 'warn'}">${esc(s)}</span>`;
  const settings = !reports
    ? `<table id="config-settings"><thead><tr><th>setting</th><th>desired</th></tr></thead><tbody>
      ${names.map((k) => `<tr data-setting="${esc(k)}"><td class="mono">${esc(k)}</td><td class="desired">${cfgValue(at(ds, k))}</td></tr>`).join('') || '<tr><td colspan="2" class="muted">no settings</td></tr>'}</tbody></table>
      <p id="config-private" class="muted">What the device reports applying is a reading, private: <a href="#/signin">sign in</a> as the device, an admin of its organisation or a read grantee to compare it with the desired configuration.</p>`
    : `<table id="config-settings"><thead><tr><th>setting</th><th>desired</th><th>reported</th><th></th></tr></thead><tbody>
      ${names.map((k) => `<tr data-setting="${esc(k)}" data-diff="${esc(diff(k))}"><td class="mono">${esc(k)}</td><td class="desired">${cfgValue(at(ds, k))}</td><td class="reported">${cfgValue(at(got, k))}</td><td>${diffBadge(diff(k))}</td></tr>`).join('')
        || '<tr><td colspan="4" class="muted">no settings</td></tr>'}</tbody></table>
      <p id="config-reported" class="muted">${report ? `Last reported in reading <a href="#/reading/${report.index}">${report.index}</a> (${esc(ago(report.time))}), with the layers proved at height ${report.height}: ${report.layers.map((l) => `${esc(l.scope)} ${esc(l.name)} v${l.version}`).join(', ') || 'none'}.` : 'No configuration report among this gateway’s readings of the device.'}</p>
      ${report && report.refused.length ? `<p>The device refused:</p><ul id="config-refused-reported">${report.refused.map(refusalItem).join('')}</ul>` : ''}`;
  return `<h2>Configuration</h2>
    <p class="muted">Desired at height ${want.height}: layers in merge order (a later layer wins per setting). Ledger data, public.</p>
    <table id="config-layers"><thead><tr><th>scope</th><th>name</th><th>version</th><th>signer</th><th>set at</th></tr></thead><tbody>
      ${(want.layers || []).map((l) => `<tr data-scope="${esc(l.scope)}"><td>${esc(l.scope)}</td><td class="mono">${l.scope === 'device' ? devLink(l.name) : esc(l.name)}</td><td class="n">${l.version}</td><td>${devLink(l.signer)}</td><td><a href="#/block/${l.height}">${l.height}</a></td></tr>`).join('')
        || '<tr><td colspan="5" class="muted">no configuration</td></tr>'}</tbody></table>
    ${(want.refused || []).length ? `<p>Layers refused by the ledger’s merge:</p><ul id="config-refused">${want.refused.map(refusalItem).join('')}</ul>` : ''}
    ${settings}`;
}

async function device(v, id) {
  const seq = page.seq;
  const [d, h, rs, want] = await Promise.all([
    get('/v1/devices/' + enc(id)),
    get('/v1/devices/' + enc(id) + '/history?limit=1000'),
    get('/v1/readings?limit=1000&device=' + enc(id)).catch((err) => ({ items: [], error: err.message })),
    get('/v1/devices/' + enc(id) + '/config').catch((err) => ({ error: err.message })),
  ]);
  if (seq !== page.seq) return;
  const r = d.record;
  const items = rs.items.slice(-100);
  const reports = await configReadings(id, rs);
  await openSealed(items, r.org);
  if (seq !== page.seq) return;
  v.innerHTML = `<h1>Device <span class="mono">${esc(short(id, 24))}</span></h1>
    ${kv([['id', `<span class="mono">${esc(r.id)}</span>`], ['status', `<span id="device-status">${badge(r.status)}</span>`], ['organisation', `<a href="#/org/${enc(r.org)}">${esc(r.org)}</a>`],
      ['key', `<span class="mono">${esc(r.key)}</span>${r.key !== r.id ? ' (rotated)' : ''}`], ['class', esc(r.class)], ['firmware', esc(r.firmware) || '<span class="muted">–</span>'],
      ['labels', esc(Object.entries(r.labels || {}).map(([k, x]) => `${k}=${x}`).join(', '))], ['registered at height', r.registered], ['attested by', r.attested_by ? devLink(r.attested_by) : '–']])}
    <h2>Recent readings <span class="muted">(on this node's gateway; last ${items.length})</span></h2>
    <div id="chart-box">${chart(shown(items))}</div>
    <div id="verify-box"></div>
    ${rs.error ? `<p id="readings-private" class="muted">${/^(unauthenticated|forbidden)/.test(rs.error) ? `Readings are private: ${esc(rs.error.replace(/^\w+: /, ''))} <a href="#/signin">Sign in</a> as the device, an admin of its organisation or a read grantee.` : esc(rs.error)}</p>` : ''}
    ${sealedNote(items)}
    <table id="readings"><thead><tr><th>log index</th><th>seq</th><th>time</th><th>type</th><th>value</th><th></th></tr></thead><tbody>${readingRows(items)}</tbody></table>
    <h2>Readings over a range</h2>
    <p class="muted">From this node's gateway (<code>GET /v1/readings/query</code>), per reading type: raw readings as points, buckets as the mean with a min–max band. <span id="series-range"></span></p>
    ${rangeForm(['auto', 'raw', '1m', '1h', '1d'])}
    <div id="series-box"></div>
    <div id="config-box">${configSection(want, reports)}</div>
    <h2>History</h2><ol id="history" class="timeline">${h.items.map((e) => `<li class="${esc(e.status)}"><b>${esc(e.kind)}</b> → ${badge(e.status)}
      at height <a href="#/block/${e.height}">${e.height}</a>, signed by ${devLink(e.signer)}${e.note ? ` — <i>${esc(e.note)}</i>` : ''}</li>`).join('')}</ol>
    ${cli([`thingnet device suspend ${id} --key ADMIN_KEY --reason "why"`, `thingnet device resume ${id} --key ADMIN_KEY`, `thingnet device update ${id} --firmware 1.2.3 --key ADMIN_KEY`,
      `thingnet device rotate ${id} --new-key NEW_KEY --key ADMIN_KEY`, `thingnet readings list --device ${id}`, `thingnet device config set ${id} --key ADMIN_KEY --set NAME=VALUE`, `thingnet device config diff ${id} --identity KEY`])}`;
  const els = { box: $('#series-box', v), range: $('#series-range', v) }; // v is emptied when the page is shown
  bindRange(v, () => deviceSeries(els, id, r.org));
  deviceSeries(els, id, r.org);
  let last = items.length ? items[items.length - 1].index : -1;
  every(2000, async () => {
    const fresh = await get('/v1/readings?limit=1000&device=' + enc(id)).catch(() => null);
    if (!fresh || seq !== page.seq) return;
    const all = fresh.items.slice(-100);
    const newest = all.length ? all[all.length - 1].index : -1;
    if (newest === last) return;
    last = newest;
    await openSealed(all, r.org);
    if (seq !== page.seq) return;
    $('#chart-box').innerHTML = chart(shown(all));
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
  if (p.withheld) {
    // The public part: integrity is public, the value is not.
    const res = await verifyAnchored(p, headerJSON);
    return `<h2>Reading ${index} <span class="badge warn">${esc(p.withheld.code)}</span></h2>
      <p id="verify-withheld">The value is ${p.withheld.code === 'erased' ? 'erased' : 'not shown'}: ${esc(p.withheld.message)}${p.withheld.code === 'withheld' ? ' <a href="#/signin">Sign in</a>.' : ''}</p>
      <div id="verify-verdict" class="verdict ${res.ok ? 'ok' : 'bad'}">${res.ok ? '✓ in the gateway log, anchored on the ledger (value and signature not checked: withheld)' : '✗ NOT verified'}</div>
      <ul id="verify-steps" class="steps">${res.steps.map((s) => `<li class="${s.ok ? 'ok' : 'bad'}"><span class="n">${esc(s.name)}</span> <span class="d">${esc(s.detail)}</span></li>`).join('')}</ul>`;
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

async function signinPage(v) {
  const who = signedIn();
  const held = session.dataKeys.map((d) => `<li><span class="mono">${esc(d.name)}</span> (${esc(d.key.alg)})</li>`).join('');
  v.innerHTML = `<h1>Sign in</h1>
    <p>Reading values are served only to the device, admins of its organisation, read grantees, or anyone where the organisation made them public;
    everyone else sees the public view (counts, hashes, proofs).</p>
    ${who ? `<p id="signin-state">Signed in as <span class="mono">${esc(who.sub)}</span> until ${esc(who.exp.toLocaleString())}${session.key ? ' (with your key file: renewed while this page is open)' : ''}. <button id="signout">sign out</button></p>` : '<p id="signin-state" class="muted">Not signed in.</p>'}
    <h2>With your key file</h2>
    <form id="keyfile-form">
      <div id="signin-drop" class="dropzone" tabindex="0">drop your key file here (<span class="mono">~/.thingnet/keys/NAME.json</span>), or <label class="link">choose it<input id="signin-keyfile" type="file" accept=".json,application/json" hidden></label>
        <span id="signin-keyname" class="mono"></span></div>
      <label>passphrase <input id="signin-pass" type="password" autocomplete="off"></label> <button>sign in</button>
    </form>
    <p id="signin-error" class="bad"></p>
    <p class="muted">The file is decrypted in this page (scrypt, XChaCha20-Poly1305); the key stays in this page's memory only — never in storage,
    never sent — and signs a token for ${Math.round(TOKEN_LIFETIME / 60) || 1} min at a time, renewed while the page is open. Sign out or close the tab to forget it.</p>
    <h2>With a token</h2>
    <pre class="cli">thingnet token --key YOUR_KEY --lifetime 1h</pre>
    <form id="signin-form"><label>token<br><textarea id="signin-token" rows="4" cols="80" spellcheck="false"></textarea></label><br><button>sign in</button></form>
    <p class="muted">The token stays in this tab (session storage) and is sent to this node only, as <code>Authorization: Bearer</code>.</p>
    <h2>Open sealed readings</h2>
    <p>Sealed readings open in the page with the organisation's data key: a grantee's share on the ledger opens with the key file you signed in with;
    an admin loads the data key file itself (<span class="mono">ORG.data.VERSION.json</span>, from <span class="mono">thingnet org datakey new</span>).</p>
    <form id="datakey-form"><label>data key file <input id="datakey-file" type="file" accept=".json,application/json"></label>
      <label>passphrase <input id="datakey-pass" type="password" autocomplete="off"></label> <button>load</button></form>
    <p id="datakey-error" class="bad"></p>
    <ul id="datakeys">${held}</ul>`;
  let file = null;
  const pick = (f) => { file = f; $('#signin-keyname').textContent = f ? f.name : ''; $('#signin-error').textContent = ''; };
  const zone = $('#signin-drop', v);
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('over'); pick(e.dataTransfer.files[0] || null); });
  $('#signin-keyfile', v).addEventListener('change', (e) => pick(e.target.files[0] || null));
  // openFile reads and decrypts a key file, reporting progress in out.
  const openFile = async (f, pass, out) => {
    if (!f) throw new Error('choose your key file first');
    const kf = keys.parseKeyFile(await f.text());
    out.classList.remove('bad');
    out.textContent = `decrypting ${kf.name}…`;
    try {
      return await keys.openKeyFile(kf, pass, (p) => { out.textContent = `decrypting ${kf.name}… ${Math.round(p * 100)}%`; });
    } finally { out.classList.add('bad'); }
  };
  $('#keyfile-form', v).addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('#signin-error'), pass = $('#signin-pass');
    try {
      const k = await openFile(file, pass.value, out);
      pass.value = '';
      await signInWithKey(k);
      showWho();
      route();
    } catch (err) {
      out.textContent = 'not signed in: ' + err.message;
    }
  });
  $('#signin-form', v).addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('#signin-token').value.trim();
    try {
      const c = tokenClaims(t);
      if (c.exp <= nodeNow()) throw new Error('the token has expired; make a new one');
      signOut();
      sessionStorage.setItem(TOKEN, t);
      showWho();
      route();
    } catch (err) {
      $('#signin-error').textContent = 'not a usable token: ' + err.message;
    }
  });
  $('#datakey-form', v).addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('#datakey-error'), pass = $('#datakey-pass');
    try {
      const k = await openFile($('#datakey-file').files[0], pass.value, out);
      pass.value = '';
      session.dataKeys.push({ name: k.name, key: k });
      // Readings that found no key are tried again.
      for (const [i, o] of session.opened) if (o.nokey) session.opened.delete(i);
      out.textContent = '';
      route();
    } catch (err) {
      out.textContent = 'data key not loaded: ' + err.message;
    }
  });
  const out = $('#signout', v);
  if (out) out.addEventListener('click', () => { signOut(); showWho(); route(); });
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

// --- files: manifests on the ledger, pins, shares (docs/files.md) ---

const tag = (cls, text) => `<span class="badge ${esc(cls)}">${esc(text)}</span>`;
const fmtSize = (n) => (n >= 2 ** 30 ? (n / 2 ** 30).toFixed(1) + ' GiB' : n >= 2 ** 20 ? (n / 2 ** 20).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B');
const txLink = (h) => (h ? `<a class="mono" href="#/tx/${esc(h)}" title="${esc(h)}">${esc(short(h, 10))}</a>` : '<span class="muted">–</span>');
const blockLink = (h) => (h ? `<a href="#/block/${h}">${h}</a>` : '<span class="muted">–</span>');
const SUITES = { 1: 'x25519', 2: 'p256', 3: 'mlkem768-x25519' };

// search asks the node's transaction index for the committed txs whose
// ledger events match every filter (GET /v1/txs?event=TYPE.KEY=VALUE).
const search = (filters, page = 1) => get('/v1/txs?' + filters.map((f) => 'event=' + enc(f)).join('&') + `&limit=100&page=${page}`);
// searchSince is search for a record last changed at height h: the node
// indexes a block's txs just after committing it, so a search right after
// the block may miss them; it asks again for up to 3 s.
async function searchSince(filters, h) {
  for (let i = 0; ; i++) {
    const res = await search(filters);
    if (!h || i >= 15 || res.items.some((t) => t.height >= h)) return res;
    await sleep(200);
  }
}
// attrsOf is the attributes of a tx's ledger events of a type.
const attrsOf = (t, type) => (t.events || []).filter((e) => e.type === type).map((e) => Object.fromEntries((e.attributes || []).map((a) => [a.key, a.value])));

// liveRefresh redraws the page on the events match picks, and a few times
// more later: the node indexes a block's txs just after announcing it, and
// much later when it is busy (a loaded node took more than 5 s).
function liveRefresh(v, match) {
  const path = location.hash;
  v.live((type, d) => {
    if (!match(type, d)) return;
    route();
    for (const ms of [1500, 5000, 12000, 25000]) setTimeout(() => { if (location.hash === path) route(); }, ms);
  });
}

async function pinsOf(cids) {
  const uniq = [...new Set(cids)];
  const ps = await Promise.all(uniq.map((c) => get('/v1/pins/' + enc(c)).then((p) => p.items).catch(() => [])));
  return new Map(uniq.map((c, i) => [c, ps[i]]));
}

const pinList = (ps) => (ps.length ? ps.map((p) => devLink(p.pinner)).join('<br>') : '<span class="muted">none</span>');

function fileRow(f, pins) {
  return `<tr data-org="${esc(f.org)}" data-name="${esc(f.name)}"><td><a href="#/file/${enc(f.org)}/${enc(f.name)}">${esc(f.name)}</a></td>
    <td><a href="#/files/${enc(f.org)}">${esc(f.org)}</a></td><td class="mono" title="${esc(f.cid)}">${esc(short(f.cid, 14))}</td>
    <td class="size" title="${f.size} bytes">${fmtSize(f.size)}</td><td>${esc(f.content_type || '–')}</td>
    <td class="vis">${f.private ? tag('warn', 'private') : tag('ok', 'public')}</td><td class="recipients">${f.private ? (f.keys || []).length : '–'}</td>
    <td>${devLink(f.owner)}</td><td class="pins" data-n="${pins.length}">${pinList(pins)}</td><td>${f.version}</td><td>${blockLink(f.height)}</td></tr>`;
}

async function filesPage(v, org) {
  const orgIDs = org ? [org] : (await get('/v1/orgs?limit=1000')).items.map((o) => o.id);
  const lists = await Promise.all(orgIDs.map((o) => get(`/v1/files/${enc(o)}?limit=1000`).then((p) => p.items)));
  const all = lists.flat();
  const pins = await pinsOf(all.map((f) => f.cid));
  const pinned = all.filter((f) => pins.get(f.cid).length > 0).length;
  v.innerHTML = `<h1>Files${org ? ` of <a href="#/org/${enc(org)}">${esc(org)}</a>` : ''}</h1>
    <p class="muted">Content-addressed files (IPFS CIDs, fetched over bitswap) whose manifests the ledger keeps. A private file is encrypted; its content key is
    wrapped (HPKE) for each recipient, and only the recipients are shown here. Pinning gateways are the nodes that recorded a pin on the ledger.</p>
    <div class="cards">${card('files', all.length, 'files-count')}${card('private', all.filter((f) => f.private).length, 'files-private')}${card('pinned by a node', pinned, 'files-pinned')}${card('total size', fmtSize(all.reduce((s, f) => s + f.size, 0)))}</div>
    ${org ? '<p><a href="#/files">all organisations</a></p>' : `<p class="muted">by organisation: ${orgIDs.map((o) => `<a href="#/files/${enc(o)}">${esc(o)}</a>`).join(' · ')}</p>`}
    <table id="files"><thead><tr><th>name</th><th>org</th><th>CID</th><th>size</th><th>type</th><th>visibility</th><th>recipients</th><th>owner</th><th>pinned by</th><th>version</th><th>published at</th></tr></thead><tbody>
    ${all.map((f) => fileRow(f, pins.get(f.cid))).join('') || '<tr><td colspan="11" class="muted">no files yet</td></tr>'}</tbody></table>
    ${cli(['thingnet file add PATH --key DEVICE_KEY --publish ORG/NAME [--private --to DEVICE]', 'thingnet file share ORG/NAME --to DEVICE --key KEY', 'thingnet file ls ORG'])}`;
  liveRefresh(v, (type, d) => type === 'tx' && d.code === 0 && String(d.kind).startsWith('file.'));
}

const fileActions = { publish: 'published', share: 'shared', revoke: 'revoked a recipient', rekey: 're-keyed (new content)', pin: 'pinned', unpin: 'unpinned' };

function fileEventItem(t, a) {
  const what = a.action === 'share' ? `${a.keys} key(s)` : a.action === 'revoke' ? `recipient ${devLink(a.recipient)}` : a.cid ? `<span class="mono">${esc(short(a.cid, 14))}</span>` : '';
  return `<li class="${a.action === 'revoke' || a.action === 'unpin' ? 'suspended' : ''}" data-action="${esc(a.action)}"><b>${esc(fileActions[a.action] || a.action)}</b> ${what}
    at height ${blockLink(t.height)} by ${devLink(t.signer)}, tx ${txLink(t.hash)}</li>`;
}

async function filePage(v, org, name) {
  const resources = [`org:${org}/file/${name}`, `org:${org}/file`, `org:${org}`];
  const [rec, gs] = await Promise.all([get(`/v1/files/${enc(org)}/${enc(name)}`), get('/v1/grants?action=fetch&limit=1000').catch(() => ({ items: [] }))]);
  const f = rec.record;
  const pins = (await get('/v1/pins/' + enc(f.cid))).items;
  const [hist, pinHist] = await Promise.all([
    searchSince([`file.org=${org}`, `file.name=${name}`], f.updated).catch((err) => ({ items: [], error: err.message })),
    searchSince([`file.cid=${f.cid}`], Math.max(0, ...pins.map((p) => p.height))).catch((err) => ({ items: [], error: err.message })),
  ]);
  const events = hist.items.flatMap((t) => attrsOf(t, 'file').filter((a) => a.org === org && a.name === name).map((a) => [t, a]));
  const published = events.find(([, a]) => a.action === 'publish');
  const pinEvents = pinHist.items.flatMap((t) => attrsOf(t, 'file').filter((a) => a.cid === f.cid && (a.action === 'pin' || a.action === 'unpin')).map((a) => [t, a]));
  const grants = gs.items.filter((g) => resources.includes(g.resource));
  // Never the wrapped keys themselves: who they are for, and the suite.
  const manifest = { ...f, keys: f.keys && f.keys.map((k) => ({ recipient: k.recipient, suite: SUITES[k.suite] || k.suite })) };
  v.innerHTML = `<h1>File ${esc(org)}/${esc(name)}</h1>
    ${kv([['organisation', `<a href="#/files/${enc(org)}">${esc(org)}</a>`], ['CID', `<span class="mono" id="file-cid">${esc(f.cid)}</span>${f.private ? '' : ` · <a href="/v1/content/${enc(f.cid)}">download</a>`}`],
      ['size', `${fmtSize(f.size)} (${f.size} bytes)`], ['content type', esc(f.content_type || '–')], ['visibility', `<span id="file-vis">${f.private ? tag('warn', 'private') : tag('ok', 'public')}</span>`],
      ['version', f.version], ['owner', devLink(f.owner)], ['published', `at height ${blockLink(f.height)}, tx <span id="file-tx">${published ? txLink(published[0].hash) : '<span class="muted">not in this node\'s index</span>'}</span>`],
      ['updated at height', blockLink(f.updated)], ['pinned by', `<span id="file-pins" data-n="${pins.length}">${pinList(pins)}</span>`]])}
    <h2>Recipients</h2>
    ${f.private ? `<table id="recipients"><thead><tr><th>recipient</th><th>HPKE suite</th></tr></thead><tbody>
      ${(f.keys || []).map((k) => `<tr><td>${devLink(k.recipient)}</td><td>${esc(SUITES[k.suite] || k.suite)}</td></tr>`).join('') || '<tr><td colspan="2" class="muted">no recipient holds a key</td></tr>'}</tbody></table>
      <p class="muted">The content key is sealed to each recipient's ledger key; the sealed keys are not shown.</p>` : '<p class="muted" id="recipients">A public file: anyone with the CID may fetch it.</p>'}
    <h2>Fetch grants</h2><table id="file-grants"><thead><tr><th>id</th><th>subject</th><th>resource</th><th>granted by</th><th>expiry</th></tr></thead><tbody>
      ${grants.map((g) => `<tr><td>${g.id}</td><td class="mono">${esc(short(g.subject, 28))}</td><td class="mono">${esc(g.resource)}</td><td class="mono">${esc(short(g.grantor, 24))}</td><td>${g.expiry || '–'}</td></tr>`).join('') || '<tr><td colspan="5" class="muted">none in force</td></tr>'}</tbody></table>
    <h2>History</h2>${hist.error ? `<p class="muted">${esc(hist.error)}</p>` : ''}<ol id="file-history" class="timeline">${events.map(([t, a]) => fileEventItem(t, a)).join('')}</ol>
    <h2>Pin history</h2>${pinHist.error ? `<p class="muted">${esc(pinHist.error)}</p>` : ''}<ol id="pin-history" class="timeline">${pinEvents.map(([t, a]) => fileEventItem(t, a).replace('<b>', `${devLink(a.pinner)} <b>`)).join('') || '<li class="muted">no pin recorded</li>'}</ol>
    <h2>Manifest</h2><pre class="json" id="manifest">${esc(JSON.stringify(manifest, null, 2))}</pre>
    ${cli([`thingnet file get ${org}/${name} --key DEVICE_KEY`, `thingnet file share ${org}/${name} --to DEVICE --key KEY`, `thingnet file revoke ${org}/${name} --recipient DEVICE [--rekey] --key KEY`, `thingnet file pin ${f.cid} --key GATEWAY_KEY`])}`;
  liveRefresh(v, (type, d) => type === 'tx' && d.code === 0 && String(d.kind).startsWith('file.'));
}

// --- firmware: releases, approvals, rollouts (docs/files.md, "Firmware") ---

const FIRMWARE_AAD = 'thingnet/firmware/v1';

// firmwarePairs finds the (org or vendor, class) pairs that have firmware
// records of a kind, from the ledger's firmware events in the node's
// transaction index; without an index, every organisation × device class.
async function firmwarePairs(action, key, devs) {
  try {
    const seen = new Map();
    for (let page = 1; page <= 10; page++) {
      const res = await search([`firmware.action=${action}`], page);
      for (const t of res.items) for (const a of attrsOf(t, 'firmware')) if (a.action === action) seen.set(a[key] + '\x00' + a.class, [a[key], a.class]);
      if (!res.next) break;
    }
    return [...seen.values()].sort((a, b) => (a[0] + '\x00' + a[1]).localeCompare(b[0] + '\x00' + b[1]));
  } catch (err) {
    console.warn('firmware search:', err.message);
    const orgIDs = (await get('/v1/orgs?limit=1000')).items.map((o) => o.id);
    const classes = [...new Set(devs.map((d) => d.class))];
    return orgIDs.flatMap((o) => classes.map((c) => [o, c]));
  }
}

// verifyCOSE checks a COSE_Sign1 signature (RFC 9052 4.4) made with
// external data aad by the key of a did:key, with WebCrypto.
async function verifyCOSE(prot, payload, signature, alg, did, aad) {
  const k = didKey(did);
  const data = concat(head(4, 4), tstr('Signature1'), bstr(prot), bstr(new TextEncoder().encode(aad)), bstr(payload));
  if (k.alg === 'Ed25519') {
    if (alg !== -8) throw new Error(`the manifest says alg ${alg}, the key is Ed25519`);
    const key = await crypto.subtle.importKey('raw', k.raw, { name: 'Ed25519' }, false, ['verify']);
    return crypto.subtle.verify({ name: 'Ed25519' }, key, signature, data);
  }
  if (alg !== -7) throw new Error(`the manifest says alg ${alg}, the key is P-256`);
  const key = await crypto.subtle.importKey('raw', k.raw, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, signature, data);
}

// checkRelease checks a release in the page: the COSE_Sign1 signature with
// the signer's did:key (WebCrypto), that the signed manifest is the one the
// ledger records, and that the signer administers the vendor organisation.
async function checkRelease(r, admins) {
  try {
    const m = decode(b64(r.signed));
    if (!m || m.tag !== 18 || !Array.isArray(m.value) || m.value.length !== 4) throw new Error('not a COSE_Sign1 message');
    const [prot, , payload, signature] = m.value;
    const ph = decode(prot);
    const kid = ph.get(4) instanceof Uint8Array ? new TextDecoder().decode(ph.get(4)) : String(ph.get(4));
    if (kid !== r.signer) throw new Error(`signed by ${kid}, recorded as ${r.signer}`);
    const p = decode(payload), mf = r.manifest;
    if (p.get(1) !== mf.vendor || p.get(2) !== mf.class || p.get(3) !== mf.version || p.get(4) !== mf.seq || hex(p.get(5)) !== hex(b64(mf.digest)) || p.get(6) !== mf.size) {
      throw new Error('the signed manifest is not the recorded one');
    }
    // ?tamper=firmware: check a copy with one signature byte changed.
    const sig = params.get('tamper') === 'firmware' ? Uint8Array.from(signature, (x, i) => (i === signature.length - 1 ? x ^ 1 : x)) : signature;
    if (!(await verifyCOSE(prot, payload, sig, ph.get(1), kid, FIRMWARE_AAD))) throw new Error('the signature does not check');
    if (!admins.includes(kid)) return { cls: 'warn', text: 'signed; the signer no longer administers ' + mf.vendor };
    return { cls: 'ok', text: 'vendor signature checks' };
  } catch (err) {
    return { cls: 'bad', text: 'NOT verified: ' + err.message };
  }
}

// bucket is a device's place in a rollout, 0..99 (ledger FirmwareRolloutRecord.Bucket).
async function bucket(ro, device) {
  const h = await sha256(new TextEncoder().encode(`${ro.rollout.org}/${ro.rollout.class}/${ro.start}\x00${device}`));
  return Number(new DataView(h.buffer).getBigUint64(0) % 100n);
}

// rolloutState: aborted (at a height), complete (every device offered and
// running the release), or active.
function rolloutState(ro, devs) {
  if (ro.status === 'aborted') return { cls: 'bad', text: `aborted at height ${ro.aborted}` };
  if (ro.offered_percent >= 100 && devs.length > 0 && devs.every((d) => d.firmware === ro.version && !(d.labels || {}).firmware_unapproved)) return { cls: 'ok', text: 'complete' };
  return { cls: 'active', text: ro.status };
}

const flagOf = (d) => (d.labels || {}).firmware_unapproved;

function rolloutRow(ro, devs) {
  const st = rolloutState(ro, devs), r = ro.rollout;
  return `<tr data-org="${esc(r.org)}" data-class="${esc(r.class)}"><td><a href="#/firmware/${enc(r.org)}/${enc(r.class)}">${esc(r.org)} / ${esc(r.class)}</a></td>
    <td>${esc(r.vendor)} #${r.seq} (${esc(ro.version)})</td><td class="status">${tag(st.cls, st.text)}</td><td class="wave">${ro.wave}</td><td class="offered">${ro.offered_percent}%</td>
    <td class="installed">${ro.installed}</td><td class="failed">${ro.failed} / ${r.max_failures}</td><td>${blockLink(ro.start)}</td></tr>`;
}

async function firmwarePage(v) {
  const ds = await get('/v1/devices?limit=1000');
  const [relPairs, apPairs, roPairs] = await Promise.all([firmwarePairs('release', 'vendor', ds.items), firmwarePairs('approve', 'org', ds.items), firmwarePairs('rollout', 'org', ds.items)]);
  const [rels, aps, ros] = await Promise.all([
    Promise.all(relPairs.map(([vd, c]) => get(`/v1/firmware/${enc(vd)}/${enc(c)}?limit=1000`).then((p) => p.items).catch(() => []))).then((x) => x.flat()),
    Promise.all(apPairs.map(([o, c]) => get(`/v1/firmware-approvals/${enc(o)}/${enc(c)}`).then((p) => p.items).catch(() => []))).then((x) => x.flat()),
    Promise.all(roPairs.map(([o, c]) => get(`/v1/rollouts/${enc(o)}/${enc(c)}`).then((p) => p.record).catch(() => null))).then((x) => x.filter(Boolean)),
  ]);
  const vendors = [...new Set(rels.map((r) => r.manifest.vendor))];
  const admins = new Map(await Promise.all(vendors.map((vd) => get('/v1/orgs/' + enc(vd)).then((o) => [vd, o.record.admins]).catch(() => [vd, []]))));
  const sigs = await Promise.all(rels.map((r) => checkRelease(r, admins.get(r.manifest.vendor))));
  const classDevs = (o, c) => ds.items.filter((d) => d.org === o && d.class === c);
  const flagged = ds.items.filter(flagOf);
  const byClass = new Map();
  for (const d of ds.items) {
    if (d.class === 'gateway') continue;
    const k = d.org + '\x00' + d.class;
    if (!byClass.has(k)) byClass.set(k, [d.org, d.class, []]);
    byClass.get(k)[2].push(d);
  }
  const classes = [...byClass.keys()].sort().map((k) => byClass.get(k));
  v.innerHTML = `<h1>Firmware</h1>
    <p class="muted">Vendors publish signed releases (a SUIT-like manifest); an organisation approves a release for its devices of a class and rolls it out in waves;
    devices report what they installed. The vendor signatures are checked in this page (WebCrypto).</p>
    <div class="cards">${card('releases', rels.length, 'fw-releases')}${card('approvals', aps.length, 'fw-approvals')}${card('rollouts active', ros.filter((r) => r.status === 'active').length, 'fw-active')}${card('devices flagged', flagged.length, 'fw-flagged')}</div>
    <h2>Releases</h2><table id="releases"><thead><tr><th>vendor</th><th>class</th><th>version</th><th>seq</th><th>image digest (SHA-256)</th><th>size</th><th>image CID</th><th>signature</th><th>released at</th></tr></thead><tbody>
    ${rels.map((r, i) => { const m = r.manifest, d = hex(b64(m.digest)); return `<tr data-vendor="${esc(m.vendor)}" data-class="${esc(m.class)}" data-seq="${m.seq}"><td>${esc(m.vendor)}</td><td>${esc(m.class)}</td><td>${esc(m.version)}</td><td>${m.seq}</td>
      <td class="mono" title="${d}">${d.slice(0, 16)}…</td><td title="${m.size} bytes">${fmtSize(m.size)}</td><td class="mono" title="${esc(m.cid || '')}">${esc(short(m.cid || '–', 12))}</td>
      <td class="sig">${tag(sigs[i].cls, sigs[i].text)}</td><td>${blockLink(r.height)}</td></tr>`; }).join('') || '<tr><td colspan="9" class="muted">no releases yet</td></tr>'}</tbody></table>
    <h2>Approvals</h2><table id="approvals"><thead><tr><th>organisation / class</th><th>release</th><th>version</th><th>digest</th><th>approved at</th></tr></thead><tbody>
    ${aps.map((a) => `<tr><td><a href="#/firmware/${enc(a.org)}/${enc(a.class)}">${esc(a.org)} / ${esc(a.class)}</a></td><td>${esc(a.vendor)} #${a.seq}</td><td>${esc(a.version)}</td>
      <td class="mono">${hex(b64(a.digest)).slice(0, 16)}…</td><td>${blockLink(a.height)}</td></tr>`).join('') || '<tr><td colspan="5" class="muted">no approvals yet</td></tr>'}</tbody></table>
    <h2>Rollouts</h2><table id="rollouts"><thead><tr><th>organisation / class</th><th>release</th><th>status</th><th>wave</th><th>offered</th><th>installed</th><th>failed / max</th><th>started at</th></tr></thead><tbody>
    ${ros.map((ro) => rolloutRow(ro, classDevs(ro.rollout.org, ro.rollout.class))).join('') || '<tr><td colspan="8" class="muted">no rollouts yet</td></tr>'}</tbody></table>
    <h2>Device classes</h2><table id="classes"><thead><tr><th>organisation / class</th><th>devices</th><th>versions running</th><th>flagged</th></tr></thead><tbody>
    ${classes.map(([o, c, ds2]) => { const vs = new Map(); ds2.forEach((d) => vs.set(d.firmware || '–', (vs.get(d.firmware || '–') || 0) + 1));
      return `<tr data-org="${esc(o)}" data-class="${esc(c)}"><td><a href="#/firmware/${enc(o)}/${enc(c)}">${esc(o)} / ${esc(c)}</a></td><td class="n">${ds2.length}</td>
      <td>${[...vs].sort().map(([ver, n]) => `${esc(ver)} ×${n}`).join(', ')}</td><td class="flagged">${ds2.filter(flagOf).length}</td></tr>`; }).join('') || '<tr><td colspan="4" class="muted">no devices</td></tr>'}</tbody></table>
    <h2>Devices running unapproved firmware</h2><table id="flagged"><thead><tr><th>device</th><th>organisation / class</th><th>firmware</th><th>image digest (first 8 bytes)</th></tr></thead><tbody>
    ${flagged.map((d) => `<tr><td>${devLink(d.id)}</td><td><a href="#/firmware/${enc(d.org)}/${enc(d.class)}">${esc(d.org)} / ${esc(d.class)}</a></td><td>${esc(d.firmware)}</td><td class="mono">${esc(flagOf(d))}</td></tr>`).join('') || '<tr><td colspan="4" class="muted">none</td></tr>'}</tbody></table>
    ${cli(['thingnet firmware publish IMAGE --vendor VENDOR --class CLASS --version 2.1.0 --seq 7 --key VENDOR_ADMIN', 'thingnet firmware approve --org ORG --vendor VENDOR --class CLASS --seq 7 --key ADMIN_KEY',
      'thingnet firmware rollout --org ORG --vendor VENDOR --class CLASS --seq 7 --percent 10 --blocks-per-wave 100 --max-failures 5 --key ADMIN_KEY'])}`;
  liveRefresh(v, (type, d) => (type === 'tx' && d.code === 0 && String(d.kind).startsWith('firmware.')) || type.startsWith('device.'));
}

// waveBars draws a rollout's progress: the share of the class offered now
// (wave boundaries marked), installs of the class's devices, and failures
// against the abort threshold.
function waveBars(ro, n) {
  const W = 640, L = 150, BW = W - L - 70, r = ro.rollout;
  const rows = [
    ['offered', ro.offered_percent / 100, `${ro.offered_percent}%`, ''],
    ['installed', n ? Math.min(ro.installed / n, 1) : 0, `${ro.installed} of ${n}`, 'ok'],
    ['failed', Math.min(ro.failed / r.max_failures, 1), `${ro.failed} of ${r.max_failures}`, 'bad'],
  ];
  const waves = Math.ceil(100 / r.percent);
  const ticks = [];
  for (let k = 1; k < waves; k++) ticks.push(`<line class="tick" x1="${(L + (BW * k * r.percent) / 100).toFixed(1)}" y1="8" x2="${(L + (BW * k * r.percent) / 100).toFixed(1)}" y2="26"/>`);
  return `<svg id="wave-bars" class="chart" viewBox="0 0 ${W} 110" width="100%" role="img" aria-label="rollout progress">
    ${rows.map(([k, f, label, cls], i) => `<text x="8" y="${22 + i * 32}">${k}</text><rect class="track" x="${L}" y="${8 + i * 32}" width="${BW}" height="18"/>
      <rect class="fill ${cls}" data-k="${k}" x="${L}" y="${8 + i * 32}" width="${(BW * f).toFixed(1)}" height="18"/><text x="${L + BW + 8}" y="${22 + i * 32}">${esc(label)}</text>`).join('')}
    ${ticks.join('')}</svg>
    <p class="muted">Wave ${ro.wave} of ${waves}: each wave adds ${r.percent}% of the devices, every ${r.blocks_per_wave} block(s) from height ${ro.start}; ${r.max_failures} failed install(s) abort the rollout.</p>`;
}

async function firmwareClass(v, org, cls) {
  const [ro, ap, ds] = await Promise.all([
    get(`/v1/rollouts/${enc(org)}/${enc(cls)}`).then((p) => p.record).catch((err) => { if (/^not_found/.test(err.message)) return null; throw err; }),
    get(`/v1/firmware-approvals/${enc(org)}/${enc(cls)}`),
    get(`/v1/devices?limit=1000&org=${enc(org)}`),
  ]);
  const devs = ds.items.filter((d) => d.class === cls);
  const approved = new Set(ap.items.map((a) => a.version));
  const buckets = ro ? await Promise.all(devs.map((d) => bucket(ro, d.id))) : [];
  const st = ro && rolloutState(ro, devs);
  v.innerHTML = `<h1>Firmware of <a href="#/org/${enc(org)}">${esc(org)}</a>'s ${esc(cls)} devices</h1>
    <h2>Rollout</h2>
    ${ro ? `${kv([['release', `${esc(ro.rollout.vendor)} / ${esc(ro.rollout.class)} #${ro.rollout.seq}, version <b>${esc(ro.version)}</b>`], ['image digest', `<span class="mono">${hex(b64(ro.digest))}</span>`],
      ['status', `<span id="rollout-status">${tag(st.cls, st.text)}</span>`], ['started at height', blockLink(ro.start)]])}
      <div class="cards">${card('wave open', ro.wave, 'rollout-wave')}${card('offered', ro.offered_percent + '%', 'rollout-offered')}${card('installed', ro.installed, 'rollout-installed')}${card('failed / max', `${ro.failed} / ${ro.rollout.max_failures}`, 'rollout-failed')}</div>
      ${waveBars(ro, devs.length)}` : '<p class="muted" id="rollout-status">No rollout for this class.</p>'}
    <h2>Approved releases</h2><table id="approvals"><thead><tr><th>release</th><th>version</th><th>digest</th><th>approved at</th></tr></thead><tbody>
    ${ap.items.map((a) => `<tr><td>${esc(a.vendor)} #${a.seq}</td><td>${esc(a.version)}</td><td class="mono">${hex(b64(a.digest)).slice(0, 16)}…</td><td>${blockLink(a.height)}</td></tr>`).join('') || '<tr><td colspan="4" class="muted">none</td></tr>'}</tbody></table>
    <h2>Devices</h2><p class="muted">${devs.length} device(s). A device's history lists every version it reported.</p>
    <table id="class-devices"><thead><tr><th>device</th><th>status</th><th>firmware</th><th>approved</th>${ro ? '<th>bucket</th><th>offered now</th>' : ''}<th></th></tr></thead><tbody>
    ${devs.map((d, i) => `<tr data-id="${esc(d.id)}"><td>${devLink(d.id)}</td><td>${badge(d.status)}</td><td class="fw">${esc(d.firmware || '–')}${ro && d.firmware === ro.version ? ' ' + tag('ok', 'rollout release') : ''}</td>
      <td class="flag">${flagOf(d) ? tag('bad', 'firmware_unapproved') : approved.has(d.firmware) ? tag('ok', 'approved') : '<span class="muted">not reported</span>'}</td>
      ${ro ? `<td>${buckets[i]}</td><td class="offered">${ro.status === 'active' && buckets[i] < ro.wave * ro.rollout.percent ? 'yes' : 'no'}</td>` : ''}
      <td><a href="#/device/${enc(d.id)}">history</a></td></tr>`).join('') || `<tr><td colspan="${ro ? 7 : 5}" class="muted">no devices of this class</td></tr>`}</tbody></table>
    ${cli([`thingnet firmware status --org ${org} --class ${cls}${ro ? ` --vendor ${ro.rollout.vendor}` : ' --vendor VENDOR'}`, `thingnet firmware rollout --org ${org} --class ${cls} --vendor VENDOR --seq SEQ --percent 10 --blocks-per-wave 100 --max-failures 5 --key ADMIN_KEY`])}`;
  const end = ro && ro.status === 'active' ? ro.start + ro.wave * ro.rollout.blocks_per_wave : Infinity; // the next wave opens at this height
  liveRefresh(v, (type, d) => (type === 'tx' && d.code === 0 && (String(d.kind).startsWith('firmware.') || String(d.kind).startsWith('device.')))
    || (type === 'block' && d.height >= end && ro.offered_percent < 100));
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

// --- the network's rules and upgrades (docs/operations.md "Governance",
// "Upgrades") ---

// GOV_BUDGETS are record.Governance's budgets: CBOR key, JSON name, what
// each bounds, what happens over it.
const GOV_BUDGETS = [
  [4, 'mempool_txs_per_org', "txs in a node's mempool", 'CheckTx refuses more with over_budget until some commit'],
  [3, 'block_txs_per_org', 'txs per block', 'the proposer leaves the rest in the mempool for the next blocks'],
  [5, 'block_triggers_per_org', "agreements' height triggers per block", 'the rest stay due and run in the next blocks, oldest first'],
];

// governanceOf is the governance a proof shows: the record it proves, or,
// proved absent, the rules of a network whose genesis set none (open,
// unlimited; ledger.State.Governance).
function governanceOf(value) {
  if (!value) return { org_creation: 'open' };
  const m = decode(b64(value));
  if (!(m instanceof Map)) throw new Error('the governance record is not a CBOR map');
  const g = { org_creation: m.get(1) };
  if (m.get(2)) g.org_deposit = m.get(2);
  for (const [k, name] of GOV_BUDGETS) if (m.get(k)) g[name] = m.get(k);
  return g;
}
const sameRules = (a, b) => ['org_creation', 'org_deposit', ...GOV_BUDGETS.map((x) => x[1])].every((k) => (a[k] || 0) === (b[k] || 0));

// governanceHTML renders governance rules (record.Governance's JSON); a
// budget of 0 is unlimited.
export function governanceHTML(g) {
  const creation = { open: 'open: any key may create an organisation', approval: 'approval: validators holding more than 2/3 of the voting power sign each creation',
    deposit: `deposit: ${g.org_deposit} credits, moved into the new organisation's own account` }[g.org_creation] || `unknown policy "${g.org_creation}"`;
  return `${kv([['organisation creation', `<span id="gov-creation">${esc(creation)}</span>`]])}
    <table id="gov-budgets"><thead><tr><th>per organisation</th><th>budget</th><th>genesis field</th><th>over it</th></tr></thead><tbody>
    ${GOV_BUDGETS.map(([, name, what, over]) => `<tr data-field="${name}"><td>${esc(what)}</td><td class="budget">${g[name] > 0 ? g[name] : 'unlimited'}</td><td class="mono">${name}</td><td class="muted">${esc(over)}</td></tr>`).join('')}</tbody></table>`;
}

// upgradeHTML renders GET /v1/upgrade's answer at the live height: the
// application version, the pending plan with a countdown in blocks, the
// upgrades done.
export function upgradeHTML(u, height) {
  const p = u.pending;
  return `<div class="cards">${card('application version', u.app_version, 'up-version')}${card('height', height, 'up-height')}${card('upgrades done', u.done.length)}</div>
    <h3>Planned</h3>${p ? `<div id="up-pending">${kv([['name', `<b>${esc(p.name)}</b>`], ['at height', blockLink(p.height)], ['application version', `${u.app_version} → ${p.app_version}`],
      ['in', `<span id="up-countdown">${countdown(p.height, height)}</span>`], ['release', esc(p.info) || '<span class="muted">–</span>'], ['planned at height', blockLink(p.planned)], ['sequence', p.seq]])}</div>
      <p class="muted">Every node stops before executing block ${p.height} unless it runs a release that carries "${esc(p.name)}"; that release runs the state migration there and goes on.</p>`
    : '<p id="up-pending" class="muted">No upgrade is planned.</p>'}
    <h3>Done</h3><table id="up-done"><thead><tr><th>name</th><th>at height</th><th>application version</th></tr></thead><tbody>
    ${u.done.map((d) => `<tr><td>${esc(d.name)}</td><td>${blockLink(d.height)}</td><td>${d.app_version}</td></tr>`).join('') || '<tr><td colspan="3" class="muted">none</td></tr>'}</tbody></table>`;
}

// countdown says how far height h is from the live height.
function countdown(h, height) {
  const n = h - height;
  if (n > 1) return `${n} blocks`;
  if (n === 1) return 'the next block';
  return 'due: nodes without the release stop here';
}

// governanceProof checks GET /v1/governance?prove=true in the page: the
// proof is of the governance key, gives the app hash of a header signed by
// the validators, and proves what the node answered (a record, or none:
// open and unlimited). It returns the rules proved and the steps.
async function governanceProof(res) {
  const steps = [];
  const step = (name, ok, detail) => { steps.push({ name, ok, detail }); return ok; };
  let rules = null;
  try {
    const p = res.proof;
    if (!p) throw new Error('the node sent no proof');
    if (step('key', eq(b64(p.key), new TextEncoder().encode('m/governance')), `the proof is of key ${new TextDecoder().decode(b64(p.key))}`)
      && await checkProof(p, 'governance proof', p.value ? 'of the governance record' : 'that the genesis set no governance record', step, headerJSON)) {
      const g = governanceOf(p.value);
      if (step('rules', sameRules(g, res.record), p.value ? 'the rules shown are the record proved' : 'no record: the network is open and unlimited')) rules = g;
    }
  } catch (err) {
    step('error', false, err.message);
  }
  return { ok: rules !== null && steps.every((x) => x.ok), rules, steps };
}

// overBudget is this node's count of txs CheckTx refused over their
// organisation's budget (thingnet_ledger_checktx_rejected_total).
async function overBudget() {
  const text = await fetch('/metrics').then((r) => (r.ok ? r.text() : ''), () => '');
  return parseMetrics(text).filter((m) => m.name === 'thingnet_ledger_checktx_rejected_total' && m.labels.includes('reason="over_budget"')).reduce((s, m) => s + m.value, 0);
}

async function networkPage(v) {
  const [gov, up, st, refused] = await Promise.all([get('/v1/governance?prove=true'), get('/v1/upgrade'), get('/v1/status'), overBudget()]);
  const proved = await governanceProof(gov);
  let height = Math.max(st.height, up.height);
  v.innerHTML = `<h1>Network rules and upgrades</h1>
    <h2>Governance</h2>
    <p class="muted">Set in the genesis, kept in the ledger's state: who may create an organisation, and how much of the shared mempool and blocks one
    organisation may take. Every tx is charged to its signer's organisation; anchors, validator updates and credit mints are never charged.</p>
    <div id="gov-verdict" class="verdict ${proved.ok ? 'ok' : 'bad'}">${proved.ok ? `✓ proved: in the ledger state of height ${gov.proof.height}, signed by the validators` : '✗ NOT verified: the rules below are what the node says'}</div>
    ${governanceHTML(proved.rules || gov.record)}
    <ul id="gov-steps" class="steps">${proved.steps.map((s) => `<li class="${s.ok ? 'ok' : 'bad'}"><span class="n">${esc(s.name)}</span> <span class="d">${esc(s.detail)}</span></li>`).join('')}</ul>
    <div class="cards">${card('txs refused over budget (this node, since it started)', refused, 'gov-over-budget')}</div>
    ${cli(['thingnet governance --prove', 'thingnet org create ORG --key KEY --approval gw1.json ...   # org_creation: approval', 'thingnet org admin rotate ORG --key OLD --new-key NEW'])}
    <h2>Software upgrades</h2><div id="up-box">${upgradeHTML(up, height)}</div>
    ${cli(['thingnet upgrade show', 'thingnet upgrade approve --home NODE_HOME --chain-id CHAIN --seq SEQ --name v2 --height H --app-version 2 --info "..." > gw1.json', 'thingnet upgrade plan gw1.json gw2.json gw3.json --key KEY'])}`;
  v.live((type, d) => {
    if (type === 'tx' && d.code === 0 && d.kind === 'upgrade.plan') { route(); return; }
    if (type !== 'block' || d.height <= height) return;
    height = d.height;
    if (up.pending && height >= up.pending.height) { route(); return; } // done, or the node stopped: ask again
    $('#up-height').textContent = height;
    if (up.pending) $('#up-countdown').textContent = countdown(up.pending.height, height);
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
// The node's clock first: a stored token is judged on it.
status().then((s) => { $('#chain').textContent = `${s.chain_id} · height ${s.height}`; }).catch(() => {}).finally(() => {
  showWho();
  route();
  start();
});
