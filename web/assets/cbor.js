// A small CBOR (RFC 8949) decoder: enough for COSE_Sign1 envelopes,
// reading payloads and ledger records. It keeps the byte offsets of byte
// strings so that the verifier can use the bytes exactly as sent.

export class CBORError extends Error {}

// decode returns the first item of bytes and, with {all:true}, checks that
// nothing follows it.
export function decode(bytes, opts = {}) {
  const r = { b: bytes, i: 0 };
  const v = item(r, 0);
  if (opts.all !== false && r.i !== bytes.length) throw new CBORError(`${bytes.length - r.i} bytes after the CBOR item`);
  return v;
}

function need(r, n) {
  if (r.i + n > r.b.length) throw new CBORError('truncated CBOR');
}

function arg(r, info) {
  if (info < 24) return info;
  const n = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
  if (!n) throw new CBORError(`unsupported CBOR length encoding ${info}`);
  need(r, n);
  let v = 0;
  for (let k = 0; k < n; k++) v = v * 256 + r.b[r.i + k];
  r.i += n;
  return v;
}

function half(h) {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function item(r, depth) {
  if (depth > 64) throw new CBORError('CBOR nested too deep');
  need(r, 1);
  const ib = r.b[r.i++], major = ib >> 5, info = ib & 31;
  if (major === 7) {
    if (info === 20) return false;
    if (info === 21) return true;
    if (info === 22 || info === 23) return null;
    const dv = new DataView(r.b.buffer, r.b.byteOffset);
    if (info === 25) { need(r, 2); const v = half(dv.getUint16(r.i)); r.i += 2; return v; }
    if (info === 26) { need(r, 4); const v = dv.getFloat32(r.i); r.i += 4; return v; }
    if (info === 27) { need(r, 8); const v = dv.getFloat64(r.i); r.i += 8; return v; }
    throw new CBORError(`unsupported CBOR simple value ${info}`);
  }
  if (info === 31) throw new CBORError('indefinite-length CBOR is not used here');
  const n = arg(r, info);
  switch (major) {
    case 0: return n;
    case 1: return -1 - n;
    case 2: { need(r, n); const start = r.i; r.i += n; const v = r.b.subarray(start, r.i); v.offset = start; return v; }
    case 3: { need(r, n); const s = new TextDecoder('utf-8', { fatal: true }).decode(r.b.subarray(r.i, r.i + n)); r.i += n; return s; }
    case 4: { const a = []; for (let k = 0; k < n; k++) a.push(item(r, depth + 1)); return a; }
    case 5: {
      const m = new Map();
      for (let k = 0; k < n; k++) { const key = item(r, depth + 1); m.set(key, item(r, depth + 1)); }
      return m;
    }
    case 6: return { tag: n, value: item(r, depth + 1) };
  }
  throw new CBORError('bad CBOR');
}

// head encodes a CBOR major type and length.
export function head(major, n) {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 256) return Uint8Array.of(m | 24, n);
  if (n < 65536) return Uint8Array.of(m | 25, n >> 8, n & 255);
  if (n < 2 ** 32) return Uint8Array.of(m | 26, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
  if (!Number.isSafeInteger(n)) throw new CBORError(`${n} is not an integer below 2^53`);
  const hi = Math.floor(n / 2 ** 32), lo = n >>> 0;
  return Uint8Array.of(m | 27, (hi >>> 24) & 255, (hi >>> 16) & 255, (hi >>> 8) & 255, hi & 255, (lo >>> 24) & 255, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

// bstr and tstr encode a byte string and a text string.
export const bstr = (b) => concat(head(2, b.length), b);
export const tstr = (s) => { const b = new TextEncoder().encode(s); return concat(head(3, b.length), b); };
