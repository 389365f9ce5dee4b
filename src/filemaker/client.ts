/**
 * The FileMaker client the activities use: Data API (records, finds, writes, layout metadata), OData (manifests,
 * counts, containers by key) and container downloads, over one undici Agent with keep-alive.
 *
 * Guarantees the rest of the engine builds on:
 * - One Data API token per process. Concurrent callers wait on one in-flight login (a login per request exhausts the
 *   host: 812/956). The token is replaced before FileMaker's 15-minute idle expiry; on 952 (or HTTP 401) the token is
 *   dropped, a fresh login happens and the call is retried exactly once.
 * - Every request holds a slot of a per-worker semaphore; container downloads hold theirs until the stream ends.
 * - Bodies that are not JSON (the HTML pages of the web server in front of a busy engine) are never parsed as data.
 * - Typed errors (src/errors.ts) with FileMaker code and HTTP status; never a body, a token or a cookie in a message.
 * - Bytes received are counted as they arrive, for the transfer-quota accounting.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { type Readable, Transform, pipeline } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { FileMakerError, FileMakerOverloadedError, TransferQuotaError } from '../errors';
import type { Logger } from '../logger';
import type { ClarisIdTokenSource } from './claris-id';
import { parseContentDisposition } from './content-disposition';
import { Semaphore, type Release } from './semaphore';
import {
  FM_ERRORS,
  type FileMakerRecord,
  type ODataKey,
  errorForFmCode,
  errorForStatus,
  exactFindValue,
  isObject,
  isOverloadStatus,
  odataFieldName,
  odataKey,
  odataString,
  parseDataInfo,
  parseEnvelope,
  parseODataError,
  parseODataPage,
  parseRecords,
  pathSegment,
  readJsonBody,
  suspectContainerAnswer,
} from './responses';

export interface FileMakerClientOptions {
  /** Origin of the FileMaker host, e.g. https://fm.example.com or http://127.0.0.1:1234. */
  url: string;
  /** Hosted database name; FileMaker compares it case-sensitively. */
  database: string;
  /** Basic auth; unused when `clarisId` is set. */
  username: string;
  password: string;
  /**
   * FileMaker Cloud: Claris ID tokens instead of a user and password. The Data API logs in and OData authenticates
   * every request with `Authorization: FMID <token>`; a 401 fetches a fresh token and repeats the call once.
   */
  clarisId?: ClarisIdTokenSource;
  /** Extra CA bundle (PEM) trusted in addition to the system roots; certificate verification is always on. */
  caFile?: string;
  /** Per-worker cap on requests in flight to FileMaker. */
  maxConcurrency: number;
  logger: Logger;
  /** Re-login after this much idle time, before FileMaker's 15-minute sliding expiry. Default 14 minutes. */
  idleRefreshMs?: number;
  /** Headers timeout and body idle timeout per request. Default 120 s. */
  requestTimeoutMs?: number;
  /** Data API version path segment. Default `vLatest`. */
  dataApiVersion?: 'v1' | 'v2' | 'vLatest';
  /**
   * Overload answers (502/503/504/429, code 812) repeated with a short jittered backoff before they are reported as
   * FileMakerOverloadedError: a burst of a few answers costs a fraction of a second instead of a durable cooldown.
   * Default 3; 0 reports the first one.
   */
  overloadRetries?: number;
  /** First backoff before repeating an overloaded request; doubles per repeat. Default 50 ms. */
  overloadBackoffMs?: number;
}

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

export interface LayoutField {
  readonly name: string;
  /** `normal`, `calculation`, `summary`, ... as FileMaker reports it. */
  readonly type: string | undefined;
  /** `text`, `number`, `date`, `time`, `timeStamp`, `container`. */
  readonly result: string | undefined;
}

export interface LayoutMetadata {
  readonly fields: readonly LayoutField[];
  /** Portal object name → field names (`Table::Field`). */
  readonly portals: Readonly<Record<string, readonly string[]>>;
}

export interface ManifestEntry {
  /** The record's primary key as text; null when the record has no id (then fetch it by `rowId`). */
  readonly id: string | null;
  /** OData ROWID: equals the Data API `recordId` (Get(RecordID)). Undefined if the server cannot select ROWID. */
  readonly rowId: string | undefined;
  /** OData ROWMODID: equals the Data API `modId`. */
  readonly rowModId: string | undefined;
  /** The values of `ManifestOptions.fields` (absent when none were asked for). */
  readonly fields?: Readonly<Record<string, unknown>>;
}

export interface ManifestOptions {
  idField?: string;
  /** Rows per request (FileMaker caps a response at 10,000 and links the rest). Default 10,000. */
  pageSize?: number;
  /**
   * Sort and paging key: each page asks for the rows after the last one read (`$filter=ROWID gt n`), never for an
   * offset, so records deleted or added while paging cannot hide a live one. ROWID (default) is unique and grows with
   * every new record; falls back to `idField` (`"id" gt '…'`) if the server cannot select, sort or filter by ROWID.
   * By id, records without an id are read only on the first page (the count cross-check sees any beyond it).
   */
  orderBy?: 'ROWID' | 'id';
  /** Further (non-container) fields to read with each id, e.g. a key another source uses. */
  fields?: readonly string[];
  signal?: AbortSignal;
}

export interface FindOptions {
  /** Ids per `_find` (at most 100). */
  chunkSize?: number;
  /** Portals to return with their row limit (the Data API returns 50 portal rows unless told otherwise). */
  portals?: Readonly<Record<string, number>>;
  /** 0 US (default), 1 file locale, 2 ISO 8601. */
  dateFormats?: 0 | 1 | 2;
  signal?: AbortSignal;
}

