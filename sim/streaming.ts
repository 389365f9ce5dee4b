// Container URLs and the FileMaker Server 19.3+ authenticated-stream handshake. URLs are self-describing (an
// encrypted, MAC'd record pointer plus issue time) so issuing millions of them costs no memory; a restart rotates the
// secret and thereby kills every URL and cookie, as on a real server.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimContext } from './context';
import { CONTENT_TYPES, containerChunks, contentDisposition, servedContentType } from './containers';
import type { SimRecord, SimTable } from './dataset';
import { htmlError, send, sendJson, writeBody } from './http';
import { hash32 } from './prng';

const DECI = 100;

/**
 * Folder of a container's URL: `MainDB` for embedded files, `Additional_1` for the share `externalContainerRate`
 * stores externally, chosen per record and field so a container keeps its folder from one read to the next.
 */
function folder(ctx: SimContext, table: SimTable, rec: SimRecord, field: string): string {
  const rate = ctx.settings.externalContainerRate;
  const external = rate > 0 && hash32(ctx.config.seed, 'external', table.def.name, rec.index, field) / 2 ** 32 < rate;
  return external ? 'Additional_1' : 'MainDB';
}

/** A replaced container's URL names its revision, so a URL from before the replacement no longer serves. */
const revOf = (rec: SimRecord, field: string): string[] => {
  const rev = rec.containers[field]?.rev;
  return rev ? [String(rev)] : [];
};

export function containerUrl(ctx: SimContext, origin: string, table: SimTable, rec: SimRecord, field: string): string {
  const info = rec.containers[field];
  if (!info || info.state === 'empty') return '';
  const fieldIdx = table.def.fields.findIndex((f) => f.name === field);
  const payload = Buffer.alloc(10);
  payload.writeUInt8(table.index, 0);
  payload.writeUInt32BE(rec.index, 1);
  payload.writeUInt8(fieldIdx, 5);
  payload.writeUInt32BE(Math.floor((Date.now() - ctx.t0) / DECI), 6);
  const mac = ctx.hmac('url', payload, ...revOf(rec, field)).subarray(0, 22);
  const ks = ctx.hmac('ks', mac);
  for (let i = 0; i < 10; i++) payload[i] = payload[i]! ^ ks[i]!;
  const hex = Buffer.concat([mac, payload]).toString('hex').toUpperCase();
  const ext = info.urlExt ? `.${info.declaredKind ?? info.kind}` : '';
  return `${origin}/Streaming_SSL/${folder(ctx, table, rec, field)}/${hex}${ext}?RCType=EmbeddedRCFileProcessor`;
}

interface Decoded {
  table: SimTable;
  rec: SimRecord;
  field: string;
  issuedAt: number;
}

function decode(ctx: SimContext, hex: string): Decoded | null {
  if (!/^[0-9A-Fa-f]{64}$/.test(hex)) return null;
  const bytes = Buffer.from(hex, 'hex');
  const mac = bytes.subarray(0, 22);
  const ks = ctx.hmac('ks', mac);
  const payload = Buffer.from(bytes.subarray(22));
  for (let i = 0; i < 10; i++) payload[i] = payload[i]! ^ ks[i]!;
  const table = ctx.ds.tableList[payload.readUInt8(0)];
  const rec = table?.at(payload.readUInt32BE(1));
  const field = table?.def.fields[payload.readUInt8(5)]?.name;
  if (!table || !rec || !field) return null;
  if (
    !ctx
      .hmac('url', payload, ...revOf(rec, field))
      .subarray(0, 22)
      .equals(mac)
  )
    return null;
  return { table, rec, field, issuedAt: ctx.t0 + payload.readUInt32BE(6) * DECI };
}

function cookieFor(ctx: SimContext, hex: string): string {
  const issued = Math.floor((Date.now() - ctx.t0) / DECI).toString(16);
  return `${issued}.${ctx.hmac('cookie', hex, issued).subarray(0, 16).toString('hex')}`;
}

