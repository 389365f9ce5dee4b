/**
 * The run's manifest (`source_manifest`): every record of a source table as the run read it, keyed by FileMaker's
 * record id (see src/domain/manifest.ts). Written once per table, read back in slices by the phases.
 */
import { byRecordId, type IdIssue, type ManifestRow } from '../domain/manifest';
import { withTransaction, type Pool } from './db';

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

/** Whether the run's manifest of `table` has been written (a phase resumed after its manifest step). */
export async function hasManifest(pool: Pool, runId: string, table: string): Promise<boolean> {
  const r = await pool.query('select 1 from source_manifest where run_id = $1 and source_table = $2 limit 1', [
    runId,
    table,
  ]);
  return r.rowCount !== null && r.rowCount > 0;
}

/** The manifest's record count, how many of them are ROWIDs, and the highest ROWID (as text). */
export async function manifestRowIds(
  pool: Pool,
  runId: string,
  table: string,
): Promise<{ rows: number; with_row_id: number; max: string | null } | undefined> {
  const r = await pool.query<{ rows: number; with_row_id: number; max: string | null }>(
    `select count(*)::int as rows, count(*) filter (where record_id ~ '^[0-9]+$')::int as with_row_id,
              max(record_id::numeric) filter (where record_id ~ '^[0-9]+$')::text as max
         from source_manifest where run_id = $1 and source_table = $2`,
    [runId, table],
  );
  return r.rows[0];
}

/** The source key and modId the manifest read for each of `ids` (records whose id keys a row). */
export async function manifestSourceKeys(
  pool: Pool,
  runId: string,
  table: string,
  ids: readonly string[],
): Promise<{ filemaker_id: string; source_key: string | null; mod_id: string | null }[]> {
  const keys = await pool.query<{ filemaker_id: string; source_key: string | null; mod_id: string | null }>(
    `select filemaker_id, source_key, mod_id from source_manifest
      where run_id = $1 and source_table = $2 and filemaker_id = any($3::text[]) and id_issue is null`,
    [runId, table, ids],
  );
  return keys.rows;
}

/** A record of a manifest slice; `sharing` lists the records of a DUPLICATE_ID (this one included). */
export interface SliceEntry {
  recordId: string;
  filemakerId: string | null;
  idIssue: IdIssue | null;
  sharing?: string[];
}

/**
 * The records at positions [offset, offset+limit) of the run's manifest of `table`, in record id order; with `work`,
 * of its work list (an incremental run: the records it reads again, see src/store/incremental.ts).
 */
export async function manifestSlice(
  pool: Pool,
  runId: string,
  table: string,
  offset: number,
  limit: number,
  work = false,
): Promise<SliceEntry[]> {
  const range = work
    ? 'and m.work_pos >= $3 and m.work_pos < $3 + $4 order by m.work_pos'
    : 'order by length(m.record_id), m.record_id offset $3 limit $4';
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
      ${range}`,
    [runId, table, offset, limit],
  );
  return r.rows.map((x) => ({
    recordId: x.record_id,
    filemakerId: x.filemaker_id,
    idIssue: x.id_issue,
    ...(x.sharing ? { sharing: x.sharing.sort(byRecordId) } : {}),
  }));
}
