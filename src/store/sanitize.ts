/**
 * Row checks before a row reaches PostgreSQL. The mappers already clean values (src/domain/normalize.ts); this is
 * the store's own guard, because one value PostgreSQL refuses would otherwise fail a whole multi-row statement.
 *
 * Documented normalisations (the row still lands, a finding is returned):
 *   - TEXT_SANITIZED: NUL characters removed (PostgreSQL rejects U+0000 in text and jsonb) and lone UTF-16
 *     surrogates (text that was never valid Unicode, so it has no UTF-8 form) replaced by U+FFFD, in text columns
 *     and anywhere inside JSON (keys too).
 *   - a column left out of the row takes its DDL default (jsonb_populate_recordset would give it NULL).
 * Everything else that PostgreSQL would refuse is rejected with a store reason code (STORE_REASON_CODES); nothing is
 * truncated here: clinical text is only ever cut by a mapper, which keeps the full value in filemaker_metadata.
 *
 * Messages name columns and codes, never values.
 */
import type { ColumnSpec, TableSpec, TargetTableName } from './schema';
import { STORE_OWNED_COLUMNS, TABLE_SPECS } from './schema';
import { setOwnKey } from '../domain/own-key';

export const STORE_REASON_CODES = {
  MISSING_REQUIRED: 'A column that may not be null is missing or null.',
  UNKNOWN_COLUMN: 'The row has a column the target table does not have.',
  INVALID_FILEMAKER_ID: 'filemaker_id is empty, not lower-case, or longer than the limit.',
  INVALID_UUID: 'A uuid column holds something that is not a UUID.',
  INVALID_VALUE: 'A value has the wrong type, is out of range, or is outside the allowed list.',
  VALUE_TOO_LONG: 'A text value is longer than its column limit.',
  DATE_IMPOSSIBLE: 'A date that is no calendar date, or outside 1800-2199.',
  DATE_UNPARSEABLE: 'A date or timestamp in no accepted form (timestamps need a UTC offset).',
  DUPLICATE_ID: 'The same filemaker_id appears more than once in one write; the last one was written.',
  FOREIGN_KEY_VIOLATION: 'The database refused the row: a referenced row does not exist.',
  CHECK_VIOLATION: 'The database refused the row: a check constraint failed.',
  NOT_NULL_VIOLATION: 'The database refused the row: a required column was null.',
  UNIQUE_VIOLATION: 'The database refused the row: another row already has its key.',
  DB_REJECTED: 'The database refused the row for another data reason (see the SQLSTATE in the message).',
} as const;
export type StoreReasonCode = keyof typeof STORE_REASON_CODES;

export type PreparedRow =
  | { ok: true; values: Record<string, unknown>; findings: readonly 'TEXT_SANITIZED'[] }
  | { ok: false; reason: StoreReasonCode; message: string };

const NEEDS_CLEANING = /[\u0000\ud800-\udfff]/;

const NUL = /\u0000/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}(?::?\d{2})?)$/i;
const INT32_MAX = 2_147_483_647;

class Reject extends Error {
  constructor(
    readonly reason: StoreReasonCode,
    message: string,
  ) {
    super(message);
  }
}

/** Removes NUL and replaces lone surrogates; returns the same string when there is nothing to do. */
export function cleanString(s: string): string {
  if (!NEEDS_CLEANING.test(s)) return s;
  return s.replace(NUL, '').replace(LONE_SURROGATE, '\ufffd');
}