export interface ContainerDownload {
  /**
   * The bytes as a stream. Consume or destroy it: the concurrency slot is held until the last byte has been received
   * (see `readAheadBytes`) or the stream errors.
   */
  readonly body: Readable;
  /**
   * Bytes of the body read off the connection so far, including those not yet read by the caller: what FileMaker
   * has sent, and what a transfer quota must count when the caller gives up part way.
   */
  readonly received: () => number;
  readonly contentType: string | undefined;
  readonly contentLength: number | undefined;
  /** From Content-Disposition (`filename*` preferred); the container URL itself never carries the name. */
  readonly filename: string | undefined;
  readonly status: number;
}

export interface RecordContainerDownload extends ContainerDownload {
  /** The record as read right before the download (its modId is what a later write-back should send). */
  readonly record: FileMakerRecord;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /**
   * Bytes read off the connection as they arrive, before the caller reads them (default: Node's stream buffer,
   * 16 KiB). A container that fits is received whole and its concurrency slot freed at once, however long the caller
   * takes to start reading; the caller must be ready to hold (and, for a transfer quota, to count) that much.
   */
  readAheadBytes?: number;
}

export interface FileMakerClient {
  /** `GET /fmi/data/vLatest/productInfo` (no session): version, date and time formats. */
  productInfo(): Promise<Record<string, unknown>>;
  /** Databases this account can see (Basic auth, no session). */
  databaseNames(): Promise<string[]>;
  /** True when the current token is still accepted; does not log in. */
  validateSession(): Promise<boolean>;
  /** Ends the Data API session (if any). The client stays usable: the next call logs in again. */
  logout(): Promise<void>;
  /** Logs out and closes all connections. */
  close(): Promise<void>;
  layoutMetadata(layout: string): Promise<LayoutMetadata>;
  /** Field names on a layout, for the pre-flight check. */
  layoutFields(layout: string): Promise<string[]>;
  /** `dataInfo.totalRecordCount` of a layout's table, for the manifest cross-check. */
  layoutTotalCount(layout: string): Promise<number>;
  /** Every record id of a table over OData, in a stable order, paged by key (see ManifestOptions.orderBy). */
  manifest(table: string, opts?: ManifestOptions): AsyncGenerator<ManifestEntry, void, undefined>;
  /** `/{table}/$count` over OData. */
  count(table: string, opts?: { signal?: AbortSignal }): Promise<number>;
  /** The records with these ids (exact, case-insensitive match on `idField`); ids without a record are absent. */
  findByIds(layout: string, idField: string, ids: readonly string[], opts?: FindOptions): Promise<FileMakerRecord[]>;
  getRecord(layout: string, recordId: string, opts?: { signal?: AbortSignal }): Promise<FileMakerRecord>;
  /** Changes the named fields; with `modId`, fails with FILEMAKER_MODID_MISMATCH if the record changed. Returns the new modId. */
  patchRecord(layout: string, recordId: string, fieldData: Record<string, unknown>, modId?: string): Promise<string>;
  /** A container URL from `fieldData`, with FileMaker's 302 + cookie handshake; streamed, never buffered. */
  downloadContainer(url: string, opts?: DownloadOptions): Promise<ContainerDownload>;
  /**
   * One container over OData in one request: `/{table}({key})/{field}/$value`, the key a primary key value or
   * `{ rowId }` (the Data API recordId, FileMaker's ROWID alternate key). An empty container answers 204 with no bytes.
   * A 2xx answer that cannot be the container (text for a file that is not text by its name, an empty 200) fails with
   * CONTAINER_SUSPECT before any byte reaches the caller; a body shorter than its Content-Length fails the stream.
   */
  downloadODataContainer(
    table: string,
    id: ODataKey,
    field: string,
    opts?: DownloadOptions,
  ): Promise<ContainerDownload>;
  /**
   * Reads the record and downloads one of its containers right away, reading the record again (at most
   * `staleRetries` times, default 2) when the URL has gone stale in between. Resolves null for an empty container.
   */
  downloadRecordContainer(
    layout: string,
    recordId: string,
    field: string,
    opts?: DownloadOptions & { staleRetries?: number },
  ): Promise<RecordContainerDownload | null>;
  stats(): FileMakerStats;
  /** Changes the per-worker concurrency cap while running. */
  setMaxConcurrency(n: number): void;
}

export { FM_ERRORS, isFileMakerError, type FileMakerErrorCode, type FileMakerRecord } from './responses';

const DEFAULT_IDLE_REFRESH_MS = 14 * 60_000;
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
const ODATA_MAX_PAGE = 10_000;
const FIND_MAX_CHUNK = 100;

export function createFileMakerClient(opts: FileMakerClientOptions): FileMakerClient {
  return new Client(opts);
}

interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface SendOptions {
  method: Dispatcher.HttpMethod;
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** Safe to send again when the connection broke before an answer (a stale keep-alive socket). */
  idempotent: boolean;
  signal?: AbortSignal;
}

