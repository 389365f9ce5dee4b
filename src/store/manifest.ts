/**
 * The run's manifest (`source_manifest`): every record of a source table as the run read it, keyed by FileMaker's
 * record id (see src/domain/manifest.ts). Written once per table, read back in slices by the phases.
 */
import { byRecordId, type IdIssue, type ManifestRow } from '../domain/manifest';
import { withTransaction, type Pool } from './db';

/**
 * Replaces the run's manifest of `table` (an activity retried reads the table again) in one transaction. With
 * `positions` (a full run, whose work list is the whole manifest), each record's `work_pos` is its place in record id
 * order, so that a chunk's slice is a range of positions found by index, at any offset; an incremental run leaves them
 * for its plan to set (src/store/incremental.ts).
 */
export async function writeManifest(
  pool: Pool,
  runId: string,
  table: string,
  rows: readonly ManifestRow[],
  { positions = false }: { positions?: boolean } = {},
) {
  const entries = positions
    ? [...rows].sort((a, b) => byRecordId(a.record_id, b.record_id)).map((r, i) => ({ ...r, work_pos: i }))
    : rows;
  await withTransaction(pool, async (c) => {
    await c.query('delete from source_manifest where run_id = $1 and source_table = $2', [runId, table]);
    for (let i = 0; i < entries.length; i += 5000) {
      await c.query(
        `insert into source_manifest (run_id, source_table, record_id, filemaker_id, id_issue, mod_id, source_key,
                                      work_pos)
         select $1, $2, e.record_id, e.filemaker_id, e.id_issue, e.mod_id, e.source_key, e.work_pos
           from jsonb_to_recordset($3::jsonb)
             as e(record_id text, filemaker_id text, id_issue text, mod_id text, source_key text, work_pos int)`,
        [runId, table, JSON.stringify(entries.slice(i, i + 5000))],
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
 * The records at positions [offset, offset+limit) of the run's work list of `table`: a full run's whole manifest in
 * record id order, or with `work` an incremental run's records to read again (see src/store/incremental.ts).
 */
export async function manifestSlice(
  pool: Pool,
  runId: string,
  table: string,
  offset: number,
  limit: number,
  work = false,
): Promise<SliceEntry[]> {
  const byPosition = await slice(pool, runId, table, offset, limit, 'positions');
  if (byPosition.length > 0 || work) return byPosition;
  // A full run's manifest written before records were given positions (a run resumed across an upgrade) is sliced by
  // offset in the same order, which reads every record before the slice.
  const positioned = await pool.query(
    'select 1 from source_manifest where run_id = $1 and source_table = $2 and work_pos is not null limit 1',
    [runId, table],
  );
  return positioned.rowCount ? [] : slice(pool, runId, table, offset, limit, 'offset');
}

async function slice(
  pool: Pool,
  runId: string,
  table: string,
  offset: number,
  limit: number,
  by: 'positions' | 'offset',
): Promise<SliceEntry[]> {
  const range =
    by === 'positions'
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
