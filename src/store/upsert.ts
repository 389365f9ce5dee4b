/**
 * Bulk idempotent upsert by `filemaker_id` into any target table. A re-run updates, never duplicates; a row that
 * did not change is left alone (its `updated_at` and `import_run_id` too), so a second identical write changes
 * nothing the fingerprint sees and nothing an operator would read as "touched".
 *
 * Bad input never costs more than the bad row: rows are checked and cleaned first (src/store/sanitize.ts), and when
 * PostgreSQL still refuses a batch for a data reason, the batch is split in halves until the refused rows are
 * isolated; every other row lands. Errors that are not about the data (connection lost, server shutting down) are
 * thrown, so the activity retries the whole call; the upsert is idempotent, so that is safe.
 *
 * Three statement shapes were measured (bench/store.ts): one JSON parameter per batch expanded with
 * jsonb_populate_recordset ('json', the default and fastest), one array per column with unnest ('unnest'), and
 * classic multi-row VALUES with a parameter per value ('values', capped by the 65,535-parameter limit). The JSON goes
 * in as jsonb: json_populate_recordset builds a hash table for every row's object and parses the text of every
 * jsonb column again, and took twice as long (bench:store, 20,000 patient-like rows, 4 at once: 10,460 rows a second
 * inserted against 20,639, 13,768 unchanged against 35,754).
 */
import type pg from 'pg';
import type { Logger } from '../logger';
import { namedStatement } from './db';
import { ident, TABLE_SPECS, type TableSpec, type TargetTableName } from './schema';
import { prepareRow, type StoreReasonCode } from './sanitize';
import { inParallel } from '../parallel';

export type UpsertStrategy = 'json' | 'unnest' | 'values';

export interface UpsertOptions {
  /** Written to `import_run_id` on rows this call inserts or changes. */
  runId?: string;
  /** Rows per statement (default 1,000). */
  batchSize?: number;
  /** Statements in flight at once, each on its own connection (default 4: measured fastest, bench/store.ts). */
  concurrency?: number;
  strategy?: UpsertStrategy;
  logger?: Logger;
  /**
   * A write that must land exactly when its rows do (the run ledger's entries for them): an INSERT whose parameters
   * start at $3, and its parameters for the rows of one statement (their input positions). It goes in the same
   * statement as their upsert (a data-modifying WITH), so a row the database refuses takes its part of it along, and
   * one that lands has it written in the same round trip. Only with the 'json' strategy.
   */
  alongside?: { text: string; values: (rows: readonly number[]) => unknown[] };
}

export type RowOutcome =
  | {
      /** Position of the row in the input. */
      readonly index: number;
      readonly filemakerId: string;
      readonly id: string;
      readonly status: 'inserted' | 'updated' | 'unchanged';
      /** Normalisations applied on the way in (for example TEXT_SANITIZED). */
      readonly findings: readonly string[];
    }
  | {
      readonly index: number;
      /** Undefined when the row had no usable filemaker_id. */
      readonly filemakerId: string | undefined;
      readonly status: 'failed';
      readonly reason: StoreReasonCode;
      /** Column and constraint names and SQLSTATEs only, never values. */
      readonly message: string;
    };

export interface UpsertResult {
  readonly table: TargetTableName;
  /** One per input row, in input order. */
  readonly outcomes: readonly RowOutcome[];
  readonly counts: { inserted: number; updated: number; unchanged: number; failed: number };
}

interface Prepared {
  index: number;
  filemakerId: string;
  id: string;
  values: Record<string, unknown>;
  findings: readonly string[];
}

// SQLSTATE classes that mean "this data", so isolating the rows is the answer: 22 data exception, 23 integrity
// constraint violation, 54 program limit exceeded (for example an index row too large). Anything else is retried.
const DATA_ERROR_CLASSES = ['22', '23', '54'];

interface PgError extends Error {
  code?: string;
  constraint?: string;
  column?: string;
}

export function isDataError(err: unknown): boolean {
  const code = (err as PgError | undefined)?.code;
  return typeof code === 'string' && DATA_ERROR_CLASSES.includes(code.slice(0, 2));
}

function reasonFor(err: PgError): Refusal {
  const code = err.code ?? 'unknown';
  const reason: StoreReasonCode =
    code === '23503'
      ? 'FOREIGN_KEY_VIOLATION'
      : code === '23514'
        ? 'CHECK_VIOLATION'
        : code === '23502'
          ? 'NOT_NULL_VIOLATION'
          : code === '23505'
            ? 'UNIQUE_VIOLATION'
            : 'DB_REJECTED';
  // err.detail and err.message can quote the offending value, so only names and the SQLSTATE are kept.
  const parts = [`sqlstate ${code}`];
  if (err.constraint) parts.push(`constraint ${err.constraint}`);
  if (err.column) parts.push(`column ${err.column}`);
  return { reason, message: `database refused the row: ${parts.join(', ')}` };
}

