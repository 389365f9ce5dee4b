/**
 * Transport: one undici Agent with keep-alive, the per-worker semaphore, and the counters every request feeds. `send`
 * reads a metadata answer whole, `open` hands a container answer over unread; both repeat an overloaded request a few
 * times after a short backoff and resend once over a keep-alive socket that was closed just as it was reused. Errors
 * leave as the typed errors of src/errors.ts, counted on their way out (`fail`).
 */
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { FileMakerError, FileMakerOverloadedError, TransferQuotaError } from '../errors';
import type { Logger } from '../logger';
import { Semaphore } from './semaphore';
import {
  FM_ERRORS,
  errorForFmCode,
  errorForStatus,
  isOverloadStatus,
  parseEnvelope,
  parseODataError,
  pathSegment,
  readJsonBody,
} from './responses';

export type RequestKind =
  | 'login'
  | 'logout'
  | 'validateSession'
  | 'productInfo'
  | 'databaseNames'
  | 'layoutMetadata'
  | 'records'
  | 'getRecord'
  | 'find'
  | 'patch'
  | 'odataPage'
  | 'odataCount'
  | 'odataValue'
  | 'container';

export interface FileMakerStats {
  /** Requests sent, by kind (each HTTP exchange counts, retries and both legs of a container handshake included). */
  readonly requests: Readonly<Partial<Record<RequestKind, number>>>;
  readonly totalRequests: number;
  /** Body bytes received from FileMaker: what the transfer quota is spent on. */
  readonly bytesReceived: { readonly metadata: number; readonly containers: number; readonly total: number };
  /** Calls repeated by this client: after a re-login, a sporadic container 401, a reset keep-alive socket. */
  readonly retries: number;
  readonly logins: number;
  /** Logins that replaced an earlier token (expired, killed by a restart, or refreshed after idling). */
  readonly relogins: number;
  /** Overloads reported to the caller (after the short repeats): HTTP 502/503/504/429 or codes 812/956. */
  readonly overloads: number;
  /** Overload answers absorbed by repeating the request after a short backoff. */
  readonly overloadsAbsorbed: number;
  /** Answers that were not the JSON they should have been (HTML pages, broken envelopes). */
  readonly badResponses: number;
  /** OData/Data API bodies that only parsed after repairing FileMaker's known JSON defects. */
  readonly repairedJson: number;
  /** Container downloads that ended with CONTAINER_URL_STALE. */
  readonly staleContainerUrls: number;
  /** OData `$value` answers refused as CONTAINER_SUSPECT (text for a file that is not text, an empty 200). */
  readonly suspectContainers: number;
  readonly inFlight: number;
  readonly peakInFlight: number;
  readonly maxConcurrency: number;
}

export interface TransportOptions {
  /** Origin of the FileMaker host, e.g. https://fm.example.com or http://127.0.0.1:1234. */
  url: string;
  /** Hosted database name; FileMaker compares it case-sensitively. */
  database: string;
  caFile?: string;
  maxConcurrency: number;
  logger: Logger;
  requestTimeoutMs?: number;
  dataApiVersion?: 'v1' | 'v2' | 'vLatest';
  overloadRetries?: number;
  overloadBackoffMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;

const DEFAULT_OVERLOAD_RETRIES = 3;

const DEFAULT_OVERLOAD_BACKOFF_MS = 50;

/** An answer that says "too busy": an overload status, or FileMaker's 812/956 in the envelope of an HTTP 500. */
function isOverloadAnswer(status: number, body: Buffer): boolean {
  if (isOverloadStatus(status)) return true;
  return status === 500 && body.length < 4096 && /"code"\s*:\s*"(812|956)"/.test(body.toString('utf8'));
}

/** Error bodies of container requests are read only this far (enough for an envelope, never a whole file). */
const MAX_ERROR_BODY = 64 * 1024;

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface SendOptions {
  method: Dispatcher.HttpMethod;
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** Safe to send again when the connection broke before an answer (a stale keep-alive socket). */
  idempotent: boolean;
  signal?: AbortSignal;
}

export interface Counters {
  requests: Partial<Record<RequestKind, number>>;
  metadataBytes: number;
  containerBytes: number;
  retries: number;
  logins: number;
  relogins: number;
  overloads: number;
  overloadsAbsorbed: number;
  badResponses: number;
  repairedJson: number;
  staleContainerUrls: number;
  suspectContainers: number;
}

export class Transport {
  readonly base: string;
  readonly dataBase: string;
  readonly odataBase: string;
  readonly database: string;
  readonly sem: Semaphore;
  readonly log: Logger;
  readonly c: Counters = {
    requests: {},
    metadataBytes: 0,
    containerBytes: 0,
    retries: 0,
    logins: 0,
    relogins: 0,
    overloads: 0,
    overloadsAbsorbed: 0,
    badResponses: 0,
    repairedJson: 0,
    staleContainerUrls: 0,
    suspectContainers: 0,
  };
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly overloadRetries: number;
  private readonly overloadBackoffMs: number;

