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
import type { ClarisIdTokenSource } from './claris-id';
import { Containers, type ContainerDownload, type DownloadOptions, type RecordContainerDownload } from './containers';
import { DataApi, type FindOptions, type LayoutMetadata } from './data-api';
import { ODataApi, type CountOptions, type ManifestEntry, type ManifestOptions } from './odata';
import type { FileMakerRecord, ODataKey } from './responses';
import { Session } from './session';
import { Transport, type FileMakerStats } from './transport';
import type { Logger } from '../logger';

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
  count(table: string, opts?: CountOptions): Promise<number>;
  /** The records with these ids (exact, case-insensitive match on `idField`); ids without a record are absent. */
  findByIds(layout: string, idField: string, ids: readonly string[], opts?: FindOptions): Promise<FileMakerRecord[]>;
  /**
   * The records with these record ids (Data API `recordId`, OData `ROWID`), keyed by record id; absent only when
   * FileMaker says the record is missing. See DataApi.recordsById.
   */
  recordsById(
    layout: string,
    idField: string,
    wanted: readonly { recordId: string; id: string }[],
    opts?: FindOptions,
  ): Promise<Map<string, FileMakerRecord>>;
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
export {
  sessionCookie,
  type ContainerDownload,
  type DownloadOptions,
  type RecordContainerDownload,
} from './containers';
export type { FindOptions, LayoutField, LayoutMetadata } from './data-api';
export type { CountOptions, ManifestEntry, ManifestOptions } from './odata';
export type { FileMakerStats, RequestKind } from './transport';

/**
 * The client, put together the way undici puts its own together: a transport (`transport.ts`: send, repeats,
 * overload, agent, counters), a session (`session.ts`: Basic or FMID, the Data API token), one module per API
 * (`data-api.ts`, `odata.ts`) and the container downloads (`containers.ts`).
 */
export function createFileMakerClient(opts: FileMakerClientOptions): FileMakerClient {
  const transport = new Transport(opts);
  const session = new Session(transport, opts);
  const data = new DataApi(transport, session);
  const containers = new Containers(transport, (layout, recordId, o) => data.getRecord(layout, recordId, o));
  const odata = new ODataApi(transport, session, containers);
  return {
    productInfo: () => data.productInfo(),
    databaseNames: () => data.databaseNames(),
    validateSession: () => session.validateSession(),
    logout: () => session.logout(),
    close: async () => {
      await session.logout();
      await transport.close();
    },
    layoutMetadata: (layout) => data.layoutMetadata(layout),
    layoutFields: (layout) => data.layoutFields(layout),
    layoutTotalCount: (layout) => data.layoutTotalCount(layout),
    manifest: (table, o) => odata.manifest(table, o),
    count: (table, o) => odata.count(table, o),
    findByIds: (layout, idField, ids, o) => data.findByIds(layout, idField, ids, o),
    recordsById: (layout, idField, wanted, o) => data.recordsById(layout, idField, wanted, o),
    getRecord: (layout, recordId, o) => data.getRecord(layout, recordId, o),
    patchRecord: (layout, recordId, fieldData, modId) => data.patchRecord(layout, recordId, fieldData, modId),
    downloadContainer: (url, o) => containers.downloadContainer(url, o),
    downloadODataContainer: (table, id, field, o) => odata.downloadContainer(table, id, field, o),
    downloadRecordContainer: (layout, recordId, field, o) =>
      containers.downloadRecordContainer(layout, recordId, field, o),
    stats: () => transport.stats(),
    setMaxConcurrency: (n) => transport.setMaxConcurrency(n),
  };
}