export type Refusal = { reason: StoreReasonCode; message: string };

/**
 * Writes `items` with `write`; when the database refuses a statement for a data reason, halves it until the refused
 * items stand alone (one statement is all-or-nothing: about 2·log2(n) statements for one bad item in n) and hands
 * each of those to `refused`, so every other item lands. Any other error (connection lost, deadlock, serialization
 * failure, server shutting down) is thrown: the caller retries the whole call, which must be idempotent.
 */
export async function writeIsolatingRefusals<T>(
  items: readonly T[],
  write: (batch: readonly T[]) => Promise<void>,
  refused: (item: T, refusal: Refusal) => void,
): Promise<void> {
  if (items.length === 0) return;
  try {
    await write(items);
  } catch (err) {
    if (!isDataError(err)) throw err;
    if (items.length === 1) return refused(items[0]!, reasonFor(err as PgError));
    const mid = Math.ceil(items.length / 2);
    await writeIsolatingRefusals(items.slice(0, mid), write, refused);
    await writeIsolatingRefusals(items.slice(mid), write, refused);
  }
}

interface Statement {
  text: string;
  values: unknown[];
  /** Set for a text that is the same on every call (prepared once per connection). */
  name?: string;
}

/** What every statement for a table shares (the same on every call, so built once per table). */
interface TableStatement {
  insert: string;
  tail: string;
  /** The 'json' strategy's whole statement: its text never varies, so it is a named (prepared) statement. */
  json: { name: string; text: string };
}

const tableStatements = new Map<TargetTableName, TableStatement>();

function tableStatement(spec: TableSpec): TableStatement {
  const cached = tableStatements.get(spec.name);
  if (cached) return cached;
  const cols = spec.columns.map((c) => c.name);
  const colList = cols.map(ident).join(', ');
  const tbl = ident(spec.name);
  const changing = cols.filter((c) => c !== 'id' && c !== 'filemaker_id');
  const set = changing.map((c) => `${ident(c)} = excluded.${ident(c)}`).join(', ');
  // Rows are compared column by column (jsonb compares by value); only a real change touches the row.
  const distinct = `(${changing.map((c) => `t.${ident(c)}`).join(', ')}) is distinct from (${changing
    .map((c) => `excluded.${ident(c)}`)
    .join(', ')})`;
  const tail =
    `on conflict (filemaker_id) do update set ${set}, updated_at = now(), import_run_id = excluded.import_run_id ` +
    `where ${distinct} returning t.filemaker_id, (t.xmax = 0) as inserted`;
  const insert = `insert into ${tbl} as t (${colList}, import_run_id)`;
  const json = namedStatement(
    `${insert} select ${colList}, $2::text from jsonb_populate_recordset(null::${tbl}, $1::jsonb) ${tail}`,
  );
  const built = { insert, tail, json };
  tableStatements.set(spec.name, built);
  return built;
}

function buildStatement(
  spec: TableSpec,
  strategy: UpsertStrategy,
  rows: readonly Prepared[],
  runId: string | null,
  alongside?: UpsertOptions['alongside'],
) {
  const { insert, tail, json } = tableStatement(spec);
  const pgType = (c: (typeof spec.columns)[number]) =>
    c.type === 'char1' ? 'text' : c.type === 'jsonb' ? 'jsonb' : c.type;

  if (strategy === 'json') {
    const values = [JSON.stringify(rows.map((r) => r.values)), runId];
    if (!alongside) return { ...json, values } satisfies Statement;
    // Data-modifying WITH: always run to completion, in the same statement (and so the same transaction).
    const named = namedStatement(`with alongside as (${alongside.text}) ${json.text}`);
    return { ...named, values: [...values, ...alongside.values(rows.map((r) => r.index))] } satisfies Statement;
  }
  if (alongside) throw new TypeError(`upsert ${spec.name}: a write alongside needs the 'json' strategy`);
  if (strategy === 'unnest') {
    const arrays = spec.columns.map((c) =>
      rows.map((r) => {
        const v = r.values[c.name];
        return c.type === 'jsonb' && v !== null ? JSON.stringify(v) : v;
      }),
    );
    const params = spec.columns.map((c, i) => `$${i + 1}::${pgType(c)}[]`).join(', ');
    const text = `${insert} select u.*, $${spec.columns.length + 1}::text from unnest(${params}) as u ${tail}`;
    return { text, values: [...arrays, runId] } satisfies Statement;
  }
  const values: unknown[] = [runId];
  const tuples = rows.map((r) => {
    const ph = spec.columns.map((c) => {
      const v = r.values[c.name];
      values.push(c.type === 'jsonb' && v !== null ? JSON.stringify(v) : v);
      return `$${values.length}::${pgType(c)}`;
    });
    return `(${ph.join(', ')}, $1::text)`;
  });
  return { text: `${insert} values ${tuples.join(', ')} ${tail}`, values } satisfies Statement;
}

