/**
 * Pure interpretation of FileMaker answers: the Data API envelope, OData bodies and errors, and the mapping from
 * FileMaker codes and HTTP statuses to the typed errors of src/errors.ts. No I/O here, so it is unit-tested alone.
 *
 * Error messages carry codes, statuses, layout/table names and ids only; never a response body (it may hold patient
 * data) and never FileMaker's own message text.
 */
import { FM_ERRORS, type FileMakerErrorCode } from '../error-codes';
import { FileMakerError, FileMakerOverloadedError, TransferQuotaError } from '../errors';
import { parseJsonTolerant } from './json';

export { FM_ERRORS, type FileMakerErrorCode } from '../error-codes';

/** True when `err` is a FileMakerError with the given code (use in activities; workflows use the failure type). */
export function isFileMakerError(err: unknown, code?: FileMakerErrorCode): err is FileMakerError {
  return err instanceof FileMakerError && (code === undefined || err.code === code);
}

/**
 * FileMaker's codes: what each means (said in our messages) and, for those that name one failure of ours, its error
 * code and whether trying again can help. Overload (812, 956) and the transfer limit (953) have classes of their own.
 */
const FM_CODES: Readonly<Record<string, readonly [text: string, failure?: readonly [FileMakerErrorCode, boolean]]>> = {
  '0': ['OK'],
  '10': ['authorization header missing', [FM_ERRORS.AUTH_FAILED, false]],
  '101': ['record is missing', [FM_ERRORS.RECORD_MISSING, false]],
  '102': ['field is missing', [FM_ERRORS.FIELD_MISSING, false]],
  '105': ['layout is missing', [FM_ERRORS.LAYOUT_MISSING, false]],
  '212': ['invalid user account or password', [FM_ERRORS.AUTH_FAILED, false]],
  '306': ['record modification id does not match', [FM_ERRORS.MODID_MISMATCH, false]],
  '401': ['no records match the request'],
  '802': ['unable to open file', [FM_ERRORS.FILE_UNAVAILABLE, true]],
  '812': ["exceeded host's capacity"],
  '952': [
    'token refused: a Data API session or, on FileMaker Cloud, a Claris ID token',
    [FM_ERRORS.SESSION_INVALID, true],
  ],
  '953': ['exceeded the Data API transfer limit'],
  '956': ['maximum number of sessions exceeded'],
  '958': ['parameter missing', [FM_ERRORS.BAD_REQUEST, false]],
  '960': ['parameter invalid', [FM_ERRORS.BAD_REQUEST, false]],
  '-1002': ['URL syntax error', [FM_ERRORS.BAD_REQUEST, false]],
  '-1023': ['no such record', [FM_ERRORS.RECORD_MISSING, false]],
  '8309': ['no such field', [FM_ERRORS.FIELD_MISSING, false]],
};

/** Statuses with which the web server in front of FileMaker says "the engine is busy or down". */
export function isOverloadStatus(status: number): boolean {
  // 504 is the same front-end proxy giving up on a busy engine; 429 is a rate limiter in front of Cloud.
  return status === 502 || status === 503 || status === 504 || status === 429;
}

/** The typed error for a FileMaker code (string, as the envelope carries it) seen on an HTTP answer. */
export function errorForFmCode(fmCode: string, httpStatus: number | undefined, context: string): Error {
  const [text, known] = Object.hasOwn(FM_CODES, fmCode) ? FM_CODES[fmCode]! : [];
  const msg = `FileMaker ${context}: ${httpStatus !== undefined ? `HTTP ${httpStatus}, ` : ''}code ${fmCode}${text ? ` (${text})` : ''}`;
  if (fmCode === '812' || fmCode === '956') return new FileMakerOverloadedError(msg, fmCode, httpStatus);
  if (fmCode === '953') return new TransferQuotaError(msg);
  if (known) return new FileMakerError(msg, fmCode, httpStatus, { code: known[0], retryable: known[1] });
  if (httpStatus !== undefined && isOverloadStatus(httpStatus)) {
    return new FileMakerOverloadedError(msg, fmCode, httpStatus);
  }
  return new FileMakerError(msg, fmCode, httpStatus, { code: FM_ERRORS.OTHER, retryable: false });
}