function codePointLength(s: string, limit: number): number {
  // UTF-16 length ≥ code points, so only values that might be too long pay for the walk.
  if (s.length <= limit) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function validDate(y: number, m: number, d: number): boolean {
  if (y < 1800 || y > 2199 || m < 1 || m > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = m === 2 ? (leap ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
  return d <= days;
}

interface Ctx {
  sanitized: boolean;
}

/**
 * Whether a JSON value needs a cleaned copy (a NUL, a lone surrogate, a Date, an undefined). Throws for values JSON
 * cannot hold. Walking without allocating keeps the common, clean case cheap: the upsert's throughput depends on it.
 */
function jsonNeedsCopy(value: unknown, col: string, depth: number): boolean {
  if (depth > 64) throw new Reject('INVALID_VALUE', `${col}: JSON nested deeper than 64 levels`);
  if (value === null || typeof value === 'boolean') return false;
  if (typeof value === 'string') return NEEDS_CLEANING.test(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Reject('INVALID_VALUE', `${col}: JSON holds a non-finite number`);
    return false;
  }
  if (Array.isArray(value)) {
    let copy = false;
    for (const v of value as unknown[]) if (v === undefined || jsonNeedsCopy(v, col, depth + 1)) copy = true;
    return copy;
  }
  if (value instanceof Date) return true;
  if (typeof value === 'object' && !Buffer.isBuffer(value)) {
    let copy = false;
    const o = value as Record<string, unknown>;
    for (const k in o) {
      if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
      const v = o[k];
      if (v === undefined || NEEDS_CLEANING.test(k) || jsonNeedsCopy(v, col, depth + 1)) copy = true;
    }
    return copy;
  }
  throw new Reject('INVALID_VALUE', `${col}: JSON holds a ${typeof value}`);
}

function cleanJson(value: unknown, col: string, ctx: Ctx, depth: number): unknown {
  if (depth > 64) throw new Reject('INVALID_VALUE', `${col}: JSON nested deeper than 64 levels`);
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const c = cleanString(value);
    if (c !== value) ctx.sanitized = true;
    return c;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Reject('INVALID_VALUE', `${col}: JSON holds a non-finite number`);
    return value;
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new Reject('DATE_IMPOSSIBLE', `${col}: JSON holds an invalid Date`);
    return value.toISOString();
  }
  if (Array.isArray(value))
    return value.map((v: unknown) => (v === undefined ? null : cleanJson(v, col, ctx, depth + 1)));
  if (typeof value === 'object' && !Buffer.isBuffer(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined) continue;
      const ck = cleanString(k);
      if (ck !== k) ctx.sanitized = true;
      // A key named `__proto__` (a FileMaker field may be called so) stays a key of the copy.
      setOwnKey(out, ck, cleanJson(v, col, ctx, depth + 1));
    }
    return out;
  }
  throw new Reject('INVALID_VALUE', `${col}: JSON holds a ${typeof value}`);
}

function cleanValue(spec: ColumnSpec, value: unknown, ctx: Ctx): unknown {
  const col = spec.name;
  switch (spec.type) {
    case 'text':
    case 'char1': {
      if (typeof value !== 'string') throw new Reject('INVALID_VALUE', `${col}: expected text, got ${typeof value}`);
      const c = cleanString(value);
      if (c !== value) ctx.sanitized = true;
      if (spec.type === 'char1' && codePointLength(c, 1) !== 1) {
        throw new Reject('INVALID_VALUE', `${col}: expected one character`);
      }
      if (spec.maxLength !== undefined && codePointLength(c, spec.maxLength) > spec.maxLength) {
        throw new Reject('VALUE_TOO_LONG', `${col}: longer than ${spec.maxLength} characters`);
      }
      if (spec.oneOf && !spec.oneOf.includes(c)) throw new Reject('INVALID_VALUE', `${col}: not an allowed value`);
      return c;
    }
    case 'uuid':
      if (typeof value !== 'string' || !UUID.test(value)) throw new Reject('INVALID_UUID', `${col}: not a UUID`);
      return value.toLowerCase();
    case 'boolean':
      if (typeof value !== 'boolean') throw new Reject('INVALID_VALUE', `${col}: expected a boolean`);
      return value;
    case 'integer':
    case 'bigint': {
      const n = typeof value === 'bigint' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
        throw new Reject('INVALID_VALUE', `${col}: expected a whole number`);
      }
      if (spec.type === 'integer' && Math.abs(n) > INT32_MAX) {
        throw new Reject('INVALID_VALUE', `${col}: out of the integer range`);
      }
      return n;
    }
    case 'date': {
      let y: number, m: number, d: number;
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new Reject('DATE_IMPOSSIBLE', `${col}: invalid Date`);
        [y, m, d] = [value.getUTCFullYear(), value.getUTCMonth() + 1, value.getUTCDate()];
      } else if (typeof value === 'string') {
        const p = DATE.exec(value);
        if (!p) throw new Reject('DATE_UNPARSEABLE', `${col}: expected YYYY-MM-DD`);
        [y, m, d] = [Number(p[1]), Number(p[2]), Number(p[3])];
      } else {
        throw new Reject('DATE_UNPARSEABLE', `${col}: expected a date, got ${typeof value}`);
      }
      if (!validDate(y, m, d)) throw new Reject('DATE_IMPOSSIBLE', `${col}: not a calendar date in 1800-2199`);
      return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
    }
    case 'timestamptz': {
      if (value instanceof Date) {
        const y = value.getUTCFullYear();
        if (Number.isNaN(value.getTime()) || y < 1800 || y > 2199) {
          throw new Reject('DATE_IMPOSSIBLE', `${col}: invalid Date or outside 1800-2199`);
        }
        return value.toISOString();
      }
      if (typeof value !== 'string') throw new Reject('DATE_UNPARSEABLE', `${col}: expected a timestamp`);
      const p = TIMESTAMP.exec(value);
      // A timestamp without an offset would be read in the session's zone: refuse rather than guess.
      if (!p) throw new Reject('DATE_UNPARSEABLE', `${col}: expected an ISO 8601 timestamp with a UTC offset`);
      const [y, mo, d, h, mi, s] = [p[1], p[2], p[3], p[4], p[5], p[6] ?? '0'].map(Number) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      if (!validDate(y, mo, d) || h > 24 || mi > 59 || s > 60 || (h === 24 && (mi > 0 || s > 0))) {
        throw new Reject('DATE_IMPOSSIBLE', `${col}: not a real time or outside 1800-2199`);
      }
      return value;
    }
    case 'jsonb':
      return cleanDocumentValue(value, col, ctx);
  }
}