  constructor(opts: TransportOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.database = opts.database;
    const version = opts.dataApiVersion ?? 'vLatest';
    this.dataBase = `${this.base}/fmi/data/${version}`;
    this.odataBase = `${this.base}/fmi/odata/v4/${pathSegment(opts.database)}`;
    this.sem = new Semaphore(opts.maxConcurrency);
    this.log = opts.logger.child({ component: 'filemaker' });
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.overloadRetries = opts.overloadRetries ?? DEFAULT_OVERLOAD_RETRIES;
    this.overloadBackoffMs = opts.overloadBackoffMs ?? DEFAULT_OVERLOAD_BACKOFF_MS;
    this.agent = new Agent({
      // HTTP/1.1, one request per connection, which the concurrency limit and the benchmarks assume: undici 8 would
      // otherwise take HTTP/2 whenever the server offers it and multiplex every request over one connection.
      allowH2: false,
      keepAliveTimeout: 10_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connectTimeout: Math.min(this.timeoutMs, 30_000),
      // `ca` replaces Node's trust store, so the system roots are passed along with the extra bundle.
      connect: opts.caFile !== undefined ? { ca: [...rootCertificates, readFileSync(opts.caFile, 'utf8')] } : {},
    });
  }

  /** Closes every connection. */
  close(): Promise<void> {
    return this.agent.close();
  }

  stats(): FileMakerStats {
    const requests = { ...this.c.requests };
    return {
      requests,
      totalRequests: Object.values(requests).reduce((a, b) => a + b, 0),
      bytesReceived: {
        metadata: this.c.metadataBytes,
        containers: this.c.containerBytes,
        total: this.c.metadataBytes + this.c.containerBytes,
      },
      retries: this.c.retries,
      logins: this.c.logins,
      relogins: this.c.relogins,
      overloads: this.c.overloads,
      overloadsAbsorbed: this.c.overloadsAbsorbed,
      badResponses: this.c.badResponses,
      repairedJson: this.c.repairedJson,
      staleContainerUrls: this.c.staleContainerUrls,
      suspectContainers: this.c.suspectContainers,
      inFlight: this.sem.inFlight,
      peakInFlight: this.sem.peakInFlight,
      maxConcurrency: this.sem.limit,
    };
  }

  setMaxConcurrency(n: number): void {
    this.sem.setLimit(n);
  }

  /**
   * Waits before repeating an overloaded request: 50 ms, 100 ms, 200 ms (by default), each with half of it jittered
   * so the requests that met the same burst do not come back at the same instant. The slot stays held: while FileMaker
   * is overloaded this worker sends less. FileMaker Cloud's gateway answers 502 to a handful of requests at a time;
   * a short wait rides past such a burst, and an overload that outlasts the repeats (about 350 ms) becomes the
   * workflow's durable cooldown with a halved window, which is what a sustained overload needs.
   */
  private async overloadBackoff(repeat: number, what: string, signal: AbortSignal | undefined): Promise<void> {
    this.c.overloadsAbsorbed++;
    const full = this.overloadBackoffMs * 2 ** repeat;
    const ms = full / 2 + Math.random() * (full / 2);
    this.log.debug({ what, repeat: repeat + 1, ms: Math.round(ms) }, 'FileMaker overloaded, repeating shortly');
    await delay(ms, undefined, { signal });
  }

  /** Counts an error on its way out (overloads and bad responses feed the stats the engine's throttle reads). */
  fail(err: Error, what: string): Error {
    if (err instanceof FileMakerOverloadedError) {
      this.c.overloads++;
      this.log.warn({ what, fmCode: err.fmCode, status: err.httpStatus }, 'FileMaker overloaded');
    } else if (err instanceof FileMakerError && err.code === FM_ERRORS.BAD_RESPONSE) {
      this.c.badResponses++;
      this.log.warn({ what, status: err.httpStatus }, 'FileMaker answered something that is not data');
    } else if (err instanceof TransferQuotaError) {
      this.log.error({ what }, 'FileMaker transfer quota exhausted (953)');
    }
    return err;
  }

  /** One HTTP exchange with the body read whole (metadata only; containers use `open`). */
  async send(kind: RequestKind, what: string, o: SendOptions): Promise<RawResponse> {
    const release = await this.sem.acquire(o.signal);
    let overloadRepeats = 0;
    try {
      for (let attempt = 0; ; attempt++) {
        const started = Date.now();
        this.c.requests[kind] = (this.c.requests[kind] ?? 0) + 1;
        try {
          const res = await request(o.url, {
            dispatcher: this.agent,
            method: o.method,
            headers: o.headers,
            body: o.body,
            signal: o.signal,
            headersTimeout: this.timeoutMs,
            bodyTimeout: this.timeoutMs,
          });
          const body = Buffer.from(await res.body.arrayBuffer());
          this.c.metadataBytes += body.length;
          this.log.debug({ kind, what, status: res.statusCode, bytes: body.length, ms: Date.now() - started }, 'fm');
          if (isOverloadAnswer(res.statusCode, body) && overloadRepeats < this.overloadRetries) {
            await this.overloadBackoff(overloadRepeats++, what, o.signal);
            continue;
          }
          return { status: res.statusCode, headers: res.headers, body };
        } catch (err) {
          if (isAbort(err, o.signal)) throw err;
          // A keep-alive socket closed by the server just as we reused it fails before any answer: safe to resend.
          if (o.idempotent && attempt === 0 && isResetBeforeAnswer(err)) {
            this.c.retries++;
            this.log.debug({ kind, what, err: errCode(err) }, 'connection reset, resending once');
            continue;
          }
          throw this.fail(networkError(err, what), what);
        }
      }
    } finally {
      release();
    }
  }

