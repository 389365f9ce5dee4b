/** The run ledger as the activities use it: manifest slices and bulk ledger writes (one statement per chunk). */
import { namedStatement, type Pool } from '../store/db';
import { cleanString } from '../store/sanitize';
import type { ChunkResult } from './types';

export interface LedgerEntry {
  filemakerId: string;
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

/** FileMaker ids at positions [offset, offset+limit) of the run's manifest of `table`, in id order. */
export async function manifestSlice(pool: Pool, runId: string, table: string, offset: number, limit: number) {
  const r = await pool.query<{ filemaker_id: string }>(
    `select filemaker_id from source_manifest where run_id = $1 and source_table = $2
      order by filemaker_id offset $3 limit $4`,
    [runId, table, offset, limit],
  );
  return r.rows.map((x) => x.filemaker_id);
}

/**
 * The ledger write of the files phases and the record chunks: every entry's terminal state (attempts counted), as a
 * statement whose three parameters (run, source table, the entries as JSON from ledgerJson) start at `$first`, so it
 * can also ride along another statement (see upsertRows' `alongside`).
 */
export function ledgerInsert(first: number): string {
  const [run, table, entries] = [first, first + 1, first + 2].map((n) => `$${n}`);
  return `insert into import_ledger (run_id, source_table, filemaker_id, state, reason_code, message, target_table,
                            target_id, s3_key, bytes, sha256, object_etag, source_mod_id)
 select ${run}, ${table}, e.filemaker_id, e.state, e.reason_code, e.message, e.target_table, e.target_id::uuid,
        e.s3_key, e.bytes, e.sha256, e.object_etag, e.source_mod_id
   from jsonb_to_recordset(${entries}::jsonb) as e(filemaker_id text, state text, reason_code text, message text,
        target_table text, target_id text, s3_key text, bytes bigint, sha256 text, object_etag text,
        source_mod_id text)
 on conflict (run_id, source_table, filemaker_id) do update set
   state = excluded.state, reason_code = excluded.reason_code, message = excluded.message,
   target_table = excluded.target_table, target_id = excluded.target_id, s3_key = excluded.s3_key,
   bytes = excluded.bytes, sha256 = excluded.sha256, source_mod_id = excluded.source_mod_id,
   object_etag = excluded.object_etag,
   attempts = import_ledger.attempts + 1, updated_at = now()`;
}

/** The entries as ledgerInsert's JSON parameter. */
export function ledgerJson(entries: readonly LedgerEntry[]): string {
  return JSON.stringify(
    entries.map((e) => ({
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
        if (list.length < FAILED_IDS_PER_REASON) list.push(e.filemakerId);
      }
    }
  }
}