function cookieValid(ctx: SimContext, hex: string, cookie: string | undefined): boolean {
  if (!cookie) return false;
  const [issued, mac] = cookie.split('.');
  if (!issued || !mac) return false;
  if (ctx.hmac('cookie', hex, issued).subarray(0, 16).toString('hex') !== mac) return false;
  return Date.now() - (ctx.t0 + parseInt(issued, 16) * DECI) <= Math.max(ctx.settings.containerUrlTtlMs, 60_000);
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

export async function handleStreaming(
  ctx: SimContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const m = /^\/Streaming_SSL\/(MainDB|Additional_1)\/([0-9A-Fa-f]+)(\.[A-Za-z0-9]+)?$/.exec(url.pathname);
  const text = 'text/html; charset=utf-8';
  if (!m || req.method !== 'GET' || url.searchParams.get('RCType') !== 'EmbeddedRCFileProcessor') {
    return send(ctx, res, 'container', 404, text, '<html><body><h1>404 Not Found</h1></body></html>');
  }
  const hex = m[2]!;
  const found = decode(ctx, hex);
  if (!found || Date.now() - found.issuedAt > ctx.settings.containerUrlTtlMs) {
    ctx.faults.count('container_url_expired');
    const status = ctx.settings.expiredUrlStatus;
    return send(ctx, res, 'container', status, text, `<html><body><h1>${status}</h1></body></html>`);
  }
  if (ctx.quotaExceeded()) {
    ctx.faults.count('quota_953');
    return sendJson(ctx, res, 'container', 500, {
      messages: [{ code: '953', message: 'Exceeded limit on data the FileMaker Data API can transmit' }],
      response: {},
    });
  }
  const cookie = readCookie(req, 'X-FMS-Session-Key');
  const followed = url.searchParams.has('Redirect');
  if (ctx.settings.dataApiContainerHandshake && !cookieValid(ctx, hex, cookie)) {
    if (followed) {
      return send(ctx, res, 'container', 401, text, '<html><body><h1>401 Unauthorized</h1></body></html>');
    }
    const location = `${url.pathname}?RCType=EmbeddedRCFileProcessor&Redirect=1`;
    return send(ctx, res, 'container', 302, text, '', {
      Location: location,
      'Set-Cookie': `X-FMS-Session-Key=${cookieFor(ctx, hex)}; Path=/; HttpOnly`,
    });
  }
  const s = ctx.settings;
  if (
    s.container401Rate > 0 &&
    ctx.containerInFlight >= s.container401MinConcurrent &&
    ctx.faults.rng.chance(s.container401Rate)
  ) {
    ctx.faults.count('container_401');
    return send(ctx, res, 'container', 401, text, '<html><body><h1>401 Unauthorized</h1></body></html>');
  }
  const { table, rec, field } = found;
  const info = rec.containers[field]!;
  const key = { seed: ctx.config.seed, table: table.def.name, recordIndex: rec.index, field };
  if (info.state === 'broken' && info.brokenMode === 'http500') {
    ctx.faults.count('container_broken');
    return send(ctx, res, 'container', 500, text, htmlError(500));
  }
  res.writeHead(200, {
    'Content-Type': servedContentType(info),
    'Content-Length': String(info.size),
    ...(s.containerDisposition ? { 'Content-Disposition': contentDisposition(info.filename) } : {}),
    'Cache-Control': 'no-cache',
  });
  ctx.containerInFlight++;
  try {
    if (info.state === 'broken') {
      ctx.faults.count('container_broken');
      // Dies part-way, at the same byte every time, like a damaged file on the server.
      await writeBody(ctx, res, 'container', containerChunks(key, info), Math.floor(info.size * 0.6));
    } else {
      await writeBody(ctx, res, 'container', containerChunks(key, info));
    }
  } finally {
    ctx.containerInFlight--;
  }
}

export { CONTENT_TYPES };