/** The typed error for an answer that carries no usable FileMaker code. */
export function errorForStatus(httpStatus: number, context: string, why: string): Error {
  const msg = `FileMaker ${context}: HTTP ${httpStatus}, ${why}`;
  if (isOverloadStatus(httpStatus)) return new FileMakerOverloadedError(msg, undefined, httpStatus);
  return new FileMakerError(msg, undefined, httpStatus, { code: FM_ERRORS.BAD_RESPONSE, retryable: true });
}

export function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mime = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return mime === 'application/json' || mime.endsWith('+json');
}

/** Outcome of reading one body that should be JSON. */
export type JsonBody =
  | { readonly ok: true; readonly value: unknown; readonly repaired: boolean }
  | { readonly ok: false; readonly why: string };

/** Decides whether a body may be treated as JSON at all: the Content-Type must say so and it must parse. */
export function readJsonBody(contentType: string | undefined, body: Buffer): JsonBody {
  if (!isJsonContentType(contentType)) {
    // An HTML page (even one with HTTP 200) is the web server talking, not FileMaker: never parse it as data.
    const mime = (contentType ?? 'none').split(';')[0]?.trim() || 'none';
    return { ok: false, why: `not JSON (Content-Type ${mime}, ${body.length} bytes)` };
  }
  const parsed = parseJsonTolerant(body.toString('utf8'));
  if (parsed === undefined) return { ok: false, why: `unparseable JSON (${body.length} bytes)` };
  return { ok: true, value: parsed.value, repaired: parsed.repaired };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A Data API envelope that passed validation. */
export interface Envelope {
  readonly fmCode: string;
  readonly response: Record<string, unknown>;
}

/**
 * Validates `{"response":{...},"messages":[{"code":"0",...}]}`. Returns undefined when the value is not an envelope.
 * Codes are strings on the wire, but numbers are accepted too.
 */
export function parseEnvelope(value: unknown): Envelope | undefined {
  if (!isObject(value)) return undefined;
  const messages = value['messages'];
  if (!Array.isArray(messages) || messages.length === 0) return undefined;
  const first: unknown = messages[0];
  if (!isObject(first)) return undefined;
  const code = first['code'];
  if (typeof code !== 'string' && typeof code !== 'number') return undefined;
  const response = value['response'];
  return { fmCode: String(code).trim(), response: isObject(response) ? response : {} };
}

/** Reads `{"error":{"code":"...","message":"..."}}`, the OData error body. */
export function parseODataError(value: unknown): string | undefined {
  if (!isObject(value)) return undefined;
  const error = value['error'];
  if (!isObject(error)) return undefined;
  const code = error['code'];
  return typeof code === 'string' || typeof code === 'number' ? String(code).trim() : undefined;
}

/** One page of an OData collection. */
export interface ODataPage {
  readonly rows: readonly Record<string, unknown>[];
  readonly nextLink: string | undefined;
  readonly count: number | undefined;
}

/** Parses an OData collection, accepting both annotation spellings (`@odata.nextLink` and `@nextLink`). */
export function parseODataPage(value: unknown): ODataPage | undefined {
  if (!isObject(value)) return undefined;
  const rows = value['value'];
  if (!Array.isArray(rows) || !rows.every(isObject)) return undefined;
  const next = value['@odata.nextLink'] ?? value['@nextLink'] ?? value['odata.nextLink'];
  const count = value['@odata.count'] ?? value['@count'] ?? value['odata.count'];
  return {
    rows,
    nextLink: typeof next === 'string' && next !== '' ? next : undefined,
    count:
      typeof count === 'number' ? count : typeof count === 'string' && /^\d+$/.test(count) ? Number(count) : undefined,
  };
}

/** A record as the Data API returns it. Field values stay as FileMaker sent them (strings, numbers, `""`). */
export interface FileMakerRecord {
  readonly recordId: string;
  readonly modId: string;
  readonly fieldData: Record<string, unknown>;
  readonly portalData: Record<string, Record<string, unknown>[]>;
  /** Per portal: how many related rows exist and how many came back (the Data API returns 50 by default). */
  readonly portalDataInfo: readonly PortalDataInfo[];
}

export interface PortalDataInfo {
  readonly portalObjectName?: string;
  readonly database?: string;
  readonly table?: string;
  readonly foundCount: number;
  readonly returnedCount: number;
}

export interface DataInfo {
  readonly totalRecordCount: number | undefined;
  readonly foundCount: number | undefined;
  readonly returnedCount: number | undefined;
}

export function parseDataInfo(response: Record<string, unknown>): DataInfo {
  const info = response['dataInfo'];
  const num = (v: unknown) =>
    typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
  if (!isObject(info)) return { totalRecordCount: undefined, foundCount: undefined, returnedCount: undefined };
  return {
    totalRecordCount: num(info['totalRecordCount']),
    foundCount: num(info['foundCount']),
    returnedCount: num(info['returnedCount']),
  };
}

/** Validates `response.data[]`; returns undefined when a record lacks its recordId or fieldData. */
export function parseRecords(response: Record<string, unknown>): FileMakerRecord[] | undefined {
  const data = response['data'];
  if (!Array.isArray(data)) return undefined;
  const out: FileMakerRecord[] = [];
  for (const raw of data) {
    if (!isObject(raw)) return undefined;
    const recordId = raw['recordId'];
    const modId = raw['modId'];
    const fieldData = raw['fieldData'];
    if ((typeof recordId !== 'string' && typeof recordId !== 'number') || !isObject(fieldData)) return undefined;
    const portals: Record<string, Record<string, unknown>[]> = {};
    const portalData = raw['portalData'];
    if (isObject(portalData)) {
      for (const [name, rows] of Object.entries(portalData)) {
        portals[name] = Array.isArray(rows) ? rows.filter(isObject) : [];
      }
    }
    const infos: PortalDataInfo[] = [];
    const portalInfo = raw['portalDataInfo'];
    if (Array.isArray(portalInfo)) {
      for (const p of portalInfo) {
        if (!isObject(p)) continue;
        infos.push({
          portalObjectName: typeof p['portalObjectName'] === 'string' ? p['portalObjectName'] : undefined,
          database: typeof p['database'] === 'string' ? p['database'] : undefined,
          table: typeof p['table'] === 'string' ? p['table'] : undefined,
          foundCount: Number(p['foundCount'] ?? 0),
          returnedCount: Number(p['returnedCount'] ?? 0),
        });
      }
    }
    out.push({
      recordId: String(recordId),
      modId: typeof modId === 'string' || typeof modId === 'number' ? String(modId) : '',
      fieldData,
      portalData: portals,
      portalDataInfo: infos,
    });
  }
  return out;
}

/**
 * Words OData reads as something other than a field name, compared without case: `id` (FileMaker answered an unquoted
 * `ID` with -1002), the system query options (OData 4.01 lets them go without their `$`), the operators and literals of
 * `$filter` and the keywords of `$orderby`.
 */
const ODATA_RESERVED = new Set([
  'id',
  ...['select', 'filter', 'orderby', 'top', 'skip', 'count', 'expand', 'search', 'format', 'compute', 'apply'],
  ...['skiptoken', 'deltatoken', 'index', 'levels', 'schemaversion', 'it', 'root', 'this'],
  ...['and', 'or', 'not', 'eq', 'ne', 'gt', 'ge', 'lt', 'le', 'has', 'in', 'add', 'sub', 'mul', 'div', 'divby', 'mod'],
  ...['asc', 'desc', 'true', 'false', 'null', 'inf', 'nan'],
]);

/** FileMaker's system columns, which OData names bare. */
const ODATA_SYSTEM_COLUMNS = new Set(['ROWID', 'ROWMODID']);

/**
 * A field name as `$select`, `$orderby` and `$filter` need it. Claris: "Enclose field names that include special
 * characters, such as spaces or underscores, in double-quotation marks"; reserved words are quoted too. Only plain
 * letters-and-digits names that are not reserved, and the ROWID/ROWMODID system columns, go bare.
 */
export function odataFieldName(name: string): string {
  if (ODATA_SYSTEM_COLUMNS.has(name)) return name;
  if (/^[A-Za-z][A-Za-z0-9]*$/.test(name) && !ODATA_RESERVED.has(name.toLowerCase())) return name;
  return `"${name.replace(/"/g, '""')}"`;
}

/** A string literal for `$filter`: single quotes, a quote inside doubled (`'O''Brien'`). */
export function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * A find request value matching `id` exactly. `==` is FileMaker's "field content match"; operator characters in the
 * id are escaped with a backslash so an odd id cannot turn into a wildcard or range search.
 */
export function exactFindValue(id: string): string {
  return '==' + id.replace(/[\\*@#?!=<>"~≤≥…]/g, (c) => `\\${c}`).replace(/\.\./g, '\\.\\.');
}

/** A path segment: encodeURIComponent plus the characters OData gives meaning to in a path (`'`, `(`, `)`). */
export function pathSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** An OData key predicate: `('text')` with quotes doubled, or `(42)` for numbers. */
/** A record's OData key: its primary key value, or `{ rowId }` for the ROWID alternate key (the Data API recordId). */
export type ODataKey = string | number | { readonly rowId: string };

export function odataKey(id: ODataKey): string {
  if (typeof id === 'object') {
    if (!/^\d+$/.test(id.rowId)) throw new RangeError('ROWID must be digits');
    return `(ROWID=${id.rowId})`;
  }
  if (typeof id === 'number') return `(${id})`;
  return `('${encodeURIComponent(id.replace(/'/g, "''"))}')`;
}

/** Extensions of files that are text by their name: their container may well answer `text/*`. */
// prettier-ignore
const TEXT_EXTENSIONS = new Set([
  'txt', 'text', 'csv', 'tsv', 'tab', 'rtf', 'xml', 'json', 'md', 'log', 'htm', 'html', 'vcf', 'ics', 'eml', 'ini',
  'yaml', 'yml', 'asc', 'hl7', 'sql',
]);

/** True when a filename's extension says the file is text. */
export function isTextFilename(filename: string | undefined): boolean {
  const m = /\.([A-Za-z0-9]+)$/.exec(filename ?? '');
  return m !== null && TEXT_EXTENSIONS.has(m[1]!.toLowerCase());
}

/** The headers of a 2xx container answer, as far as they tell whether the body can be the container. */
export interface ContainerAnswer {
  readonly status: number;
  readonly contentType: string | undefined;
  /** Content-Length when one was sent. */
  readonly contentLength: number | undefined;
  /** From Content-Disposition, when one was sent. */
  readonly filename: string | undefined;
}

/**
 * Why a 2xx `$value` answer cannot be the container's bytes, or undefined when it can be. Claris documents `text/plain`
 * as a field's default `$value` type, and one server answered a container's *filename* as `text/plain`: text is the
 * container only when the file is text by its name. An empty container is a 204, so an empty 200 is not one either.
 * (A body that ends before its Content-Length is CONTAINER_TRUNCATED, found at the end of the stream.) The reason
 * names the type only, never the filename.
 */
export function suspectContainerAnswer(a: ContainerAnswer): string | undefined {
  if (a.status === 204) return undefined; // no body, whatever its type says
  if (a.status === 200 && a.contentLength === 0) return 'an empty 200 (an empty container answers 204)';
  const mime = (a.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mime.startsWith('text/') && !isTextFilename(a.filename)) return `${mime} for a file that is not text by its name`;
  return undefined;
}
