// A `$filter` parser covering what a migration needs: eq/ne/gt/ge/lt/le on strings, numbers, dates and timestamps,
// `null`, and/or/not, parentheses, double-quoted field names with spaces, contains/startswith/endswith/tolower/toupper.
import type { SimRecord } from './dataset';
import type { FieldDef } from './schema';

export class FilterError extends Error {
  constructor(
    message: string,
    readonly code: '-1002' | '8309',
  ) {
    super(message);
  }
}

type Tok =
  | { t: 'punc'; v: '(' | ')' | ',' }
  | { t: 'str'; v: string }
  | { t: 'num'; v: number }
  | { t: 'date'; v: string }
  | { t: 'ts'; v: string }
  | { t: 'ident'; v: string; quoted: boolean };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (ch === '(' || ch === ')' || ch === ',') {
      out.push({ t: 'punc', v: ch });
      i++;
      continue;
    }
    if (ch === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new FilterError('unterminated string literal', '-1002');
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += src[i++];
      }
      out.push({ t: 'str', v: s });
      continue;
    }
    if (ch === '"') {
      const q = /^"((?:[^"]|"")*)"/.exec(src.slice(i));
      if (!q) throw new FilterError('unterminated quoted name', '-1002');
      out.push({ t: 'ident', v: q[1]!.replace(/""/g, '"'), quoted: true });
      i += q[0].length;
      continue;
    }
    const rest = src.slice(i);
    const ts = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?/.exec(rest);
    if (ts) {
      const time = ts[2]!.length === 5 ? `${ts[2]}:00` : ts[2]!;
      out.push({ t: 'ts', v: `${ts[1]}T${time}` });
      i += ts[0].length;
      continue;
    }
    const date = /^\d{4}-\d{2}-\d{2}(?![\d])/.exec(rest);
    if (date) {
      out.push({ t: 'date', v: date[0] });
      i += date[0].length;
      continue;
    }
    const num = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(rest);
    if (num) {
      out.push({ t: 'num', v: Number(num[0]) });
      i += num[0].length;
      continue;
    }
    const id = /^[\p{L}_$][\p{L}\p{N}_.$]*/u.exec(rest);
    if (id) {
      out.push({ t: 'ident', v: id[0], quoted: false });
      i += id[0].length;
      continue;
    }
    throw new FilterError(`unexpected character '${ch}' at ${i}`, '-1002');
  }
  return out;
}

type Val =
  | { k: 'null' }
  | { k: 'str'; v: string }
  | { k: 'num'; v: number }
  | { k: 'date'; v: string }
  | { k: 'ts'; v: string }
  | { k: 'bool'; v: boolean };
type Expr = (r: SimRecord) => Val;

const NULL: Val = { k: 'null' };
const bool = (v: boolean): Val => ({ k: 'bool', v });

function fieldVal(f: FieldDef, r: SimRecord): Val {
  const v = r.fields[f.name];
  if (v === undefined || v === '') return NULL;
  if (f.type === 'number') return { k: 'num', v: Number(v) };
  if (f.type === 'date') return { k: 'date', v: String(v) };
  if (f.type === 'timestamp') return { k: 'ts', v: String(v) };
  return { k: 'str', v: String(v) };
}

function compare(a: Val, b: Val): number | null {
  if (a.k === 'null' || b.k === 'null') return null;
  if (a.k === 'num' && b.k === 'num') return a.v - b.v;
  if (a.k === 'bool' || b.k === 'bool') return Number(a.v) - Number(b.v);
  let x = String(a.v);
  let y = String(b.v);
  if ((a.k === 'date' && b.k === 'ts') || (a.k === 'ts' && b.k === 'date')) {
    // A date compared with a timestamp means midnight of that date.
    if (a.k === 'date') x = `${x}T00:00:00`;
    else y = `${y}T00:00:00`;
  }
  // FileMaker's text comparisons are case-insensitive.
  if (a.k === 'str' || b.k === 'str') {
    x = x.toLowerCase();
    y = y.toLowerCase();
  }
  return x < y ? -1 : x > y ? 1 : 0;
}

const truthy = (v: Val) => v.k === 'bool' && v.v;

const OPERATORS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le', 'and', 'or']);

/**
 * Claris: "Enclose field names that include special characters, such as spaces or underscores, in double-quotation
 * marks"; `id` in any case is reserved as well. Only plain letters-and-digits names may go bare (`ROWID`, `ROWMODID`).
 */
export function needsQuoting(name: string): boolean {
  return !/^[A-Za-z][A-Za-z0-9]*$/.test(name) || name.toLowerCase() === 'id';
}

function unquotedName(name: string): FilterError {
  return new FilterError(
    `Parse failure in URL: field name ${name} must be enclosed in double quotation marks`,
    '-1002',
  );
}

/**
 * A `$select`/`$orderby` name as written: double-quoted (`""` for a quote inside) or bare; with `strict`, a bare name
 * that needs quoting is refused as the real server refuses it.
 */
export function readName(written: string, strict: boolean): string {
  const q = /^"((?:[^"]|"")*)"$/.exec(written);
  if (q) return q[1]!.replace(/""/g, '"');
  if (strict && needsQuoting(written)) throw unquotedName(written);
  return written;
}

export interface FilterOptions {
  /** Refuse bare field names that need quoting (the real server's behaviour). */
  strictNames: boolean;
}

