/**
 * The two S3 requests the files phases make per file — PutObject of a body already in memory, and HeadObject — sent
 * directly over undici and signed with AWS's own SigV4 signer (@smithy/signature-v4). Everything else (multipart,
 * copy, delete, list, get) stays on the SDK client.
 *
 * Why: at the clinic's file counts a files phase makes tens of thousands of these requests, and the SDK's middleware
 * stack (endpoint rules, schema serde, retry bookkeeping) cost the worker more CPU per request than the upload itself
 * — about a sixth of the worker's busy time in the benchmark's profile, on the event loop every file goes through.
 *
 * Credentials, region, endpoint and path style are the SDK client's own (its resolved configuration), so both paths
 * always talk to the same store as the same identity. The payload is signed with the SHA-256 the caller computed
 * anyway, and the same hash goes as `x-amz-checksum-sha256`, which S3 verifies and echoes.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { setTimeout as delay } from 'node:timers/promises';
import { errors as undiciErrors, type Agent, type Dispatcher } from 'undici';
import { S3RequestError } from '../errors';
import { ERROR_CODES } from '../error-codes';
import { tlsUndiciAgent } from '../tls';

export interface WirePut {
  bucket: string;
  key: string;
  body: Buffer;
  /** Hex SHA-256 of `body`: signs the payload and goes as the checksum S3 verifies. */
  sha256: string;
  contentType: string;
  contentDisposition?: string;
  /** `x-amz-meta-*` (names lower-case ASCII, values ASCII). */
  metadata?: Record<string, string>;
}

export interface WireHead {
  size: number;
  contentType: string | undefined;
  contentDisposition: string | undefined;
  metadata: Record<string, string>;
  /** S3's checksum as it reports it (base64; a multipart one ends in "-N"). */
  checksumSha256: string | undefined;
  /** The ETag without its quotes. */
  etag: string | undefined;
}

interface Origin {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number | undefined;
  pathStyle: boolean;
}

const BODY_LIMIT = 64 * 1024;