/** Largest batch the 'values' strategy can send (PostgreSQL allows 65,535 parameters per statement). */
function maxBatch(spec: TableSpec, strategy: UpsertStrategy, wanted: number): number {
  if (strategy !== 'values') return wanted;
  return Math.max(1, Math.min(wanted, Math.floor(65_535 / (spec.columns.length + 1)) - 1));
}

/**
 * Upserts `rows` (mapper output: exactly the columns of docs/target-schema.md) into `table`. Never throws for bad
 * rows: each comes back as a `failed` outcome with a reason code. Throws only when the database itself is failing.
 */
export async function upsertRows(
  pool: pg.Pool,
  table: TargetTableName,
  rows: readonly unknown[],
  opts: UpsertOptions = {},
): Promise<UpsertResult> {
  const spec = TABLE_SPECS[table];
  const strategy = opts.strategy ?? 'json';
  const runId = opts.runId ?? null;
  const outcomes: (RowOutcome | undefined)[] = new Array<RowOutcome | undefined>(rows.length);
  const fail = (index: number, filemakerId: string | undefined, reason: StoreReasonCode, message: string) => {
    outcomes[index] = { index, filemakerId, status: 'failed', reason, message };
  };

  // Validate, and keep the last of duplicate ids: ON CONFLICT cannot touch one row twice in a statement, and the
  // later record is the newer reading of the same source id.
  const byId = new Map<string, Prepared>();
  rows.forEach((row, index) => {
    const p = prepareRow(spec, row);
    const rawId = (row as { filemaker_id?: unknown } | null)?.filemaker_id;
    const fmId = typeof rawId === 'string' ? rawId : undefined;
    if (!p.ok) return fail(index, fmId, p.reason, p.message);
    const id = p.values.filemaker_id as string;
    const earlier = byId.get(id);
    if (earlier) fail(earlier.index, id, 'DUPLICATE_ID', `filemaker_id repeated at input row ${index}`);
    byId.set(id, { index, filemakerId: id, id: p.values.id as string, values: p.values, findings: p.findings });
  });

  const prepared = [...byId.values()].sort((a, b) => a.index - b.index);
  const size = maxBatch(spec, strategy, opts.batchSize ?? 1000);
  const batches: Prepared[][] = [];
  for (let i = 0; i < prepared.length; i += size) batches.push(prepared.slice(i, i + size));

  let isolated = 0;
  const refused = (only: Prepared, r: Refusal) => {
    isolated++;
    fail(only.index, only.filemakerId, r.reason, r.message);
  };
  const writeBatch = async (batch: readonly Prepared[]): Promise<void> => {
    const stmt = buildStatement(spec, strategy, batch, runId, opts.alongside);
    const result = await pool.query<{ filemaker_id: string; inserted: boolean }>(stmt);
    const written = new Map(result.rows.map((r) => [r.filemaker_id, r.inserted]));
    for (const p of batch) {
      const w = written.get(p.filemakerId);
      const status = w === undefined ? 'unchanged' : w ? 'inserted' : 'updated';
      outcomes[p.index] = {
        index: p.index,
        filemakerId: p.filemakerId,
        id: p.id,
        status,
        findings: p.findings,
      };
    }
  };

  const write = (batch: Prepared[]) => writeIsolatingRefusals(batch, writeBatch, refused);

  // A fixed number of lanes take batches in order; ids are unique across batches, so they never contend. After an
  // error no batch is started and the ones in flight finish before it is thrown (the caller retries the whole call).
  await inParallel(batches, Math.max(1, opts.concurrency ?? 4), write);

  const done = outcomes.map(
    (o, i) =>
      o ?? {
        index: i,
        filemakerId: undefined,
        status: 'failed' as const,
        reason: 'DB_REJECTED' as const,
        message: 'row was not written',
      },
  );
  const counts = { inserted: 0, updated: 0, unchanged: 0, failed: 0 };
  for (const o of done) counts[o.status]++;
  opts.logger?.info({ table, runId, rows: rows.length, ...counts, isolated, strategy }, 'upsert done');
  return { table, outcomes: done, counts };
}
