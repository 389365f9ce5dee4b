/**
 * OData: a table's `$count`, its manifest (every id, paged by key) and one container by key (`$value`). Every request
 * carries the session's Authorization (Basic, or FMID on FileMaker Cloud); field names are quoted as Claris asks.
 */
import { FileMakerError } from '../errors';
import type { Containers, ContainerDownload, DownloadOptions } from './containers';
import {
  FM_ERRORS,
  type ODataKey,
  errorForStatus,
  odataFieldName,
  odataKey,
  odataString,
  parseODataPage,
  pathSegment,
} from './responses';
import type { Session } from './session';
import { header, type RequestKind, type Transport } from './transport';

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
  /**
   * Only the records with a ROWID above this one: those created after a manifest whose highest ROWID it was
   * (FileMaker never gives a record id twice). Needs ROWID paging; a server that cannot page by ROWID is an error.
   */
  afterRowId?: string;
  /**
   * Called with FileMaker's count of the records when the whole manifest came in one response (`$count=true` on the
   * first page; a server that leaves the count out of it never calls this): the cross-check's count without a request
   * of its own.
   */
  onCount?: (count: number) => void;
  signal?: AbortSignal;
}

export interface CountOptions {
  /**
   * Count only the records whose ROWID is at most this one (`$filter=ROWID le n`): on a live file, the records a
   * manifest that read up to this ROWID must hold, whatever arrived since.
   */
  rowIdAtMost?: string;
  signal?: AbortSignal;
}

const ODATA_MAX_PAGE = 10_000;

export class ODataApi {
  constructor(
    private readonly t: Transport,
    private readonly s: Session,
    private readonly containers: Containers,
  ) {}

  /** One OData exchange with the body read whole, authenticated (and re-authenticated once) by `authorized`. */
  private odataSend(kind: RequestKind, what: string, url: string, accept: string, signal?: AbortSignal) {
    return this.s.authorized(what, async (authorization) => {
      const res = await this.t.send(kind, what, {
        method: 'GET',
        url,
        headers: { authorization, accept, 'odata-maxversion': '4.0' },
        idempotent: true,
        signal,
      });
      return { res, refused: res.status === 401 };
    });
  }