interface Counters {
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

class Client implements FileMakerClient {
  private readonly base: string;
  private readonly dataBase: string;
  private readonly odataBase: string;
  private readonly agent: Agent;
  private readonly sem: Semaphore;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly idleRefreshMs: number;
  private readonly overloadRetries: number;
  private readonly overloadBackoffMs: number;
  private readonly basicAuth: string;
  private readonly fmid: ClarisIdTokenSource | undefined;
  private readonly c: Counters = {
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

  // Session state: one token for the whole process.
  private token: string | undefined;
  private tokenUsedAt = 0;
  private loginInFlight: Promise<string> | undefined;
  private hadToken = false;
  /** Fire-and-forget logouts of replaced tokens; awaited by close() so nothing outlives the client. */
  private readonly background = new Set<Promise<void>>();

  constructor(private readonly opts: FileMakerClientOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    const version = opts.dataApiVersion ?? 'vLatest';
    this.dataBase = `${this.base}/fmi/data/${version}`;
    this.odataBase = `${this.base}/fmi/odata/v4/${pathSegment(opts.database)}`;
    this.sem = new Semaphore(opts.maxConcurrency);
    this.log = opts.logger.child({ component: 'filemaker' });
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.idleRefreshMs = opts.idleRefreshMs ?? DEFAULT_IDLE_REFRESH_MS;
    this.overloadRetries = opts.overloadRetries ?? DEFAULT_OVERLOAD_RETRIES;
    this.overloadBackoffMs = opts.overloadBackoffMs ?? DEFAULT_OVERLOAD_BACKOFF_MS;
    this.fmid = opts.clarisId;
    this.basicAuth = `Basic ${Buffer.from(`${opts.username}:${opts.password}`, 'utf8').toString('base64')}`;
    this.agent = new Agent({
      keepAliveTimeout: 10_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connectTimeout: Math.min(this.timeoutMs, 30_000),
      // `ca` replaces Node's trust store, so the system roots are passed along with the extra bundle.
      connect: opts.caFile !== undefined ? { ca: [...rootCertificates, readFileSync(opts.caFile, 'utf8')] } : {},
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Accounting

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
  private fail(err: Error, what: string): Error {
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

  // ---------------------------------------------------------------------------------------------------------------
  // Transport

  /** One HTTP exchange with the body read whole (metadata only; containers use `openStream`). */
  private async send(kind: RequestKind, what: string, o: SendOptions): Promise<RawResponse> {
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
  private errorFrom(res: RawResponse, what: string): Error {
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
  private jsonOf(res: RawResponse, what: string): unknown {
    return this.parsedJsonOf(res, what).value;
  }

  private parsedJsonOf(res: RawResponse, what: string): { value: unknown; repaired: boolean } {
    if (res.status < 200 || res.status > 299) throw this.errorFrom(res, what);
    const json = readJsonBody(header(res.headers, 'content-type'), res.body);
    if (!json.ok) throw this.fail(errorForStatus(res.status, what, json.why), what);
    if (json.repaired) {
      this.c.repairedJson++;
      this.log.warn({ what }, 'FileMaker JSON had raw control characters or a bare ? value; repaired');
    }
    return json;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Session

  /** The Authorization header for a login or an OData request: Basic, or FMID with a Claris ID token. */
  private async authHeader(): Promise<string> {
    return this.fmid !== undefined ? `FMID ${await this.fmid.token()}` : this.basicAuth;
  }

  /**
   * Runs `call` with the Authorization header. With Claris ID, an answer `call` calls refused (HTTP 401: the token
   * expired or was revoked) fetches a fresh token and runs it once more; Basic credentials are not worth a repeat.
   */
  private async authorized<T>(what: string, call: (authorization: string) => Promise<{ res: T; refused: boolean }>) {
    const authorization = await this.authHeader();
    const first = await call(authorization);
    if (!first.refused || this.fmid === undefined) return first.res;
    this.c.retries++;
    this.log.info({ what }, 'Claris ID token refused, fetching a fresh one and repeating once');
    const token = await this.fmid.refresh(authorization.slice('FMID '.length));
    return (await call(`FMID ${token}`)).res;
  }

  private async getToken(): Promise<string> {
    if (this.loginInFlight) return this.loginInFlight;
    if (this.token !== undefined) {
      if (Date.now() - this.tokenUsedAt < this.idleRefreshMs) return this.token;
      // Idle for close to FileMaker's 15 minutes: replace the token before it dies under a call, and hand the old
      // session back so it does not count against the host's session cap until it expires.
      const old = this.token;
      this.token = undefined;
      this.log.info('Data API session idle, logging in again');
      this.track(this.quietLogout(old));
    }
    // Not tied to the caller's signal: other callers wait on this same login.
    const login = this.login().finally(() => {
      this.loginInFlight = undefined;
    });
    this.loginInFlight = login;
    return login;
  }

  private async login(): Promise<string> {
    const what = `login to database "${this.opts.database}"`;
    const res = await this.authorized(what, async (authorization) => {
      const r = await this.send('login', what, {
        method: 'POST',
        url: `${this.dataBase}/databases/${pathSegment(this.opts.database)}/sessions`,
        headers: { authorization, 'content-type': 'application/json', accept: 'application/json' },
        body: '{}',
        idempotent: false,
      });
      return { res: r, refused: r.status === 401 };
    });
    if (res.status < 200 || res.status > 299) throw this.errorFrom(res, what);
    const json = readJsonBody(header(res.headers, 'content-type'), res.body);
    const env = json.ok ? parseEnvelope(json.value) : undefined;
    if (env !== undefined && env.fmCode !== '0') throw this.fail(errorForFmCode(env.fmCode, res.status, what), what);
    // FileMaker Cloud may leave `response` empty: the header is the authoritative place; the body is a fallback.
    const fromBody = env?.response['token'];
    const token =
      header(res.headers, 'x-fm-data-access-token') ?? (typeof fromBody === 'string' ? fromBody : undefined);
    if (token === undefined || token === '') {
      throw this.fail(errorForStatus(res.status, what, json.ok ? 'no token in the answer' : json.why), what);
    }
    this.c.logins++;
    if (this.hadToken) this.c.relogins++;
    this.hadToken = true;
    this.token = token;
    this.tokenUsedAt = Date.now();
    this.log.info({ relogin: this.c.logins > 1 }, 'Data API session opened');
    return token;
  }

  private invalidate(token: string): void {
    // Only the token that failed is dropped: another caller may already have logged in again.
    if (this.token === token) this.token = undefined;
  }

  private track(p: Promise<void>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  private async quietLogout(token: string): Promise<void> {
    try {
      await this.send('logout', 'logout', {
        method: 'DELETE',
        url: `${this.dataBase}/databases/${pathSegment(this.opts.database)}/sessions/${encodeURIComponent(token)}`,
        idempotent: true,
      });
    } catch (err) {
      this.log.debug({ err: errCode(err) }, 'logout of a replaced session failed (it expires on its own)');
    }
  }

  async logout(): Promise<void> {
    if (this.loginInFlight) await this.loginInFlight.catch(() => undefined);
    const token = this.token;
    this.token = undefined;
    if (token !== undefined) await this.quietLogout(token);
    await Promise.allSettled([...this.background]);
  }

  async close(): Promise<void> {
    await this.logout();
    await this.agent.close();
  }

  async validateSession(): Promise<boolean> {
    const token = this.token;
    if (token === undefined) return false;
    const what = 'validateSession';
    const res = await this.send('validateSession', what, {
      method: 'GET',
      url: `${this.dataBase}/validateSession`,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      idempotent: true,
    });
    const json = readJsonBody(header(res.headers, 'content-type'), res.body);
    const env = json.ok ? parseEnvelope(json.value) : undefined;
    if (res.status >= 200 && res.status <= 299 && env?.fmCode === '0') {
      this.tokenUsedAt = Date.now();
      return true;
    }
    if (res.status === 401 || env?.fmCode === '952') {
      this.invalidate(token);
      return false;
    }
    throw this.errorFrom(res, what);
  }

  /**
   * A Data API call with the session: Bearer token, the envelope checked, and on 952/401 one re-login and one retry.
   * `accept` lists FileMaker codes that are answers rather than failures for this call (401 "no records" for a find).
   */
  private async dataApi(
    kind: RequestKind,
    what: string,
    o: {
      method: Dispatcher.HttpMethod;
      path: string;
      body?: unknown;
      idempotent: boolean;
      accept?: readonly string[];
      signal?: AbortSignal;
    },
  ): Promise<{ fmCode: string; response: Record<string, unknown> }> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.getToken();
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
      if (o.body !== undefined) headers['content-type'] = 'application/json';
      const res = await this.send(kind, what, {
        method: o.method,
        url: `${this.dataBase}/databases/${pathSegment(this.opts.database)}${o.path}`,
        headers,
        body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
        idempotent: o.idempotent,
        signal: o.signal,
      });
      const json = readJsonBody(header(res.headers, 'content-type'), res.body);
      const env = json.ok ? parseEnvelope(json.value) : undefined;
      // 952 is the token's death certificate; a bare 401 without an envelope (a proxy in front) is treated alike.
      // A 401 that carries another code (802 for a misspelt database) is a real error, not a session problem.
      const sessionGone = env?.fmCode === '952' || (res.status === 401 && env === undefined);
      if (sessionGone) {
        this.invalidate(token);
        if (attempt === 0) {
          // Expired after 15 idle minutes, or killed by a restart/admin disconnect: the call never ran, so it is
          // safe to repeat (even a PATCH) once with a fresh session.
          this.c.retries++;
          this.log.info({ what }, 'Data API token rejected, logging in again and retrying once');
          continue;
        }
        throw this.fail(errorForFmCode('952', res.status, `${what} (after a fresh login)`), what);
      }
      this.tokenUsedAt = Date.now();
      if (!json.ok) throw this.fail(errorForStatus(res.status, what, json.why), what);
      if (env === undefined) throw this.fail(errorForStatus(res.status, what, 'no Data API envelope'), what);
      if (json.repaired) this.c.repairedJson++;
      if (env.fmCode === '0') {
        if (res.status >= 200 && res.status <= 299) return env;
        throw this.fail(errorForStatus(res.status, what, 'code 0 with a failure status'), what);
      }
      if (o.accept?.includes(env.fmCode)) return env;
      throw this.fail(errorForFmCode(env.fmCode, res.status, what), what);
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Metadata

  async productInfo(): Promise<Record<string, unknown>> {
    const what = 'productInfo';
    const res = await this.send('productInfo', what, {
      method: 'GET',
      url: `${this.dataBase}/productInfo`,
      headers: { accept: 'application/json' },
      idempotent: true,
    });
    const env = parseEnvelope(this.jsonOf(res, what));
    if (env === undefined) throw this.fail(errorForStatus(res.status, what, 'no Data API envelope'), what);
    if (env.fmCode !== '0') throw this.fail(errorForFmCode(env.fmCode, res.status, what), what);
    const info = env.response['productInfo'];
    return isObject(info) ? info : env.response;
  }

  async databaseNames(): Promise<string[]> {
    const what = 'databaseNames';
    const res = await this.authorized(what, async (authorization) => {
      const r = await this.send('databaseNames', what, {
        method: 'GET',
        url: `${this.dataBase}/databases`,
        headers: { authorization, accept: 'application/json' },
        idempotent: true,
      });
      return { res: r, refused: r.status === 401 };
    });
    const env = parseEnvelope(this.jsonOf(res, what));
    if (env === undefined) throw this.fail(errorForStatus(res.status, what, 'no Data API envelope'), what);
    if (env.fmCode !== '0') throw this.fail(errorForFmCode(env.fmCode, res.status, what), what);
    const dbs = env.response['databases'];
    if (!Array.isArray(dbs)) throw this.fail(errorForStatus(res.status, what, 'no databases list'), what);
    return dbs.flatMap((d) => (isObject(d) && typeof d['name'] === 'string' ? [d['name']] : []));
  }

  async layoutMetadata(layout: string): Promise<LayoutMetadata> {
    const what = `metadata of layout "${layout}"`;
    const env = await this.dataApi('layoutMetadata', what, {
      method: 'GET',
      path: `/layouts/${pathSegment(layout)}`,
      idempotent: true,
    });
    const meta = env.response['fieldMetaData'];
    if (!Array.isArray(meta)) throw this.fail(errorForStatus(200, what, 'no fieldMetaData'), what);
    const fields: LayoutField[] = meta.flatMap((f) =>
      isObject(f) && typeof f['name'] === 'string'
        ? [{ name: f['name'], type: str(f['type']), result: str(f['result']) }]
        : [],
    );
    const portals: Record<string, string[]> = {};
    const pm = env.response['portalMetaData'];
    if (isObject(pm)) {
      for (const [name, list] of Object.entries(pm)) {
        portals[name] = Array.isArray(list)
          ? list.flatMap((f) => (isObject(f) && typeof f['name'] === 'string' ? [f['name']] : []))
          : [];
      }
    }
    return { fields, portals };
  }

  async layoutFields(layout: string): Promise<string[]> {
    return (await this.layoutMetadata(layout)).fields.map((f) => f.name);
  }

  async layoutTotalCount(layout: string): Promise<number> {
    const what = `record count of layout "${layout}"`;
    const env = await this.dataApi('records', what, {
      method: 'GET',
      path: `/layouts/${pathSegment(layout)}/records?_limit=1`,
      idempotent: true,
      // An empty table answers "record is missing" or "no records" rather than an empty list.
      accept: ['101', '401'],
    });
    if (env.fmCode !== '0') return 0;
    const total = parseDataInfo(env.response).totalRecordCount;
    if (total === undefined) throw this.fail(errorForStatus(200, what, 'no dataInfo.totalRecordCount'), what);
    return total;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Records

  async getRecord(layout: string, recordId: string, opts: { signal?: AbortSignal } = {}): Promise<FileMakerRecord> {
    const what = `record ${recordId} on layout "${layout}"`;
    const env = await this.dataApi('getRecord', what, {
      method: 'GET',
      path: `/layouts/${pathSegment(layout)}/records/${pathSegment(recordId)}`,
      idempotent: true,
      signal: opts.signal,
    });
    const recs = parseRecords(env.response);
    const rec = recs?.[0];
    if (rec === undefined) throw this.fail(errorForStatus(200, what, 'no record in the answer'), what);
    return rec;
  }

  async findByIds(
    layout: string,
    idField: string,
    ids: readonly string[],
    opts: FindOptions = {},
  ): Promise<FileMakerRecord[]> {
    const chunkSize = Math.max(1, Math.min(opts.chunkSize ?? FIND_MAX_CHUNK, FIND_MAX_CHUNK));
    const unique = [...new Set(ids.filter((id) => typeof id === 'string' && id !== ''))];
    const out: FileMakerRecord[] = [];
    for (let i = 0; i < unique.length; i += chunkSize) {
      out.push(...(await this.findChunk(layout, idField, unique.slice(i, i + chunkSize), opts)));
    }
    return out;
  }

  private async findChunk(
    layout: string,
    idField: string,
    ids: readonly string[],
    opts: FindOptions,
  ): Promise<FileMakerRecord[]> {
    const what = `find of ${ids.length} ids on layout "${layout}"`;
    const found = new Map<string, FileMakerRecord>();
    let offset = 1;
    // The found set is defined by the ids alone, so paging it is stable. More hits than ids happen only when the
    // source has duplicate ids; they are all fetched (and left for the caller to flag) rather than cut off by `limit`.
    for (;;) {
      const body: Record<string, unknown> = {
        query: ids.map((id) => ({ [idField]: exactFindValue(id) })),
        limit: ids.length,
        offset,
      };
      if (opts.portals) {
        body['portal'] = Object.keys(opts.portals);
        for (const [name, limit] of Object.entries(opts.portals)) body[`limit.${name}`] = limit;
      }
      if (opts.dateFormats !== undefined) body['dateformats'] = opts.dateFormats;
      const env = await this.dataApi('find', what, {
        method: 'POST',
        path: `/layouts/${pathSegment(layout)}/_find`,
        body,
        // A find changes nothing, so a broken connection may resend it.
        idempotent: true,
        accept: ['401'],
        signal: opts.signal,
      });
      if (env.fmCode === '401') break; // no hits: an empty result, not a failure
      const recs = parseRecords(env.response);
      if (recs === undefined) throw this.fail(errorForStatus(200, what, 'records missing or malformed'), what);
      for (const r of recs) found.set(r.recordId, r);
      const foundCount = parseDataInfo(env.response).foundCount;
      if (recs.length === 0 || foundCount === undefined || found.size >= foundCount) break;
      offset += recs.length;
    }
    const wanted = new Set(ids.map((id) => id.toLowerCase()));
    const result: FileMakerRecord[] = [];
    let stray = 0;
    for (const r of found.values()) {
      const v = r.fieldData[idField];
      if ((typeof v === 'string' || typeof v === 'number') && wanted.has(String(v).toLowerCase())) result.push(r);
      else stray++;
    }
    if (stray > 0) this.log.warn({ layout, stray }, 'find returned records whose id was not requested; dropped');
    return result;
  }

  async patchRecord(
    layout: string,
    recordId: string,
    fieldData: Record<string, unknown>,
    modId?: string,
  ): Promise<string> {
    const what = `update of record ${recordId} on layout "${layout}"`;
    const body: Record<string, unknown> = { fieldData };
    if (modId !== undefined) body['modId'] = modId;
    const env = await this.dataApi('patch', what, {
      method: 'PATCH',
      path: `/layouts/${pathSegment(layout)}/records/${pathSegment(recordId)}`,
      body,
      idempotent: false,
    });
    const newModId = env.response['modId'];
    if (typeof newModId !== 'string' && typeof newModId !== 'number') {
      throw this.fail(errorForStatus(200, what, 'no modId in the answer'), what);
    }
    return String(newModId);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // OData

  /** One OData exchange with the body read whole, authenticated (and re-authenticated once) by `authorized`. */
  private odataSend(kind: RequestKind, what: string, url: string, accept: string, signal?: AbortSignal) {
    return this.authorized(what, async (authorization) => {
      const res = await this.send(kind, what, {
        method: 'GET',
        url,
        headers: { authorization, accept, 'odata-maxversion': '4.0' },
        idempotent: true,
        signal,
      });
      return { res, refused: res.status === 401 };
    });
  }

  async count(table: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    const what = `count of table "${table}"`;
    const url = `${this.odataBase}/${pathSegment(table)}/$count`;
    const res = await this.odataSend('odataCount', what, url, 'text/plain, application/json', opts.signal);
    if (res.status < 200 || res.status > 299) throw this.errorFrom(res, what);
    const ct = (header(res.headers, 'content-type') ?? '').toLowerCase();
    const text = res.body.toString('utf8').trim();
    // A bare integer; an HTML page with HTTP 200 must not be read as a count.
    if (ct.includes('html') || !/^\d+$/.test(text)) {
      throw this.fail(errorForStatus(res.status, what, 'not a bare integer'), what);
    }
    return Number(text);
  }

  async *manifest(table: string, opts: ManifestOptions = {}): AsyncGenerator<ManifestEntry, void, undefined> {
    const idField = opts.idField ?? 'id';
    const pageSize = Math.max(1, opts.pageSize ?? ODATA_MAX_PAGE);
    let byRowId = (opts.orderBy ?? 'ROWID') === 'ROWID';
    const what = `manifest of table "${table}"`;
    // `r:<ROWID>` and `i:<id>` of every entry yielded: a page read again after a fallback yields nothing twice.
    const seen = new Set<string>();
    // The sort key of the last row read, as a $filter literal: the next page starts after it.
    let after: string | undefined;
    const pageUrl = () => {
      const id = odataFieldName(idField);
      const extra = (opts.fields ?? []).map((f) => `,${odataFieldName(f)}`).join('');
      const key = byRowId ? 'ROWID' : id;
      const q = [`$select=${byRowId ? `${id},ROWID,ROWMODID` : id}${extra}`, `$orderby=${key}`, `$top=${pageSize}`];
      if (after !== undefined) q.push(`$filter=${key} gt ${after}`);
      return `${this.odataBase}/${pathSegment(table)}?${q.map(encodeQueryPart).join('&')}`;
    };
    const fallBackToId = (why: string) => {
      this.log.warn({ table }, `OData ${why}; ordering the manifest by id`);
      byRowId = false;
      after = undefined;
    };
    // Pages by key, never by `$skip`: a record deleted while the manifest is read would shift every later offset by
    // one and hide a live record, and `$count` drops by the same one, so the cross-check could not see it. A server's
    // next link pages by offset too, so a capped page is continued by key as well.
    for (;;) {
      let value: unknown;
      try {
        value = await this.odataPage(pageUrl(), what, opts.signal);
      } catch (err) {
        // Older servers cannot $select, $orderby or $filter the ROWID system column.
        if (byRowId && isFieldOrSyntaxError(err)) {
          fallBackToId('rejected ROWID');
          continue;
        }
        throw err;
      }
      const page = parseODataPage(value);
      if (page === undefined) throw this.fail(errorForStatus(200, what, 'not an OData collection'), what);
      if (byRowId && page.rows.length > 0 && !('ROWID' in (page.rows[0] ?? {}))) {
        // The server ignored ROWID in $select; its order and filter by ROWID cannot be trusted either.
        fallBackToId('returned no ROWID');
        continue;
      }
      let fresh = 0;
      for (const row of page.rows) {
        if (!(idField in row)) {
          throw new FileMakerError(`FileMaker ${what}: rows lack field "${idField}"`, undefined, 200, {
            code: FM_ERRORS.FIELD_MISSING,
            retryable: false,
          });
        }
        const entry: ManifestEntry = {
          id: keyText(row[idField]),
          rowId: keyText(row['ROWID']) ?? undefined,
          rowModId: keyText(row['ROWMODID']) ?? undefined,
          ...(opts.fields ? { fields: Object.fromEntries(opts.fields.map((f) => [f, row[f] ?? null])) } : {}),
        };
        after = (byRowId ? rowIdLiteral(row['ROWID']) : idLiteral(row[idField])) ?? after;
        // ROWID tells a repeat from a duplicate id; without it, an id is one record.
        const dedupeKey = byRowId
          ? entry.rowId !== undefined
            ? `r:${entry.rowId}`
            : undefined
          : entry.id !== null
            ? `i:${entry.id}`
            : undefined;
        if (dedupeKey !== undefined && seen.has(dedupeKey)) continue;
        fresh++;
        if (entry.rowId !== undefined) seen.add(`r:${entry.rowId}`);
        if (entry.id !== null) seen.add(`i:${entry.id}`);
        yield entry;
      }
      if (page.rows.length === 0 || (page.rows.length < pageSize && page.nextLink === undefined)) return;
      if (fresh === 0) {
        // Every row was one already read: the server ignored the key filter, and asking again would loop.
        throw this.fail(errorForStatus(200, what, 'the key filter was ignored'), what);
      }
    }
  }

  /**
   * One manifest page. A page that parsed only after repair is fetched again (at most twice): a defect in transit
   * goes away, while one that is really in the data comes back identical and is accepted as repaired. Ids are what the
   * whole import hangs on, so a clean copy is worth two small requests.
   */
  private async odataPage(url: string, what: string, signal: AbortSignal | undefined): Promise<unknown> {
    let parsed: { value: unknown; repaired: boolean } | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt > 0) this.c.retries++;
      const res = await this.odataSend('odataPage', what, url, 'application/json', signal);
      parsed = this.parsedJsonOf(res, what);
      if (!parsed.repaired) break;
    }
    return parsed?.value;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Containers

  async downloadContainer(url: string, opts: DownloadOptions = {}): Promise<ContainerDownload> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new FileMakerError('FileMaker container: malformed URL', undefined, undefined, {
        code: FM_ERRORS.BAD_REQUEST,
      });
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') {
      throw new FileMakerError(`FileMaker container: unsupported scheme ${target.protocol}`, undefined, undefined, {
        code: FM_ERRORS.BAD_REQUEST,
      });
    }
    // Only the host goes into logs and messages: the URL path is a short-lived capability.
    const what = `container download from ${target.host}`;
    for (let attempt = 0; ; attempt++) {
      const release = await this.sem.acquire(opts.signal);
      let handedOver = false;
      try {
        // The handshake is not redirect-following: the 302 carries the session cookie that only the next GET may
        // send, and each download gets its own cookie (a shared jar mixes sessions across parallel downloads).
        let res = await this.open('container', what, target.toString(), { accept: '*/*' }, opts.signal);
        if (res.statusCode >= 300 && res.statusCode <= 399) {
          const location = header(res.headers, 'location');
          const cookie = sessionCookie(res.headers['set-cookie']);
          await this.drain(res.body);
          if (location === undefined)
            throw this.fail(errorForStatus(res.statusCode, what, 'redirect without Location'), what);
          const next = new URL(location, target);
          const headers: Record<string, string> = { accept: '*/*' };
          if (cookie !== undefined) headers['cookie'] = cookie;
          res = await this.open('container', what, next.toString(), headers, opts.signal);
          if (res.statusCode >= 300 && res.statusCode <= 399) {
            await this.drain(res.body);
            throw this.fail(errorForStatus(res.statusCode, what, 'a second redirect in the handshake'), what);
          }
        }
        if (res.statusCode >= 200 && res.statusCode <= 299 && !isErrorPage(res.headers)) {
          handedOver = true;
          return this.stream(res, release, what, opts.readAheadBytes);
        }
        const errBody = await this.readCapped(res.body);
        if (res.statusCode >= 200 && res.statusCode <= 299) {
          throw this.fail(errorForStatus(res.statusCode, what, 'an HTML page instead of container bytes'), what);
        }
        const status = res.statusCode;
        const stale = status === 401 || status === 403 || status === 404 || status === 410;
        if (stale && attempt === 0 && status === 401) {
          // Bursts of parallel downloads see sporadic 401s; a fresh, cookie-isolated handshake usually succeeds.
          this.c.retries++;
          this.log.debug({ what }, 'container 401, retrying once with a fresh handshake');
          continue;
        }
        if (stale) {
          // FileMaker versions answer an expired container URL with 401 or 404; either way the record must be read
          // again for a fresh URL.
          this.c.staleContainerUrls++;
          throw new FileMakerError(`FileMaker ${what}: HTTP ${status}, container URL is stale`, undefined, status, {
            code: FM_ERRORS.CONTAINER_URL_STALE,
            retryable: false,
          });
        }
        throw this.errorFrom({ status, headers: res.headers, body: errBody }, what);
      } finally {
        if (!handedOver) release();
      }
    }
  }

  async downloadRecordContainer(
    layout: string,
    recordId: string,
    field: string,
    opts: DownloadOptions & { staleRetries?: number } = {},
  ): Promise<RecordContainerDownload | null> {
    const staleRetries = opts.staleRetries ?? 2;
    for (let attempt = 0; ; attempt++) {
      const record = await this.getRecord(layout, recordId, { signal: opts.signal });
      if (!(field in record.fieldData)) {
        throw new FileMakerError(`FileMaker layout "${layout}" has no field "${field}"`, undefined, undefined, {
          code: FM_ERRORS.FIELD_MISSING,
        });
      }
      const url = record.fieldData[field];
      if (url === '' || url === null || url === undefined) return null;
      if (typeof url !== 'string') throw this.fail(errorForStatus(200, `container ${field}`, 'not a URL'), layout);
      try {
        const dl = await this.downloadContainer(url, opts);
        return { ...dl, record };
      } catch (err) {
        if (!(err instanceof FileMakerError && err.code === FM_ERRORS.CONTAINER_URL_STALE) || attempt >= staleRetries) {
          throw err;
        }
        // The URL died between reading and fetching (a restart, or a long wait for a slot): read it again.
        this.c.retries++;
      }
    }
  }

  async downloadODataContainer(
    table: string,
    id: ODataKey,
    field: string,
    opts: DownloadOptions = {},
  ): Promise<ContainerDownload> {
    // Only the field and table name the download in logs and errors: a key can be patient data.
    const what = `container ${field} in table "${table}"`;
    const url = `${this.odataBase}/${pathSegment(table)}${odataKey(id)}/${pathSegment(field)}/$value`;
    const release = await this.sem.acquire(opts.signal);
    let handedOver = false;
    try {
      // `Accept: application/octet-stream` made one server version answer the filename as text/plain instead of the
      // bytes, so any type is accepted.
      const res = await this.authorized(what, async (authorization) => {
        const r = await this.open('odataValue', what, url, { authorization, accept: '*/*' }, opts.signal);
        const refused = r.statusCode === 401 && this.fmid !== undefined;
        if (refused) await this.drain(r.body);
        return { res: r, refused };
      });
      if (res.statusCode >= 200 && res.statusCode <= 299 && !isErrorPage(res.headers)) {
        const why = await this.suspectValue(res, what);
        if (why === undefined) {
          handedOver = true;
          return this.stream(res, release, what, opts.readAheadBytes);
        }
        await this.drain(res.body);
        this.c.suspectContainers++;
        this.log.warn({ what, status: res.statusCode }, 'OData $value answer cannot be the container');
        // Reading it again gives the same answer: the caller reads the file another way (the Data API).
        throw new FileMakerError(`FileMaker ${what}: HTTP ${res.statusCode}, ${why}`, undefined, res.statusCode, {
          code: FM_ERRORS.CONTAINER_SUSPECT,
          retryable: false,
        });
      }
      const body = await this.readCapped(res.body);
      if (res.statusCode >= 200 && res.statusCode <= 299) {
        throw this.fail(errorForStatus(res.statusCode, what, 'an HTML page instead of container bytes'), what);
      }
      throw this.errorFrom({ status: res.statusCode, headers: res.headers, body }, what);
    } finally {
      if (!handedOver) release();
    }
  }

  /**
   * Why a 2xx `$value` answer cannot be the container (see suspectContainerAnswer), or undefined. An answer without a
   * Content-Length is looked at up to its first chunk, so an empty 200 is refused before the caller gets a stream.
   */
  private async suspectValue(res: Dispatcher.ResponseData, what: string): Promise<string | undefined> {
    const contentLength = contentLengthOf(res.headers);
    const why = suspectContainerAnswer({
      status: res.statusCode,
      contentType: header(res.headers, 'content-type'),
      contentLength,
      filename: parseContentDisposition(res.headers['content-disposition']).filename,
    });
    if (why !== undefined || res.statusCode !== 200 || contentLength !== undefined) return why;
    try {
      return (await hasBytes(res.body)) ? undefined : 'an empty 200 (an empty container answers 204)';
    } catch (err) {
      throw this.fail(networkError(err, what), what);
    }
  }

  /** Sends a GET and returns the answer with its body unread (the caller holds the semaphore slot). */
  private async open(
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

  private async drain(body: Dispatcher.ResponseData['body']): Promise<void> {
    await this.readCapped(body);
  }

  /** Reads at most MAX_ERROR_BODY bytes of a non-success answer, counting them, and discards the rest. */
  private async readCapped(body: Dispatcher.ResponseData['body']): Promise<Buffer> {
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

  /** Wraps a successful container answer: counts bytes as they pass, checks Content-Length, releases the slot at the end. */
  private stream(
    res: Dispatcher.ResponseData,
    release: Release,
    what: string,
    readAheadBytes: number | undefined,
  ): ContainerDownload {
    const contentLength = contentLengthOf(res.headers);
    let received = 0;
    const counters = this.c;
    const counter = new Transform({
      ...(readAheadBytes !== undefined ? { readableHighWaterMark: readAheadBytes } : {}),
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        counters.containerBytes += chunk.length;
        cb(null, chunk);
      },
      flush(cb) {
        // A body that ends early without a socket error would otherwise look like a complete (smaller) file.
        if (contentLength !== undefined && received !== contentLength) {
          cb(
            new FileMakerError(
              `FileMaker ${what}: body ended after ${received} of ${contentLength} bytes`,
              undefined,
              res.statusCode,
              { code: FM_ERRORS.CONTAINER_TRUNCATED, retryable: true },
            ),
          );
        } else cb();
      },
    });
    pipeline(res.body, counter, (err) => {
      release();
      if (err) this.log.debug({ what, received, err: errCode(err) }, 'container stream ended with an error');
    });
    return {
      body: counter,
      received: () => received,
      contentType: header(res.headers, 'content-type'),
      contentLength,
      filename: parseContentDisposition(res.headers['content-disposition']).filename,
      status: res.statusCode,
    };
  }
}

// -----------------------------------------------------------------------------------------------------------------
// Helpers

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function contentLengthOf(headers: IncomingHttpHeaders): number | undefined {
  const v = header(headers, 'content-length');
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Waits for a body's first chunk (put back for the reader) or its end: false when the body is empty. */
function hasBytes(body: Readable): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const settle = (fn: () => void) => {
      body.off('readable', onReadable).off('end', onEnd).off('error', onError);
      fn();
    };
    const onReadable = () => {
      const chunk = body.read() as Buffer | null;
      if (chunk !== null) settle(() => (body.unshift(chunk), resolve(true)));
    };
    const onEnd = () => settle(() => resolve(false));
    const onError = (err: Error) => settle(() => reject(err));
    body.on('readable', onReadable).on('end', onEnd).on('error', onError);
  });
}

/**
 * The web server in front of a stopped Data API engine answers container URLs with an HTML page and HTTP 200.
 * Storing that as the patient's document would be silent loss, so an HTML answer without a Content-Disposition
 * (which FileMaker sends with real container bytes) is treated as an error page.
 */
function isErrorPage(headers: IncomingHttpHeaders): boolean {
  const ct = (header(headers, 'content-type') ?? '').toLowerCase();
  return ct.startsWith('text/html') && header(headers, 'content-disposition') === undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A key value from OData as text: numbers and strings kept, `null`/`""` (FileMaker's empties) as null. */
function keyText(v: unknown): string | null {
  if (typeof v === 'string') return v === '' ? null : v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

/** A ROWID as a `$filter` literal (digits only), or undefined. */
function rowIdLiteral(v: unknown): string | undefined {
  const t = keyText(v);
  return t !== null && /^\d+$/.test(t) ? t : undefined;
}

/** An id as a `$filter` literal in its own type (a number field compares with numbers), or undefined when empty. */
function idLiteral(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return typeof v === 'string' && v !== '' ? odataString(v) : undefined;
}

/** `$select=a,"b c"` → percent-encoded, keeping the `$`, `=` and `,` OData reads literally. */
function encodeQueryPart(part: string): string {
  const eq = part.indexOf('=');
  return `${part.slice(0, eq)}=${encodeURIComponent(part.slice(eq + 1)).replace(/%2C/g, ',')}`;
}

/** The `X-FMS-Session-Key` cookie of a handshake 302, as a Cookie header value (no attributes). */
export function sessionCookie(setCookie: string | string[] | undefined): string | undefined {
  const list = Array.isArray(setCookie) ? setCookie : setCookie !== undefined ? [setCookie] : [];
  const pairs = list.map((c) => (c.split(';')[0] ?? '').trim()).filter((p) => p.includes('='));
  const session = pairs.filter((p) => p.toLowerCase().startsWith('x-fms-session-key='));
  // Send the session key; if a server names it differently, send what it set (it is scoped to this one download).
  const chosen = session.length > 0 ? session : pairs;
  return chosen.length > 0 ? chosen.join('; ') : undefined;
}

function errCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.cause?.code === 'string') return e.cause.code;
  return err instanceof Error ? err.name : undefined;
}

function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return true;
  const code = errCode(err);
  return code === 'UND_ERR_ABORTED' || code === 'AbortError' || (err instanceof Error && err.name === 'AbortError');
}

function isResetBeforeAnswer(err: unknown): boolean {
  const code = errCode(err);
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET';
}

function isFieldOrSyntaxError(err: unknown): boolean {
  return err instanceof FileMakerError && (err.code === FM_ERRORS.FIELD_MISSING || err.code === FM_ERRORS.BAD_REQUEST);
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
function networkError(err: unknown, what: string): Error {
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
