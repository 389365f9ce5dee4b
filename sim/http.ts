// Writing answers: every body goes through here so bandwidth caps, the byte quota and the counters see all of it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimContext } from './context';
import type { Api } from './faults';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const SLICE = 64 * 1024;

function throttled(ctx: SimContext): boolean {
  return ctx.settings.bandwidthTotalBps > 0 || ctx.settings.bandwidthPerConnectionBps > 0;
}

async function pace(ctx: SimContext, res: ServerResponse, n: number): Promise<void> {
  const wait = Math.max(ctx.faults.total.take(n), ctx.connBucket(res.socket!).take(n));
  if (wait > 0) {
    ctx.faults.count('bandwidth_wait');
    await sleep(wait);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Streams `chunks` after the head has been written. `limit` stops early (a broken container's truncated body) and
 * then destroys the socket so the client sees a premature close, not a clean end.
 */
export async function writeBody(
  ctx: SimContext,
  res: ServerResponse,
  api: Api,
  chunks: Iterable<Buffer>,
  limit = Infinity,
): Promise<void> {
  let sent = 0;
  const slow = throttled(ctx);
  for (let chunk of chunks) {
    if (res.destroyed) return;
    if (sent + chunk.length > limit) chunk = chunk.subarray(0, Math.max(0, limit - sent));
    for (let off = 0; off < chunk.length; off += slow ? SLICE : chunk.length) {
      const piece = slow ? chunk.subarray(off, off + SLICE) : chunk;
      if (slow) await pace(ctx, res, piece.length);
      if (res.destroyed) return;
      ctx.account(api, piece.length);
      sent += piece.length;
      if (!res.write(piece)) await drained(res);
    }
    if (sent >= limit) {
      res.socket?.destroy();
      res.destroy();
      return;
    }
  }
  res.end();
}

export function send(
  ctx: SimContext,
  res: ServerResponse,
  api: Api,
  status: number,
  contentType: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void | Promise<void> {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(buf.length), ...headers });
  if (!throttled(ctx)) {
    ctx.account(api, buf.length);
    res.end(buf);
    return;
  }
  return writeBody(ctx, res, api, [buf]);
}

export function sendJson(
  ctx: SimContext,
  res: ServerResponse,
  api: Api,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void | Promise<void> {
  return send(ctx, res, api, status, 'application/json; charset=utf-8', JSON.stringify(body), headers);
}

const REASONS: Record<number, string> = {
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** What the web server in front of a dead or overloaded FileMaker engine answers: HTML, never the JSON envelope. */
export function htmlError(status: number): string {
  const reason = REASONS[status] ?? 'Error';
  return `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n<center><h1>${status} ${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
}

export const HTML_200_PAGE =
  '<!DOCTYPE html><html><head><title>FileMaker Server</title></head><body><h1>FileMaker Server</h1>' +
  '<p>The FileMaker Data API engine is not running. Contact your administrator.</p></body></html>';

export async function readBody(req: IncomingMessage, max = 16 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