  async count(table: string, opts: CountOptions = {}): Promise<number> {
    const what = `count of table "${table}"`;
    const bound = opts.rowIdAtMost !== undefined ? rowIdLiteral(opts.rowIdAtMost) : undefined;
    if (opts.rowIdAtMost !== undefined && bound === undefined) throw new RangeError('ROWID must be digits');
    const filter = bound !== undefined ? `?${encodeQueryPart(`$filter=ROWID le ${bound}`)}` : '';
    const url = `${this.t.odataBase}/${pathSegment(table)}/$count${filter}`;
    const res = await this.odataSend('odataCount', what, url, 'text/plain, application/json', opts.signal);
    if (res.status < 200 || res.status > 299) throw this.t.errorFrom(res, what);
    const ct = (header(res.headers, 'content-type') ?? '').toLowerCase();
    const text = res.body.toString('utf8').trim();
    // A bare integer; an HTML page with HTTP 200 must not be read as a count.
    if (ct.includes('html') || !/^\d+$/.test(text)) {
      throw this.t.fail(errorForStatus(res.status, what, 'not a bare integer'), what);
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
    const start = opts.afterRowId !== undefined ? rowIdLiteral(opts.afterRowId) : undefined;
    if (opts.afterRowId !== undefined && (start === undefined || !byRowId)) {
      throw new RangeError('afterRowId needs ROWID paging and a ROWID of digits');
    }
    let after: string | undefined = start;
    const pageUrl = () => {
      const id = odataFieldName(idField);
      const extra = (opts.fields ?? []).map((f) => `,${odataFieldName(f)}`).join('');
      const key = byRowId ? 'ROWID' : id;
      const q = [`$select=${byRowId ? `${id},ROWID,ROWMODID` : id}${extra}`, `$orderby=${key}`, `$top=${pageSize}`];
      if (after !== undefined) q.push(`$filter=${key} gt ${after}`);
      // The first page also counts the records (`$count` ignores `$top`): the count of a manifest read in one page.
      else if (opts.onCount) q.push('$count=true');
      return `${this.t.odataBase}/${pathSegment(table)}?${q.map(encodeQueryPart).join('&')}`;
    };
    const fallBackToId = (why: string) => {
      if (start !== undefined) {
        throw new FileMakerError(
          `FileMaker ${what}: OData ${why}, records after a ROWID cannot be listed`,
          undefined,
          200,
          {
            code: FM_ERRORS.BAD_REQUEST,
            retryable: false,
          },
        );
      }
      this.t.log.warn({ table }, `OData ${why}; ordering the manifest by id`);
      byRowId = false;
      after = undefined;
    };
    // Pages by key, never by `$skip`: a record deleted while the manifest is read would shift every later offset by
    // one and hide a live record, and `$count` drops by the same one, so the cross-check could not see it. A server's
    // next link pages by offset too, so a capped page is continued by key as well.
    for (let pages = 1; ; pages++) {
      let value: unknown;
      try {
        value = await this.odataPage(pageUrl(), what, opts.signal);
      } catch (err) {
        // Older servers cannot $select, $orderby or $filter the ROWID system column.
        if (byRowId && isFieldOrSyntaxError(err)) {
          fallBackToId('rejected ROWID');
          pages = 0;
          continue;
        }
        throw err;
      }
      const page = parseODataPage(value);
      if (page === undefined) throw this.t.fail(errorForStatus(200, what, 'not an OData collection'), what);
      if (byRowId && page.rows.length > 0 && !('ROWID' in (page.rows[0] ?? {}))) {
        // The server ignored ROWID in $select; its order and filter by ROWID cannot be trusted either.
        fallBackToId('returned no ROWID');
        pages = 0;
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
      if (page.rows.length === 0 || (page.rows.length < pageSize && page.nextLink === undefined)) {
        if (pages === 1 && start === undefined && page.count !== undefined) opts.onCount?.(page.count);
        return;
      }
      if (fresh === 0) {
        // Every row was one already read: the server ignored the key filter, and asking again would loop.
        throw this.t.fail(errorForStatus(200, what, 'the key filter was ignored'), what);
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
      if (attempt > 0) this.t.c.retries++;
      const res = await this.odataSend('odataPage', what, url, 'application/json', signal);
      parsed = this.t.parsedJsonOf(res, what);
      if (!parsed.repaired) break;
    }
    return parsed?.value;
  }

  /** One container by key: `/{table}({key})/{field}/$value`, checked by Containers.acceptValue. */
  async downloadContainer(
    table: string,
    id: ODataKey,
    field: string,
    opts: DownloadOptions = {},
  ): Promise<ContainerDownload> {
    // Only the field and table name the download in logs and errors: a key can be patient data.
    const what = `container ${field} in table "${table}"`;
    const url = `${this.t.odataBase}/${pathSegment(table)}${odataKey(id)}/${pathSegment(field)}/$value`;
    const release = await this.t.sem.acquire(opts.signal);
    let handedOver = false;
    try {
      // `Accept: application/octet-stream` made one server version answer the filename as text/plain instead of the
      // bytes, so any type is accepted.
      const res = await this.s.authorized(what, async (authorization) => {
        const r = await this.t.open('odataValue', what, url, { authorization, accept: '*/*' }, opts.signal);
        return { res: r, refused: r.statusCode === 401, discard: () => this.t.drain(r.body) };
      });
      const download = await this.containers.acceptValue(res, release, what, opts.readAheadBytes);
      handedOver = true;
      return download;
    } finally {
      if (!handedOver) release();
    }
  }
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

function isFieldOrSyntaxError(err: unknown): boolean {
  return err instanceof FileMakerError && (err.code === FM_ERRORS.FIELD_MISSING || err.code === FM_ERRORS.BAD_REQUEST);
}
