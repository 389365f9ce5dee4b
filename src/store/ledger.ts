/**
 * Run bookkeeping: runs, the source manifest (the ids that existed when a phase began), the per-record import
 * ledger, and the reconciliation that proves every manifest id reached a terminal state. All writes are bulk and
 * idempotent, so a retried activity rewrites the same rows instead of adding new ones.
 */
import type pg from 'pg';
import { ManifestError } from '../errors';
import { cleanString } from './sanitize';

export const RUN_STATUSES = ['running', 'completed', 'failed', 'rolled_back', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const LEDGER_STATES = ['pending', 'imported', 'unlinked', 'skipped', 'failed'] as const;
export type LedgerState = (typeof LEDGER_STATES)[number];
/** States that account for a record; anything else is still owed. */
export const TERMINAL_STATES: readonly LedgerState[] = ['imported', 'unlinked', 'skipped', 'failed'];

const REASON = /^[A-Z][A-Z0-9_]*$/;
const BATCH = 5000;
const MESSAGE_MAX = 2000;

export interface CreateRunInput {
  runId: string;
  workflowId?: string;
  /** The run's options (flags, phases); ids and settings only. */
  options?: Record<string, unknown>;
}

/** Registers a run; a second call with the same id (a retried activity) changes nothing. */
export async function createRun(pool: pg.Pool, input: CreateRunInput): Promise<void> {
  await pool.query(
    `insert into reimport_runs (run_id, workflow_id, options) values ($1, $2, $3::jsonb)
     on conflict (run_id) do nothing`,
    [input.runId, input.workflowId ?? null, JSON.stringify(input.options ?? {})],
  );
}

/** Ends a run with its status and summary (counts per table, ids of failures; never patient data). */
export async function finishRun(
  pool: pg.Pool,
  runId: string,
  status: Exclude<RunStatus, 'running'>,
  summary: unknown,
): Promise<void> {
  const r = await pool.query(
    `update reimport_runs set status = $2, finished_at = coalesce(finished_at, now()), summary = $3::jsonb
     where run_id = $1`,
    [runId, status, JSON.stringify(summary ?? null)],
  );
  if (r.rowCount !== 1) throw new ManifestError(`finishRun: run ${runId} does not exist`);
}

export interface RunRow {
  runId: string;
  workflowId: string | null;
  status: RunStatus;
  startedAt: Date;
  finishedAt: Date | null;
  options: unknown;
  summary: unknown;
}

export async function getRun(pool: pg.Pool, runId: string): Promise<RunRow | undefined> {
  const r = await pool.query<{
    run_id: string;
    workflow_id: string | null;
    status: RunStatus;
    started_at: Date;
    finished_at: Date | null;
    options: unknown;
    summary: unknown;
  }>(`select * from reimport_runs where run_id = $1`, [runId]);
  const row = r.rows[0];
  return row
    ? {
        runId: row.run_id,
        workflowId: row.workflow_id,
        status: row.status,
        startedAt: row.started_at,
        finishedAt: row.finished_at,
        options: row.options,
        summary: row.summary,
      }
    : undefined;
}

export interface ManifestEntry {
  /** FileMaker id as the source has it; stored trimmed and lower-cased (as every target row is). */
  filemakerId: string;
  recordId?: string | number;
  modId?: string | number;
}

function normId(raw: string): string {
  return cleanString(raw).trim().toLowerCase();
}

/**
 * Records the ids a source table holds at the start of its phase. Idempotent (a re-listed id is rewritten).
 * Throws ManifestError for an empty id or one listed twice in the call: a manifest that cannot be trusted must stop
 * the phase, not be silently "fixed".
 */
export async function writeManifest(
  pool: pg.Pool,
  runId: string,
  sourceTable: string,
  entries: readonly ManifestEntry[],
): Promise<{ written: number }> {
  const seen = new Set<string>();
  const rows = entries.map((e, i) => {
    const id = normId(e.filemakerId);
    if (id === '') throw new ManifestError(`manifest ${sourceTable}: entry ${i} has an empty id`);
    if (seen.has(id)) throw new ManifestError(`manifest ${sourceTable}: id ${id} is listed twice`);
    seen.add(id);
    return {
      f: id,
      r: e.recordId === undefined ? null : String(e.recordId),
      m: e.modId === undefined ? null : String(e.modId),
    };
  });
  for (let i = 0; i < rows.length; i += BATCH) {
    await pool.query(
      `insert into source_manifest (run_id, source_table, filemaker_id, record_id, mod_id)
       select $1, $2, x.f, x.r, x.m from json_to_recordset($3::json) as x(f text, r text, m text)
       on conflict (run_id, source_table, filemaker_id) do update set record_id = excluded.record_id, mod_id = excluded.mod_id`,
      [runId, sourceTable, JSON.stringify(rows.slice(i, i + BATCH))],
    );
  }
  return { written: rows.length };
}

export interface LedgerOutcome {
  filemakerId: string;
  state: LedgerState;
  /** Required for unlinked/skipped/failed; absent for imported. `^[A-Z][A-Z0-9_]*$`. */
  reasonCode?: string;
  /** Ids, field names and codes only; never values. */
  message?: string;
  targetTable?: string;
  targetId?: string;
  s3Key?: string;
  bytes?: number;
  sha256?: string;
  sourceModId?: string | number;
}

/**
 * Writes outcomes into the ledger (one row per run, table and id), counting attempts: a record written again in the
 * same run (a retry) has its attempts incremented and its latest outcome kept. An outcome that breaks the ledger's
 * rules (a failure without a reason code) is a bug in the caller and throws before anything is written.
 */
export async function recordOutcomes(
  pool: pg.Pool,
  runId: string,
  sourceTable: string,
  outcomes: readonly LedgerOutcome[],
): Promise<{ written: number }> {
  const latest = new Map<string, Record<string, unknown>>();
  for (const o of outcomes) {
    const id = normId(o.filemakerId);
    if (id === '') throw new TypeError(`recordOutcomes ${sourceTable}: empty filemaker id`);
    if (!(LEDGER_STATES as readonly string[]).includes(o.state)) {
      throw new TypeError(`recordOutcomes ${sourceTable}/${id}: unknown state ${String(o.state)}`);
    }
    const needsReason = o.state === 'unlinked' || o.state === 'skipped' || o.state === 'failed';
    if (o.reasonCode !== undefined && !REASON.test(o.reasonCode)) {
      throw new TypeError(`recordOutcomes ${sourceTable}/${id}: malformed reason code`);
    }
    if (needsReason && o.reasonCode === undefined) {
      throw new TypeError(`recordOutcomes ${sourceTable}/${id}: state ${o.state} needs a reason code`);
    }
    if (o.state === 'imported' && o.reasonCode !== undefined) {
      throw new TypeError(`recordOutcomes ${sourceTable}/${id}: imported takes no reason code`);
    }
    latest.set(id, {
      f: id,
      st: o.state,
      rc: o.reasonCode ?? null,
      msg: o.message === undefined ? null : cleanString(o.message).slice(0, MESSAGE_MAX),
      tt: o.targetTable ?? null,
      ti: o.targetId ?? null,
      k: o.s3Key ?? null,
      b: o.bytes ?? null,
      h: o.sha256 ?? null,
      mod: o.sourceModId === undefined ? null : String(o.sourceModId),
    });
  }
  const rows = [...latest.values()];
  for (let i = 0; i < rows.length; i += BATCH) {
    await pool.query(
      `insert into import_ledger (run_id, source_table, filemaker_id, state, reason_code, message, attempts,
                                  target_table, target_id, s3_key, bytes, sha256, source_mod_id, updated_at)
       select $1, $2, x.f, x.st, x.rc, x.msg, 1, x.tt, x.ti, x.k, x.b, x.h, x.mod, now()
       from json_to_recordset($3::json)
         as x(f text, st text, rc text, msg text, tt text, ti uuid, k text, b bigint, h text, mod text)
       on conflict (run_id, source_table, filemaker_id) do update set
         state = excluded.state, reason_code = excluded.reason_code, message = excluded.message,
         attempts = import_ledger.attempts + 1, target_table = excluded.target_table, target_id = excluded.target_id,
         s3_key = excluded.s3_key, bytes = excluded.bytes, sha256 = excluded.sha256,
         object_etag = null,
         source_mod_id = excluded.source_mod_id, updated_at = now()`,
      [runId, sourceTable, JSON.stringify(rows.slice(i, i + BATCH))],
    );
  }
  return { written: rows.length };
}

export interface Reconciliation {
  sourceTable: string;
  manifest: number;
  imported: number;
  unlinked: number;
  skipped: number;
  failed: number;
  /** Manifest ids with no ledger row, or a ledger row still `pending`. */
  pending: number;
  /** Ledger rows for ids the manifest does not list (records that appeared after the phase began). */
  unexpected: number;
  /** manifest = imported + unlinked + skipped + failed, and nothing is pending. */
  balanced: boolean;
  /** The first `missingLimit` ids that are not terminal, in id order. */
  missing: string[];
}

/** Per source table: does every manifest id have a terminal ledger state? Computed in SQL. */
export async function reconcile(
  pool: pg.Pool,
  runId: string,
  sourceTable?: string,
  opts: { missingLimit?: number } = {},
): Promise<Reconciliation[]> {
  const r = await pool.query<{
    source_table: string;
    manifest: number;
    imported: number;
    unlinked: number;
    skipped: number;
    failed: number;
    pending: number;
    unexpected: number;
    missing: string[] | null;
  }>(
    `with m as (
       select source_table, filemaker_id from source_manifest where run_id = $1 and ($2::text is null or source_table = $2)
     ), l as (
       select source_table, filemaker_id, state from import_ledger where run_id = $1 and ($2::text is null or source_table = $2)
     ), j as (
       select coalesce(m.source_table, l.source_table) as source_table, coalesce(m.filemaker_id, l.filemaker_id) as id,
              m.filemaker_id is not null as listed, l.state
       from m full join l on l.source_table = m.source_table and l.filemaker_id = m.filemaker_id
     )
     select source_table,
       count(*) filter (where listed)::int as manifest,
       count(*) filter (where listed and state = 'imported')::int as imported,
       count(*) filter (where listed and state = 'unlinked')::int as unlinked,
       count(*) filter (where listed and state = 'skipped')::int as skipped,
       count(*) filter (where listed and state = 'failed')::int as failed,
       count(*) filter (where listed and (state is null or state = 'pending'))::int as pending,
       count(*) filter (where not listed)::int as unexpected,
       (array_agg(id order by id collate "C") filter (where listed and (state is null or state = 'pending')))[1:$3] as missing
     from j group by source_table order by source_table`,
    [runId, sourceTable ?? null, opts.missingLimit ?? 100],
  );
  return r.rows.map((x) => ({
    sourceTable: x.source_table,
    manifest: x.manifest,
    imported: x.imported,
    unlinked: x.unlinked,
    skipped: x.skipped,
    failed: x.failed,
    pending: x.pending,
    unexpected: x.unexpected,
    balanced: x.pending === 0 && x.manifest === x.imported + x.unlinked + x.skipped + x.failed,
    missing: x.missing ?? [],
  }));
}

export interface LedgerFile {
  runId: string;
  state: LedgerState;
  targetId: string | null;
  s3Key: string;
  bytes: number | null;
  sha256: string | null;
  sourceModId: string | null;
}

/**
 * "Never download twice": for each id, the most recent ledger row that recorded a file (an S3 key) for
 * `sourceTable`, across runs, or only in `runId` when given, or only in completed runs with `completedOnly`.
 * The FileMaker transfer quota is the scarcest resource of the whole system; a caller compares the source's modId
 * and the object's HEAD with this before downloading again.
 */
export async function ledgerLookup(
  pool: pg.Pool,
  sourceTable: string,
  ids: readonly string[],
  opts: { runId?: string; completedOnly?: boolean } = {},
): Promise<Map<string, LedgerFile>> {
  const out = new Map<string, LedgerFile>();
  const norm = [...new Set(ids.map(normId))];
  for (let i = 0; i < norm.length; i += BATCH) {
    const r = await pool.query<{
      filemaker_id: string;
      run_id: string;
      state: LedgerState;
      target_id: string | null;
      s3_key: string;
      bytes: string | null;
      sha256: string | null;
      source_mod_id: string | null;
    }>(
      `select distinct on (l.filemaker_id) l.filemaker_id, l.run_id, l.state, l.target_id, l.s3_key, l.bytes,
              l.sha256, l.source_mod_id
       from import_ledger l join reimport_runs r using (run_id)
       where l.source_table = $1 and l.filemaker_id = any($2::text[]) and l.s3_key is not null
         and l.state in ('imported', 'unlinked')
         and ($3::text is null or l.run_id = $3) and (not $4 or r.status = 'completed')
       order by l.filemaker_id, l.updated_at desc`,
      [sourceTable, norm.slice(i, i + BATCH), opts.runId ?? null, opts.completedOnly ?? false],
    );
    for (const x of r.rows) {
      out.set(x.filemaker_id, {
        runId: x.run_id,
        state: x.state,
        targetId: x.target_id,
        s3Key: x.s3_key,
        bytes: x.bytes === null ? null : Number(x.bytes),
        sha256: x.sha256,
        sourceModId: x.source_mod_id,
      });
    }
  }
  return out;
}
