/**
 * The import ledger (`import_ledger`): every record's terminal state per run, written in bulk (one statement per
 * chunk, or riding along a files phase's row upsert), balanced against the manifest, and read back by the files
 * phases: "never download twice".
 */
import type pg from 'pg';
import { namedStatement, type Pool } from './db';
import { cleanString } from './sanitize';

const BATCH = 5000;

/** FileMaker ids are stored trimmed and lower-cased (as every target row is). */
function normId(raw: string): string {
  return cleanString(raw).trim().toLowerCase();
}

export interface LedgerFile {
  runId: string;
  /** Only states that keep a file are looked up. */
  state: 'imported' | 'unlinked';
  targetId: string | null;
  s3Key: string;
  bytes: number | null;
  sha256: string | null;
  /** The object's ETag when its upload or relink confirmed its size and SHA-256 (see reconcileObjects). */
  objectEtag: string | null;
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
      state: LedgerFile['state'];
      target_id: string | null;
      s3_key: string;
      bytes: string | null;
      sha256: string | null;
      object_etag: string | null;
      source_mod_id: string | null;
    }>(
      `select distinct on (l.filemaker_id) l.filemaker_id, l.run_id, l.state, l.target_id, l.s3_key, l.bytes,
              l.sha256, l.object_etag, l.source_mod_id
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
        objectEtag: x.object_etag,
        sourceModId: x.source_mod_id,
      });
    }
  }
  return out;
}

export interface LedgerEntry {
  /**
   * The record's id in FileMaker. Left out, it is the manifest's record of `filemakerId`: among records whose id can
   * key a row, an id names exactly one.
   */
  recordId?: string;
  /** The normalised `id`; null only for a record without one. */
  filemakerId: string | null;
  state: 'imported' | 'unlinked' | 'skipped' | 'failed';
  reasonCode?: string;
  message?: string;
  targetTable?: string;
  targetId?: string;
  s3Key?: string;
  bytes?: number;
  sha256?: string;
  /** The stored object's ETag when its upload (or relink) confirmed it; see reconcileObjects. */
  objectEtag?: string;
  sourceModId?: string;
  /** Already written, in the same statement as its target row (see FileWrites.upsert); only to be counted. */
  recorded?: boolean;
}

/**
 * Each record of the run's manifest of `table` with its ledger state (null for none). A union grouped by record, not
 * a join: right after a table is imported the planner's statistics do not know the run yet, estimate one row on each
 * side, and chose a nested loop that read every ledger row of the table for every manifest record (28 s for 10,697
 * contact details, the same again for the records without a terminal state). Grouping costs one pass over each side,
 * whatever the statistics say. Both keys are (run, table, record id): each side has at most one row per record.
 */
const RECORD_STATES = `select record_id, max(state) as state
   from (select record_id, null::text as state, true as listed from source_manifest
          where run_id = $1 and source_table = $2
         union all
         select record_id, state, false from import_ledger where run_id = $1 and source_table = $2) u
  group by record_id having bool_or(listed)`;

/**
 * How the run's ledger of `table` balances against its manifest, record by record: the manifest's records by their
 * ledger state (`missing` for none), and the first record ids without a terminal state.
 */
export async function ledgerBalance(
  pool: Pool,
  runId: string,
  table: string,
): Promise<{
  manifest: number;
  by: Partial<Record<LedgerEntry['state'] | 'pending' | 'missing', number>>;
  missing: string[];
}> {
  const r = await pool.query<{ state: string | null; n: number }>(
    `select state, count(*)::int as n from (${RECORD_STATES}) r group by state`,
    [runId, table],
  );
  const by: Partial<Record<LedgerEntry['state'] | 'pending' | 'missing', number>> = Object.fromEntries(
    r.rows.map((x) => [x.state ?? 'missing', x.n]),
  );
  const unfinished = (by.pending ?? 0) + (by.missing ?? 0);
  const missing =
    unfinished === 0
      ? []
      : (
          await pool.query<{ record_id: string }>(
            `select record_id from (${RECORD_STATES}) r
              where state is null or state not in ('imported', 'unlinked', 'skipped', 'failed')
              order by length(record_id), record_id limit 50`,
            [runId, table],
          )
        ).rows.map((x) => x.record_id);
  return { manifest: r.rows.reduce((s, x) => s + x.n, 0), by, missing };
}

/**
 * The ledger write of the files phases and the record chunks: every entry's terminal state (attempts counted), as a
 * statement whose three parameters (run, source table, the entries as JSON from ledgerJson) start at `$first`, so it
 * can also ride along another statement (see upsertRows' `alongside`).
 */
function ledgerInsert(first: number, resolve = true): string {
  const [run, table, entries] = [first, first + 1, first + 2].map((n) => `$${n}`);
  // An entry without a record id is the manifest's one record of its id; none there leaves record_id null, which
  // the table refuses: an entry is never written against a record the manifest does not hold. Entries that all name
  // their record skip the join (`resolve` false): the planner, not knowing that, would read the table's whole manifest.
  const byId = resolve
    ? `left join source_manifest m on e.record_id is null and m.run_id = ${run} and m.source_table = ${table}
                               and m.filemaker_id = e.filemaker_id and m.id_issue is null`
    : '';
  const recordId = resolve ? 'coalesce(e.record_id, m.record_id)' : 'e.record_id';
  return `insert into import_ledger (run_id, source_table, record_id, filemaker_id, state, reason_code, message,
                            target_table, target_id, s3_key, bytes, sha256, object_etag, source_mod_id)
 select ${run}, ${table}, ${recordId}, e.filemaker_id, e.state, e.reason_code, e.message,
        e.target_table, e.target_id::uuid, e.s3_key, e.bytes, e.sha256, e.object_etag, e.source_mod_id
   from jsonb_to_recordset(${entries}::jsonb) as e(record_id text, filemaker_id text, state text, reason_code text,
        message text, target_table text, target_id text, s3_key text, bytes bigint, sha256 text, object_etag text,
        source_mod_id text)
   ${byId}
 on conflict (run_id, source_table, record_id) do update set
   filemaker_id = excluded.filemaker_id, state = excluded.state, reason_code = excluded.reason_code, message = excluded.message,
   target_table = excluded.target_table, target_id = excluded.target_id, s3_key = excluded.s3_key,
   bytes = excluded.bytes, sha256 = excluded.sha256, source_mod_id = excluded.source_mod_id,
   object_etag = excluded.object_etag,
   attempts = import_ledger.attempts + 1, updated_at = now()`;
}

/** The entries as ledgerInsert's JSON parameter. */
export function ledgerJson(entries: readonly LedgerEntry[]): string {
  return JSON.stringify(
    entries.map((e) => ({
      record_id: e.recordId ?? null,
      filemaker_id: e.filemakerId,
      state: e.state,
      reason_code: e.state === 'imported' ? null : (e.reasonCode ?? null),
      message: e.message === undefined ? null : cleanString(e.message),
      target_table: e.targetTable ?? null,
      target_id: e.targetId ?? null,
      s3_key: e.s3Key ?? null,
      bytes: e.bytes ?? null,
      sha256: e.sha256 ?? null,
      object_etag: e.objectEtag ?? null,
      source_mod_id: e.sourceModId ?? null,
    })),
  );
}

const RECORD_LEDGER = ledgerInsert(1);
const RECORD_LEDGER_KEYED = ledgerInsert(1, false);

/** Writes every entry's terminal state (attempts counted), in one named statement. */
export async function writeLedger(
  pool: Pool,
  runId: string,
  table: string,
  entries: readonly LedgerEntry[],
): Promise<void> {
  const keyed = entries.every((e) => e.recordId !== undefined);
  await pool.query({
    ...namedStatement(keyed ? RECORD_LEDGER_KEYED : RECORD_LEDGER),
    values: [runId, table, ledgerJson(entries)],
  });
}

/** The ledger write as it rides along a row upsert whose own two parameters come first (see upsertRows' `alongside`). */
export const LEDGER_ALONGSIDE = ledgerInsert(3);

/** LEDGER_ALONGSIDE for entries that all name their manifest record (no manifest join). */
export const LEDGER_ALONGSIDE_KEYED = ledgerInsert(3, false);

/** The terminal ledger entries of the run's records `recordIds` of `table` (a batch retried or resumed). */
export async function terminalEntries(
  pool: Pool,
  runId: string,
  table: string,
  recordIds: readonly string[],
): Promise<
  { record_id: string; filemaker_id: string | null; state: LedgerEntry['state']; reason_code: string | null }[]
> {
  const finished = await pool.query<{
    record_id: string;
    filemaker_id: string | null;
    state: LedgerEntry['state'];
    reason_code: string | null;
  }>(
    `select record_id, filemaker_id, state, reason_code from import_ledger
      where run_id = $1 and source_table = $2 and record_id = any($3::text[])
        and state in ('imported', 'unlinked', 'skipped', 'failed')`,
    [runId, table, recordIds],
  );
  return finished.rows;
}

/**
 * Each id's latest ledger entry with a record version (modId) in a completed run other than `runId`: its state,
 * reason and that modId.
 */
export async function latestEntriesElsewhere(
  pool: Pool,
  table: string,
  ids: readonly string[],
  runId: string,
): Promise<{ filemaker_id: string; state: string; reason_code: string | null; mod: string }[]> {
  const r = await pool.query<{ filemaker_id: string; state: string; reason_code: string | null; mod: string }>(
    `select distinct on (l.filemaker_id) l.filemaker_id, l.state, l.reason_code, l.source_mod_id as mod
       from import_ledger l join reimport_runs r using (run_id)
      where l.source_table = $1 and l.filemaker_id = any($2::text[]) and l.run_id <> $3 and r.status = 'completed'
        and l.source_mod_id is not null
      order by l.filemaker_id, l.updated_at desc`,
    [table, ids, runId],
  );
  return r.rows;
}

/** The latest ledger message of image `id`, of any run, that starts with `prefix`. */
export async function latestImageMessage(pool: Pool, id: string, prefix: string): Promise<string | null> {
  const r = await pool.query<{ message: string | null }>(
    `select message from import_ledger
      where source_table = 'API_Images' and filemaker_id = $1 and starts_with(message, $2)
      order by updated_at desc limit 1`,
    [id, prefix],
  );
  return r.rows[0]?.message ?? null;
}

export interface RecordedObject {
  filemaker_id: string;
  s3_key: string;
  bytes: string | null;
  sha256: string | null;
  object_etag: string | null;
  /** The entry was carried over from an earlier run (an incremental run neither read nor wrote its record). */
  carried: boolean;
}

/** The objects a run recorded for `table`, in id order. */
export async function recordedObjects(pool: Pool, runId: string, table: string): Promise<RecordedObject[]> {
  const r = await pool.query<RecordedObject>(
    `select filemaker_id, s3_key, bytes::text, sha256, object_etag, carried_from is not null as carried from import_ledger
      where run_id = $1 and source_table = $2 and state in ('imported', 'unlinked') and s3_key is not null
      order by filemaker_id`,
    [runId, table],
  );
  return r.rows;
}

/** The average size of the files the ledger recorded for `table` (any run), as text; null when it has none. */
export async function averageRecordedBytes(pool: Pool, table: string): Promise<string | null | undefined> {
  const avg = await pool.query<{ avg: string | null }>(
    `select avg(bytes)::bigint::text as avg from import_ledger
      where source_table = $1 and bytes is not null and state in ('imported', 'unlinked')`,
    [table],
  );
  return avg.rows[0]?.avg;
}

const WRITTEN_BACK = `update import_ledger l set source_mod_id = t.to_mod
  from unnest($3::text[], $4::text[], $5::text[]) as t(fid, from_mod, to_mod)
 where l.run_id = $1 and l.source_table = $2 and l.filemaker_id = t.fid and l.source_mod_id = t.from_mod`;

/** A record's modId before and after a write-back. */
export interface ModIdChange {
  filemakerId: string;
  from: string;
  to: string;
}

/**
 * Write-backs changed these records from modId `from` to `to`, and nothing else did: each file's ledger entry (still
 * at `from`) takes `to` as the record version its object corresponds to. One named statement.
 */
export async function recordWrittenBack(
  pool: Pool,
  runId: string,
  table: string,
  changes: readonly ModIdChange[],
): Promise<void> {
  await pool.query({
    ...namedStatement(WRITTEN_BACK),
    values: [runId, table, changes.map((x) => x.filemakerId), changes.map((x) => x.from), changes.map((x) => x.to)],
  });
}

/**
 * How many records of the run's manifest of `table` (with `work`, of its work list) an earlier run settled at the
 * version the manifest read, so that a batch will most likely download nothing for them: a file stored with the ETag
 * of its confirmed upload (relinked from a listing), or none to download (an empty container, a container that broke,
 * a record refused). An estimate the phase sizes its batches by; each batch decides every file again.
 */
export async function relinkableCount(pool: Pool, runId: string, table: string, work: boolean): Promise<number> {
  const r = await pool.query<{ n: number }>(
    `select count(*)::int as n
       from source_manifest m
       cross join lateral (
         select l.state, l.source_mod_id, l.object_etag from import_ledger l
          where l.source_table = m.source_table and l.filemaker_id = m.filemaker_id and l.run_id <> m.run_id
          order by l.updated_at desc limit 1) p
      where m.run_id = $1 and m.source_table = $2 and m.id_issue is null and (not $3 or m.work_pos is not null)
        and p.source_mod_id = m.mod_id and (p.object_etag is not null or p.state in ('skipped', 'failed'))`,
    [runId, table, work],
  );
  return r.rows[0]?.n ?? 0;
}