/** RFC 3986 escaping of each segment of a key, as S3's canonical request has it (slashes kept). */
export function escapeKey(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

function header(h: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readCapped(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    if (n < BODY_LIMIT) chunks.push(b);
    n += b.length;
  }
  return Buffer.concat(chunks).subarray(0, BODY_LIMIT).toString('utf8');
}

/** `<Code>` of an S3 error document; the message is left out (it can echo the key, which names a patient's file). */
function s3Code(xml: string): string | undefined {
  return /<Code>([A-Za-z0-9.]{1,64})<\/Code>/.exec(xml)?.[1];
}

export class S3Wire {
  private static readonly byClient = new WeakMap<S3Client, S3Wire>();
  private static readonly caOf = new WeakMap<S3Client, string>();

  private origin?: Promise<Origin>;
  private readonly signer: SignatureV4;
  private readonly agent: Agent;

  private constructor(
    private readonly s3: S3Client,
    caFile: string | undefined,
  ) {
    const cfg = s3.config;
    this.signer = new SignatureV4({
      credentials: cfg.credentials,
      region: cfg.region,
      service: 's3',
      sha256: cfg.sha256,
      // S3 signs the path as sent: no second round of escaping.
      uriEscapePath: false,
      applyChecksum: false,
    });
    this.agent = tlsUndiciAgent({
      caFile,
      caSetting: 'S3_CA_FILE',
      connectTimeoutMs: 10_000,
      agent: { keepAliveTimeout: 4_000, connections: 64 },
    });
  }

  /** Remembers the CA bundle an S3 client was built with, for the wire that goes with it. */
  static trustFor(s3: S3Client, caFile: string | undefined): void {
    if (caFile !== undefined) S3Wire.caOf.set(s3, caFile);
  }

  /** The wire that goes with an SDK client (one per client). */
  static for(s3: S3Client): S3Wire {
    let w = S3Wire.byClient.get(s3);
    if (!w) {
      w = new S3Wire(s3, S3Wire.caOf.get(s3));
      S3Wire.byClient.set(s3, w);
    }
    return w;
  }

  private resolveOrigin(): Promise<Origin> {
    this.origin ??= (async () => {
      const cfg = this.s3.config;
      const pathStyle = cfg.forcePathStyle === true;
      if (cfg.endpoint) {
        const e = await cfg.endpoint();
        return {
          protocol: e.protocol === 'http:' ? 'http:' : 'https:',
          hostname: e.hostname,
          port: e.port,
          pathStyle,
        };
      }
      const region = await cfg.region();
      return { protocol: 'https:', hostname: `s3.${region}.amazonaws.com`, port: undefined, pathStyle };
    })();
    return this.origin;
  }

  private async send(
    method: 'PUT' | 'HEAD',
    bucket: string,
    key: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    what: string,
  ): Promise<Dispatcher.ResponseData> {
    const o = await this.resolveOrigin();
    // Virtual-hosted style unless asked otherwise or the bucket cannot be a host label (dots break TLS names).
    const virtual = !o.pathStyle && /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
    const hostname = virtual ? `${bucket}.${o.hostname}` : o.hostname;
    const path = virtual ? `/${escapeKey(key)}` : `/${encodeURIComponent(bucket)}/${escapeKey(key)}`;
    const host = o.port !== undefined ? `${hostname}:${o.port}` : hostname;
    const maxAttempts = Math.max(1, await this.s3.config.maxAttempts());
    for (let attempt = 1; ; attempt++) {
      const signed = await this.signer.sign({
        method,
        protocol: o.protocol,
        hostname,
        port: o.port,
        path,
        query: {},
        headers: { ...headers, host },
        body,
      });
      const answer = await this.attempt(method, o.protocol, host, path, signed.headers, body, what);
      if (!(answer instanceof S3RequestError)) return answer;
      if (!answer.retryable || attempt >= maxAttempts) throw answer;
      // The SDK's backoff: full jitter over an exponentially growing window, capped at 20 s.
      await delay(Math.random() * Math.min(20_000, 100 * 2 ** attempt));
    }
  }

  /** One request: the answer when it is a success (or a HEAD's 404), else the error it amounts to. */
  private async attempt(
    method: 'PUT' | 'HEAD',
    protocol: string,
    host: string,
    path: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    what: string,
  ): Promise<Dispatcher.ResponseData | S3RequestError> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.agent.request({
        origin: `${protocol}//${host}`,
        method,
        path,
        headers,
        body,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
        // undici closes the connection after every HEAD (for servers that send a body anyway), unless told not to:
        // S3 does not, and a reconciliation of tens of thousands of HEADs would otherwise open as many connections.
        ...(method === 'HEAD' ? { reset: false } : {}),
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const why =
        typeof code === 'string' ? code : err instanceof undiciErrors.UndiciError ? err.name : 'network error';
      return new S3RequestError(`S3 ${what} failed: ${why}`, ERROR_CODES.S3_UNREACHABLE, undefined);
    }
    if (res.statusCode < 300 || (method === 'HEAD' && res.statusCode === 404)) return res;
    const text = method === 'HEAD' ? (res.body.resume(), '') : await readCapped(res.body).catch(() => '');
    const code = s3Code(text) ?? `HTTP_${res.statusCode}`;
    return new S3RequestError(`S3 ${what} answered ${res.statusCode} ${code}`, code, res.statusCode);
  }

  /**
   * One PutObject of a body in memory. `confirmed`: S3 echoed the SHA-256 it verified the body against (a store
   * that does not echo it needs a HEAD to confirm the object).
   */
  async put(p: WirePut): Promise<{ confirmed: boolean; etag: string | undefined }> {
    const checksum = Buffer.from(p.sha256, 'hex').toString('base64');
    const headers: Record<string, string> = {
      'content-type': p.contentType,
      'content-length': String(p.body.length),
      'x-amz-content-sha256': p.sha256,
      'x-amz-checksum-sha256': checksum,
    };
    if (p.contentDisposition !== undefined) headers['content-disposition'] = p.contentDisposition;
    for (const [k, v] of Object.entries(p.metadata ?? {})) headers[`x-amz-meta-${k}`] = v;
    const res = await this.send('PUT', p.bucket, p.key, headers, p.body, 'upload');
    res.body.resume();
    return {
      confirmed: header(res.headers, 'x-amz-checksum-sha256') === checksum,
      etag: unquoteEtag(header(res.headers, 'etag')),
    };
  }

  /** HeadObject with checksum mode on; undefined when there is no object at the key. */
  async head(bucket: string, key: string): Promise<WireHead | undefined> {
    const res = await this.send(
      'HEAD',
      bucket,
      key,
      { 'x-amz-checksum-mode': 'ENABLED', 'x-amz-content-sha256': EMPTY_SHA256 },
      undefined,
      'object check',
    );
    res.body.resume();
    if (res.statusCode === 404) return undefined;
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) {
      if (k.startsWith('x-amz-meta-') && v !== undefined) metadata[k.slice(11)] = Array.isArray(v) ? v[0]! : v;
    }
    const len = header(res.headers, 'content-length');
    return {
      size: len !== undefined && /^\d+$/.test(len) ? Number(len) : 0,
      contentType: header(res.headers, 'content-type'),
      contentDisposition: header(res.headers, 'content-disposition'),
      metadata,
      checksumSha256: header(res.headers, 'x-amz-checksum-sha256'),
      etag: unquoteEtag(header(res.headers, 'etag')),
    };
  }
}

/** An ETag as S3 sends it (`"…"`, or `W/"…"`) without the quotes, so a listing's and a HEAD's compare equal. */
export function unquoteEtag(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
