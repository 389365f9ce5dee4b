/**
 * The run ledger as the activities use it: the manifest written and sliced, and bulk ledger writes (one statement per
 * chunk). Both are keyed by FileMaker's record id: see src/domain/manifest.ts.
 */
import { byRecordId, type IdIssue, type ManifestRow } from '../domain/manifest';
import { namedStatement, withTransaction, type Pool } from '../store/db';
import { cleanString } from '../store/sanitize';
import type { ChunkResult } from './types';

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

const FAILED_IDS_PER_REASON = 5;

export function emptyChunkResult(): ChunkResult {
  return {
    processed: 0,
    byState: { imported: 0, unlinked: 0, skipped: 0, failed: 0 },
    byReason: {},
    failedIds: {},
    bytesDownloaded: 0,
    relinked: 0,
    replaced: 0,
    retries: 0,
  };
}

/** Replaces the run's manifest of `table` (an activity retried reads the table again) in one transaction. */
export async function writeManifest(pool: Pool, runId: string, table: string, rows: readonly ManifestRow[]) {
  await withTransaction(pool, async (c) => {
    await c.query('delete from source_manifest where run_id = $1 and source_table = $2', [runId, table]);
    for (let i = 0; i < rows.length; i += 5000) {
      await c.query(
        `insert into source_manifest (run_id, source_table, record_id, filemaker_id, id_issue, mod_id, source_key)
         select $1, $2, e.record_id, e.filemaker_id, e.id_issue, e.mod_id, e.source_key
           from jsonb_to_recordset($3::jsonb)
             as e(record_id text, filemaker_id text, id_issue text, mod_id text, source_key text)`,
        [runId, table, JSON.stringify(rows.slice(i, i + 5000))],
      );
    }
  });
}

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
    `select l.state, count(*)::int as n
       from source_manifest m
       left join import_ledger l on l.run_id = m.run_id and l.source_table = m.source_table
                                 and l.record_id = m.record_id
      where m.run_id = $1 and m.source_table = $2
      group by l.state`,
    [runId, table],
  );
  const missing = await pool.query<{ record_id: string }>(
    `select m.record_id from source_manifest m
      where m.run_id = $1 and m.source_table = $2 and not exists (
        select 1 from import_ledger l where l.run_id = m.run_id and l.source_table = m.source_table
          and l.record_id = m.record_id and l.state in ('imported', 'unlinked', 'skipped', 'failed'))
      order by length(m.record_id), m.record_id limit 50`,
    [runId, table],
  );
  return {
    manifest: r.rows.reduce((s, x) => s + x.n, 0),
    by: Object.fromEntries(r.rows.map((x) => [x.state ?? 'missing', x.n])),
    missing: missing.rows.map((x) => x.record_id),
  };
}

/** A record of a manifest slice; `sharing` lists the records of a DUPLICATE_ID (this one included). */
export interface SliceEntry {
  recordId: string;
  filemakerId: string | null;
  idIssue: IdIssue | null;
  sharing?: string[];
}

/** The records at positions [offset, offset+limit) of the run's manifest of `table`, in record id order. */
export async function manifestSlice(
  pool: Pool,
  runId: string,
  table: string,
  offset: number,
  limit: number,
): Promise<SliceEntry[]> {
  const r = await pool.query<{
    record_id: string;
    filemaker_id: string | null;
    id_issue: IdIssue | null;
    sharing: string[] | null;
  }>(
    `select m.record_id, m.filemaker_id, m.id_issue,
            case when m.id_issue = 'DUPLICATE_ID' then (
              select array_agg(d.record_id) from source_manifest d
               where d.run_id = m.run_id and d.source_table = m.source_table and d.filemaker_id = m.filemaker_id
                 and d.id_issue = 'DUPLICATE_ID') end as sharing
       from source_manifest m where m.run_id = $1 and m.source_table = $2
      order by length(m.record_id), m.record_id offset $3 limit $4`,
    [runId, table, offset, limit],
  );
  return r.rows.map((x) => ({
    recordId: x.record_id,
    filemakerId: x.filemaker_id,
    idIssue: x.id_issue,
    ...(x.sharing ? { sharing: x.sharing.sort(byRecordId) } : {}),
  }));
}

