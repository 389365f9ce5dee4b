// FileMaker find-request semantics, as far as a migration uses them: `=` (empty), `==x` (whole field), `=x`,
// `*` (not empty), comparisons, `a...b` ranges and the default word-prefix match. Requests are processed in order:
// find requests add to the found set, omit requests take away from it.
import { indexAt, indexListLength, type IndexList, type SimRecord, type SimTable } from './dataset';
import { parseDateInput, parseTimestampInput, type DateFormats } from './format';
import type { FieldDef } from './schema';

export type Criterion = (rec: SimRecord) => boolean;

function norm(field: FieldDef, raw: string, df: DateFormats): string | number | null {
  if (field.type === 'number') {
    const n = Number(raw);
    return raw.trim() === '' || !Number.isFinite(n) ? null : n;
  }
  if (field.type === 'date') return parseDateInput(raw, df);
  if (field.type === 'timestamp') return parseTimestampInput(raw, df);
  return raw.toLowerCase();
}

function value(field: FieldDef, rec: SimRecord): string | number {
  const v = rec.fields[field.name] ?? '';
  return typeof v === 'string' && field.type === 'text' ? v.toLowerCase() : v;
}

function cmp(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function criterion(field: FieldDef, input: string | number, df: DateFormats): Criterion {
  const name = field.name;
  const raw = String(input).trim();
  if (raw === '=') return (r) => (r.fields[name] ?? '') === '';
  if (raw === '*') return (r) => (r.fields[name] ?? '') !== '';
  if (raw.startsWith('==')) {
    const want = norm(field, raw.slice(2), df);
    return (r) => value(field, r) === want;
  }
  const range = /^(.*)\.\.\.(.*)$/.exec(raw);
  if (range) {
    const lo = norm(field, range[1] ?? '', df);
    const hi = norm(field, range[2] ?? '', df);
    return (r) => {
      const v = value(field, r);
      return v !== '' && lo !== null && hi !== null && cmp(v, lo) >= 0 && cmp(v, hi) <= 0;
    };
  }
  const op = /^(>=|<=|>|<|≥|≤)(.*)$/.exec(raw);
  if (op) {
    const want = norm(field, op[2] ?? '', df);
    const o = op[1];
    return (r) => {
      const v = value(field, r);
      if (v === '' || want === null) return false;
      const c = cmp(v, want);
      return o === '>' ? c > 0 : o === '<' ? c < 0 : o === '>=' || o === '≥' ? c >= 0 : c <= 0;
    };
  }
  if (raw.startsWith('=')) {
    const want = norm(field, raw.slice(1), df);
    return (r) => value(field, r) === want;
  }
  if (field.type !== 'text') {
    const want = norm(field, raw, df);
    return (r) => value(field, r) === want;
  }
  // FileMaker's default text match: every word of the request begins some word of the field.
  const words = raw
    .toLowerCase()
    .split(/[^\p{L}\p{N}@.]+/u)
    .filter(Boolean);
  return (r) => {
    const fieldWords = String(value(field, r))
      .split(/[^\p{L}\p{N}@.]+/u)
      .filter(Boolean);
    return words.every((w) => fieldWords.some((fw) => fw.startsWith(w)));
  };
}

/** Comparator for `_sort` / `$orderby`: empty values first ascending, ties in record (creation) order. */
export function comparator(specs: { field: FieldDef; descending: boolean }[]): (a: SimRecord, b: SimRecord) => number {
  return (a, b) => {
    for (const { field, descending } of specs) {
      const va = value(field, a);
      const vb = value(field, b);
      let c: number;
      if (va === '' || vb === '') c = va === vb ? 0 : va === '' ? -1 : 1;
      else c = cmp(va, vb);
      if (c !== 0) return descending ? -c : c;
    }
    return a.recordId - b.recordId;
  };
}

/**
 * Sorts record positions with `comparator(specs)`. Only the sort fields of each record are kept while sorting, so a
 * sort costs a few values a record rather than the records themselves. `view` adds computed fields (OData's ROWID).
 */
export function sortRows(
  table: SimTable,
  rows: IndexList,
  specs: { field: FieldDef; descending: boolean }[],
  view: (r: SimRecord) => SimRecord = (r) => r,
): Int32Array {
  const n = indexListLength(rows);
  const keys: SimRecord[] = new Array<SimRecord>(n);
  for (let j = 0; j < n; j++) {
    const i = indexAt(rows, j);
    const r = view(table.peek(i));
    const fields: SimRecord['fields'] = {};
    for (const { field } of specs) {
      const v = r.fields[field.name];
      if (v !== undefined) fields[field.name] = v;
    }
    keys[j] = { index: i, recordId: r.recordId, modId: r.modId, fields, containers: {}, quality: [] };
  }
  keys.sort(comparator(specs));
  return Int32Array.from(keys, (k) => k.index);
}
