/**
 * Codec server for the Temporal Web UI (`--ui-codec-endpoint`) and CLI (`--codec-endpoint`): Temporal's remote codec
 * protocol over plain node:http.
 *
 *   POST /encode | /decode, or /{namespace}/encode | /{namespace}/decode (the CLI's `{namespace}` template)
 *   body and answer: {"payloads":[{"metadata":{"<key>":"<base64>"},"data":"<base64>"}]} (proto3 JSON: bytes as base64)
 *
 * Only listed browser origins get CORS headers; a request from any other Origin is refused outright, so a page on
 * another site cannot make the operator's browser decode payloads. Requests without an Origin (the CLI) are served.
 * Bodies hold patient data once decoded: nothing from a body is ever logged.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { Logger } from '../logger';
import { FmReimportError } from '../errors';

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** 0 picks a free port (tests). */
  port: number;
  /** Loopback by default: the codec server decrypts anything it is given. */
  host?: string;
  /** Browser origins allowed to call the server, for example http://localhost:8233 for `temporal server start-dev`. */
  corsOrigins: readonly string[];
  logger: Logger;
  /** Largest request body accepted. Temporal caps a payload at 2 MB; the UI sends a few at a time. */
  maxBodyBytes?: number;
}

export interface CodecServer {
  /** Base URL to give the Web UI and CLI, e.g. http://127.0.0.1:8888 */
  readonly url: string;
  close(): Promise<void>;
}

interface JsonPayload {
  metadata?: Record<string, unknown> | null;
  data?: unknown;
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_MAX_BODY = 16 * 1024 * 1024;
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

function fromBase64(value: unknown, where: string): Buffer {
  if (typeof value !== 'string' || !BASE64.test(value)) throw new BadRequest(400, `${where}: expected a base64 string`);
  return Buffer.from(value, 'base64');
}

function payloadFromJson(p: JsonPayload, i: number): Payload {
  if (p === null || typeof p !== 'object') throw new BadRequest(400, `payloads[${i}]: expected an object`);
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = fromBase64(v, `payloads[${i}].metadata.${k}`);
  let data: Buffer;
  if (p.data === undefined || p.data === null) data = Buffer.alloc(0);
  // The Web UI has been seen sending json/plain data as a JSON value rather than base64 on /encode.
  else if (typeof p.data === 'object') data = Buffer.from(JSON.stringify(p.data), 'utf8');
  else data = fromBase64(p.data, `payloads[${i}].data`);
  return { metadata, data };
}

function payloadToJson(p: Payload): { metadata: Record<string, string>; data: string } {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

function normalizeOrigin(origin: string): string {
  try {
    return new URL(origin).origin;
  } catch {
    return origin.replace(/\/+$/, '');
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BadRequest(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseRoute(pathname: string): { op: 'encode' | 'decode'; namespace?: string } | undefined {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const op = parts[parts.length - 1];
  if (op !== 'encode' && op !== 'decode') return undefined;
  if (parts.length === 1) return { op };
  if (parts.length === 2) return { op, namespace: parts[0] };
  return undefined;
}

export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServer> {
  const { codec, logger } = opts;
  const host = opts.host ?? '127.0.0.1';
  const allowed = new Set(opts.corsOrigins.map(normalizeOrigin));
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const log = logger.child({ component: 'codec-server' });

  const setCors = (res: ServerResponse, origin: string) => {
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
    // The UI's "include cross-origin credentials" switch makes the browser demand this.
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Access-Control-Max-Age', '600');
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const started = Date.now();
    const method = req.method ?? 'GET';
    const pathname = new URL(req.url ?? '/', 'http://codec.invalid').pathname;
    const originHeader = req.headers.origin;
    const origin = originHeader === undefined ? undefined : normalizeOrigin(originHeader);
    const done = (status: number, extra: Record<string, unknown> = {}) =>
      log.debug({ method, path: pathname, status, ms: Date.now() - started, ...extra }, 'codec request');
    res.setHeader('Vary', 'Origin');
    res.setHeader('Cache-Control', 'no-store');

    if (origin !== undefined) {
      if (!allowed.has(origin)) {
        log.warn({ method, path: pathname, origin }, 'codec request from an origin not in CODEC_CORS_ORIGINS refused');
        send(res, 403, { error: 'ORIGIN_NOT_ALLOWED', message: 'origin not allowed' });
        return;
      }
      setCors(res, origin);
      // Chrome's private network access check when a public UI (e.g. Temporal Cloud) calls a loopback codec server.
      if (req.headers['access-control-request-private-network'] === 'true') {
        res.setHeader('Access-Control-Allow-Private-Network', 'true');
      }
    }
    if (method === 'OPTIONS') {
      res.writeHead(204);
      res.end();
      done(204);
      return;
    }
    const route = parseRoute(pathname);
    if (!route) {
      send(res, 404, { error: 'NOT_FOUND', message: 'use POST /encode or POST /decode' });
      done(404);
      return;
    }
    if (method !== 'POST') {
      res.setHeader('Allow', 'POST, OPTIONS');
      send(res, 405, { error: 'METHOD_NOT_ALLOWED', message: 'use POST' });
      done(405);
      return;
    }
    const namespace = route.namespace ?? (req.headers['x-namespace'] as string | undefined);
    try {
      const raw = await readBody(req, maxBody);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new BadRequest(400, 'body is not JSON');
      }
      const list = (body as { payloads?: unknown } | null)?.payloads;
      if (!Array.isArray(list)) throw new BadRequest(400, 'expected {"payloads": [...]}');
      const payloads = (list as JsonPayload[]).map(payloadFromJson);
      const out = route.op === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
      send(res, 200, { payloads: out.map(payloadToJson) });
      done(200, { op: route.op, namespace, count: payloads.length });
    } catch (err) {
      if (err instanceof BadRequest) {
        send(res, err.status, { error: 'BAD_REQUEST', message: err.message });
        done(err.status, { op: route.op, namespace });
      } else if (err instanceof FmReimportError) {
        // Codec errors name a key id at most (see payload-codec.ts), so the message is safe to return and log.
        send(res, 422, { error: err.code, message: err.message });
        log.warn({ op: route.op, namespace, code: err.code, err: err.message }, 'codec request failed');
      } else {
        send(res, 500, { error: 'INTERNAL', message: 'codec failure' });
        log.error({ op: route.op, namespace, errName: (err as Error).name }, 'codec request failed unexpectedly');
      }
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ errName: (err as Error).name }, 'codec server handler crashed');
      if (!res.headersSent) send(res, 500, { error: 'INTERNAL', message: 'codec failure' });
      else res.destroy();
    });
  });
  // Slow or stuck browsers should not pin sockets forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${urlHost}:${addr.port}`;
  log.info({ url, corsOrigins: [...allowed] }, 'codec server listening');

  return {
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}

/**
 * The origins the codec server should accept: CODEC_CORS_ORIGINS when set, else the configured Temporal UI, else the
 * UI that `temporal server start-dev` serves.
 */
export function codecCorsOriginsFor(config: {
  readonly codecCorsOrigins: readonly string[];
  readonly temporal: { readonly uiUrl: string | undefined };
}): string[] {
  if (config.codecCorsOrigins.length > 0) return config.codecCorsOrigins.map(normalizeOrigin);
  if (config.temporal.uiUrl) return [normalizeOrigin(config.temporal.uiUrl)];
  return ['http://localhost:8233', 'http://127.0.0.1:8233'];
}