function cleanDocumentValue(value: unknown, col: string, ctx: Ctx): unknown {
  return jsonNeedsCopy(value, col, 0) ? cleanJson(value, col, ctx, 0) : value;
}

export type CleanedDocument =
  { ok: true; value: unknown; sanitized: boolean } | { ok: false; reason: StoreReasonCode; message: string };

/**
 * The cleaning a jsonb column of a target row gets, for any other document on its way to PostgreSQL (a whole row
 * sent as JSON, a folded JSON column): NUL removed and lone surrogates replaced in every string and every key, at
 * any depth. Returns the value itself when there is nothing to clean. `name` (a column or table name, never a value)
 * labels the message of a document JSON cannot hold.
 */
export function cleanDocument(value: unknown, name: string): CleanedDocument {
  try {
    const ctx: Ctx = { sanitized: false };
    const cleaned = cleanDocumentValue(value, name, ctx);
    return { ok: true, value: cleaned, sanitized: ctx.sanitized };
  } catch (err) {
    if (err instanceof Reject) return { ok: false, reason: err.reason, message: err.message };
    throw err;
  }
}

const OWNED = new Set<string>(STORE_OWNED_COLUMNS);

/** Validates and cleans one mapper row for `spec`; never throws for bad data. */
/**
 * Why the store would refuse a row of `table` (the reason code and message), or undefined when it would take it: the
 * checks `upsertRows` makes before writing, for a dry run that writes nothing.
 */
export function refusalOf(
  table: TargetTableName,
  row: unknown,
): { reason: StoreReasonCode; message: string } | undefined {
  const p = prepareRow(TABLE_SPECS[table], row);
  return p.ok ? undefined : { reason: p.reason, message: p.message };
}

export function prepareRow(spec: TableSpec, row: unknown): PreparedRow {
  try {
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      throw new Reject('INVALID_VALUE', 'row is not an object');
    }
    const input = row as Record<string, unknown>;
    const known = columnSet(spec);
    for (const key of Object.keys(input)) {
      if (!known.has(key) && !OWNED.has(key)) {
        // The column NAME comes from code (a mapper), not from patient data, so it may appear in the message.
        throw new Reject('UNKNOWN_COLUMN', `column ${cleanString(key).slice(0, 64)} is not in ${spec.name}`);
      }
    }
    const fmId = input.filemaker_id;
    if (typeof fmId !== 'string' || fmId === '' || fmId !== fmId.toLowerCase() || fmId.length > 200) {
      throw new Reject('INVALID_FILEMAKER_ID', 'filemaker_id is empty, not lower-case or too long');
    }
    const ctx: Ctx = { sanitized: false };
    const values: Record<string, unknown> = {};
    for (const c of spec.columns) {
      let v = input[c.name];
      if (v === undefined && c.default !== undefined) v = c.default;
      if (v === undefined || v === null) {
        if (!c.nullable) throw new Reject('MISSING_REQUIRED', `${c.name}: required`);
        values[c.name] = null;
        continue;
      }
      values[c.name] = cleanValue(c, v, ctx);
    }
    if (values.filemaker_id !== fmId) throw new Reject('INVALID_FILEMAKER_ID', 'filemaker_id holds NUL or surrogates');
    const meta = values.filemaker_metadata;
    if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
      throw new Reject('INVALID_VALUE', 'filemaker_metadata: expected a JSON object');
    }
    return { ok: true, values, findings: ctx.sanitized ? ['TEXT_SANITIZED'] : [] };
  } catch (err) {
    if (err instanceof Reject) return { ok: false, reason: err.reason, message: err.message };
    throw err;
  }
}

const columnSets = new WeakMap<TableSpec, Set<string>>();
function columnSet(spec: TableSpec): Set<string> {
  let s = columnSets.get(spec);
  if (!s) {
    s = new Set(spec.columns.map((c) => c.name));
    columnSets.set(spec, s);
  }
  return s;
}