  /** The typed error for a non-success answer, whatever its body: OData error, Data API envelope, or neither. */
  errorFrom(res: RawResponse, what: string): Error {
    const json = readJsonBody(header(res.headers, 'content-type'), res.body);
    if (json.ok) {
      if (json.repaired) this.c.repairedJson++;
      const odataCode = parseODataError(json.value);
      if (odataCode !== undefined) return this.fail(errorForFmCode(odataCode, res.status, what), what);
      const env = parseEnvelope(json.value);
      if (env !== undefined && env.fmCode !== '0') return this.fail(errorForFmCode(env.fmCode, res.status, what), what);
    }
    if (res.status === 401) {
      return new FileMakerError(`FileMaker ${what}: HTTP 401, credentials refused`, undefined, 401, {
        code: FM_ERRORS.AUTH_FAILED,
        retryable: false,
      });
    }
    return this.fail(errorForStatus(res.status, what, json.ok ? 'no FileMaker error code' : json.why), what);
  }

  /** A successful answer's JSON, or the typed error. */
  jsonOf(res: RawResponse, what: string): unknown {
    return this.parsedJsonOf(res, what).value;
  }

  parsedJsonOf(res: RawResponse, what: string): { value: unknown; repaired: boolean } {
    if (res.status < 200 || res.status > 299) throw this.errorFrom(res, what);
    const json = readJsonBody(header(res.headers, 'content-type'), res.body);
    if (!json.ok) throw this.fail(errorForStatus(res.status, what, json.why), what);
    if (json.repaired) {
      this.c.repairedJson++;
      this.log.warn({ what }, 'FileMaker JSON had raw control characters or a bare ? value; repaired');
    }
    return json;
  }

  /** Sends a GET and returns the answer with its body unread (the caller holds the semaphore slot). */
  async open(
    kind: RequestKind,
    what: string,
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<Dispatcher.ResponseData> {
    let overloadRepeats = 0;
    for (let attempt = 0; ; attempt++) {
      this.c.requests[kind] = (this.c.requests[kind] ?? 0) + 1;
      try {
        const res = await request(url, {
          dispatcher: this.agent,
          method: 'GET',
          headers,
          signal,
          headersTimeout: this.timeoutMs,
          // Per chunk, not per body: a 1 GB container may take long, but never this long without a byte.
          bodyTimeout: this.timeoutMs,
        });
        if (isOverloadStatus(res.statusCode) && overloadRepeats < this.overloadRetries) {
          await this.drain(res.body);
          await this.overloadBackoff(overloadRepeats++, what, signal);
          continue;
        }
        return res;
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        if (attempt === 0 && isResetBeforeAnswer(err)) {
          this.c.retries++;
          continue;
        }
        throw this.fail(networkError(err, what), what);
      }
    }
  }

  async drain(body: Dispatcher.ResponseData['body']): Promise<void> {
    await this.readCapped(body);
  }

  /** Reads at most MAX_ERROR_BODY bytes of a non-success answer, counting them, and discards the rest. */
  async readCapped(body: Dispatcher.ResponseData['body']): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const chunk of body) {
        const b = chunk as Buffer;
        this.c.containerBytes += b.length;
        if (n < MAX_ERROR_BODY) chunks.push(b);
        n += b.length;
        if (n >= MAX_ERROR_BODY) {
          body.destroy();
          break;
        }
      }
    } catch {
      // An error page that breaks off is still an error page.
    }
    return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY);
  }
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function errCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.cause?.code === 'string') return e.cause.code;
  return err instanceof Error ? err.name : undefined;
}

export function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return true;
  const code = errCode(err);
  return code === 'UND_ERR_ABORTED' || code === 'AbortError' || (err instanceof Error && err.name === 'AbortError');
}

export function isResetBeforeAnswer(err: unknown): boolean {
  const code = errCode(err);
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET';
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A transport failure as a typed error; the message names the error code, never a URL path or header. */
export function networkError(err: unknown, what: string): Error {
  const code = errCode(err) ?? 'unknown';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new FileMakerError(`FileMaker ${what}: timed out (${code})`, undefined, undefined, {
      code: FM_ERRORS.TIMEOUT,
      retryable: true,
    });
  }
  if (TLS_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('CERT_')) {
    return new FileMakerError(`FileMaker ${what}: TLS certificate not accepted (${code})`, undefined, undefined, {
      code: FM_ERRORS.TLS,
      retryable: false,
    });
  }
  return new FileMakerError(`FileMaker ${what}: connection failed (${code})`, undefined, undefined, {
    code: FM_ERRORS.UNREACHABLE,
    retryable: true,
  });
}