export function parseFilter(
  src: string,
  fields: readonly FieldDef[],
  opts: FilterOptions = { strictNames: true },
): (r: SimRecord) => boolean {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const isWord = (w: string) => {
    const t = peek();
    return t?.t === 'ident' && !t.quoted && t.v === w;
  };
  const expect = (v: string) => {
    const t = toks[p++];
    if (!t || t.t !== 'punc' || t.v !== v) throw new FilterError(`expected '${v}'`, '-1002');
  };
  const fieldByName = (name: string): FieldDef => {
    const f = fields.find((x) => x.name === name);
    if (!f) throw new FilterError(`field ${name} not found`, '8309');
    return f;
  };

  const primary = (): Expr => {
    const t = toks[p++];
    if (!t) throw new FilterError('unexpected end of $filter', '-1002');
    if (t.t === 'punc' && t.v === '(') {
      const e = orExpr();
      expect(')');
      return e;
    }
    if (t.t === 'str') return () => ({ k: 'str', v: t.v });
    if (t.t === 'num') return () => ({ k: 'num', v: t.v });
    if (t.t === 'date') return () => ({ k: 'date', v: t.v });
    if (t.t === 'ts') return () => ({ k: 'ts', v: t.v });
    if (t.t === 'ident') {
      if (!t.quoted && t.v === 'null') return () => NULL;
      if (!t.quoted && (t.v === 'true' || t.v === 'false')) return () => bool(t.v === 'true');
      const next = peek();
      if (!t.quoted && next?.t === 'punc' && next.v === '(') {
        p++;
        const args: Expr[] = [];
        if (!(peek()?.t === 'punc' && (peek() as { v: string }).v === ')')) {
          args.push(orExpr());
          while (peek()?.t === 'punc' && (peek() as { v: string }).v === ',') {
            p++;
            args.push(orExpr());
          }
        }
        expect(')');
        return fn(t.v, args);
      }
      if (opts.strictNames && !t.quoted) {
        // A bare word right after a bare name (`Health Number eq …`) is a name with a space that was not quoted.
        const after = peek();
        if (needsQuoting(t.v) || (after?.t === 'ident' && !after.quoted && !OPERATORS.has(after.v)))
          throw unquotedName(t.v);
      }
      const f = fieldByName(t.v);
      if (f.type === 'container') throw new FilterError(`container field ${f.name} cannot be filtered`, '-1002');
      return (r) => fieldVal(f, r);
    }
    throw new FilterError('unexpected token', '-1002');
  };

  const fn = (name: string, args: Expr[]): Expr => {
    const [a, b] = args;
    const str = (v: Val) => (v.k === 'null' ? null : String(v.v).toLowerCase());
    switch (name) {
      case 'contains':
      case 'startswith':
      case 'endswith':
        if (!a || !b) throw new FilterError(`${name} needs two arguments`, '-1002');
        return (r) => {
          const x = str(a(r));
          const y = str(b(r));
          if (x === null || y === null) return bool(false);
          return bool(name === 'contains' ? x.includes(y) : name === 'startswith' ? x.startsWith(y) : x.endsWith(y));
        };
      case 'tolower':
      case 'toupper':
        if (!a) throw new FilterError(`${name} needs an argument`, '-1002');
        return (r) => {
          const v = a(r);
          if (v.k === 'null') return v;
          const s = String(v.v);
          return { k: 'str', v: name === 'tolower' ? s.toLowerCase() : s.toUpperCase() };
        };
      default:
        throw new FilterError(`function ${name} is not supported`, '-1002');
    }
  };

  const comparison = (): Expr => {
    const left = primary();
    const t = peek();
    if (t?.t === 'ident' && !t.quoted && ['eq', 'ne', 'gt', 'ge', 'lt', 'le'].includes(t.v)) {
      p++;
      const right = primary();
      const op = t.v;
      return (r) => {
        const a = left(r);
        const b = right(r);
        if (op === 'eq' || op === 'ne') {
          const both = a.k === 'null' && b.k === 'null';
          const eq = both || compare(a, b) === 0;
          return bool(op === 'eq' ? eq : !eq);
        }
        const c = compare(a, b);
        if (c === null) return bool(false);
        return bool(op === 'gt' ? c > 0 : op === 'ge' ? c >= 0 : op === 'lt' ? c < 0 : c <= 0);
      };
    }
    return left;
  };

  const notExpr = (): Expr => {
    if (isWord('not')) {
      p++;
      const e = notExpr();
      return (r) => bool(!truthy(e(r)));
    }
    return comparison();
  };

  const andExpr = (): Expr => {
    let e = notExpr();
    while (isWord('and')) {
      p++;
      const l = e;
      const r2 = notExpr();
      e = (r) => bool(truthy(l(r)) && truthy(r2(r)));
    }
    return e;
  };

  const orExpr = (): Expr => {
    let e = andExpr();
    while (isWord('or')) {
      p++;
      const l = e;
      const r2 = andExpr();
      e = (r) => bool(truthy(l(r)) || truthy(r2(r)));
    }
    return e;
  };

  const expr = orExpr();
  if (p !== toks.length) throw new FilterError('unexpected trailing input in $filter', '-1002');
  return (r) => truthy(expr(r));
}

/** Splits `$select`/`$orderby` lists, respecting double-quoted names that contain commas or spaces. */
export function splitList(src: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of src) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}