/** Records named in one message at most; the rest are counted. */
const SHARING_NAMED = 10;

/**
 * Splits a slice: the ledger entries of records whose id cannot key a row (failed with their reason, nothing
 * fetched), and the others with their ids, each id naming one record.
 */
export function splitIdIssues(
  table: string,
  slice: readonly SliceEntry[],
): { failed: LedgerEntry[]; keyed: { recordId: string; id: string }[] } {
  const failed: LedgerEntry[] = [];
  const keyed: { recordId: string; id: string }[] = [];
  for (const e of slice) {
    if (e.idIssue === 'MISSING_ID') {
      failed.push({
        recordId: e.recordId,
        filemakerId: null,
        state: 'failed',
        reasonCode: 'MISSING_ID',
        message: `${table} record ${e.recordId} has an empty id`,
      });
    } else if (e.idIssue === 'DUPLICATE_ID') {
      const all = e.sharing ?? [e.recordId];
      const named = all.slice(0, SHARING_NAMED).join(', ');
      const more = all.length > SHARING_NAMED ? ` and ${all.length - SHARING_NAMED} more` : '';
      failed.push({
        recordId: e.recordId,
        filemakerId: e.filemakerId,
        state: 'failed',
        reasonCode: 'DUPLICATE_ID',
        message: `${table} records ${named}${more} share one id; none of them is imported`,
      });
    } else if (e.filemakerId !== null) keyed.push({ recordId: e.recordId, id: e.filemakerId });
  }
  return { failed, keyed };
}

/**
 * The ledger write of the files phases and the record chunks: every entry's terminal state (attempts counted), as a
 * statement whose three parameters (run, source table, the entries as JSON from ledgerJson) start at `$first`, so it
 * can also ride along another statement (see upsertRows' `alongside`).
 */
export function ledgerInsert(first: number): string {
  const [run, table, entries] = [first, first + 1, first + 2].map((n) => `$${n}`);
  // An entry without a record id is the manifest's one record of its id; none there leaves record_id null, which
  // the table refuses: an entry is never written against a record the manifest does not hold.
  return `insert into import_ledger (run_id, source_table, record_id, filemaker_id, state, reason_code, message,
                            target_table, target_id, s3_key, bytes, sha256, object_etag, source_mod_id)
 select ${run}, ${table}, coalesce(e.record_id, m.record_id), e.filemaker_id, e.state, e.reason_code, e.message,
        e.target_table, e.target_id::uuid, e.s3_key, e.bytes, e.sha256, e.object_etag, e.source_mod_id
   from jsonb_to_recordset(${entries}::jsonb) as e(record_id text, filemaker_id text, state text, reason_code text,
        message text, target_table text, target_id text, s3_key text, bytes bigint, sha256 text, object_etag text,
        source_mod_id text)
   left join source_manifest m on e.record_id is null and m.run_id = ${run} and m.source_table = ${table}
                               and m.filemaker_id = e.filemaker_id and m.id_issue is null
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

/** Writes every entry's terminal state (attempts counted) and adds them to the chunk's counts. */
export async function recordLedger(
  pool: Pool,
  runId: string,
  table: string,
  entries: readonly LedgerEntry[],
  into: ChunkResult,
): Promise<void> {
  if (entries.length === 0) return;
  await pool.query({ ...namedStatement(RECORD_LEDGER), values: [runId, table, ledgerJson(entries)] });
  countLedger(entries, into);
}

/** Adds entries' states, reasons and failed ids to a chunk's counts (without writing them). */
export function countLedger(entries: readonly LedgerEntry[], into: ChunkResult): void {
  for (const e of entries) {
    into.byState[e.state]++;
    if (e.reasonCode && e.state !== 'imported') {
      into.byReason[e.reasonCode] = (into.byReason[e.reasonCode] ?? 0) + 1;
      if (e.state === 'failed') {
        const list = (into.failedIds[e.reasonCode] ??= []);
        if (list.length < FAILED_IDS_PER_REASON) list.push(e.filemakerId ?? `record ${e.recordId ?? '?'}`);
      }
    }
  }
}
