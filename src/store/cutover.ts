/**
 * A cut-over's first read of the source (`cutover_freeze_tables`, `cutover_freeze_records`): per source table the
 * record id and record version of every record and a digest over them, under the cut-over's id. Later reads are
 * compared with it (src/domain/freeze.ts). Ids and versions only.
 */
import type { RecordVersion } from '../domain/freeze';
import { withTransaction, type Pool } from './db';

/** Replaces the cut-over's read of `table` (an activity retried reads the table again) in one transaction. */
export async function writeFreezeRead(
  pool: Pool,
  cutoverId: string,
  table: string,
  versions: readonly RecordVersion[],
  digest: string,
): Promise<void> {
  await withTransaction(pool, async (c) => {
    await c.query('delete from cutover_freeze_tables where cutover_id = $1 and source_table = $2', [cutoverId, table]);
    await c.query(
      `insert into cutover_freeze_tables (cutover_id, source_table, records, digest) values ($1, $2, $3, $4)`,
      [cutoverId, table, versions.length, digest],
    );
    for (let i = 0; i < versions.length; i += 5000) {
      await c.query(
        `insert into cutover_freeze_records (cutover_id, source_table, record_id, mod_id)
         select $1, $2, e."recordId", e."modId" from jsonb_to_recordset($3::jsonb) as e("recordId" text, "modId" text)`,
        [cutoverId, table, JSON.stringify(versions.slice(i, i + 5000))],
      );
    }
  });
}

/** The digest of the cut-over's first read of `table`, or undefined when it has none. */
export async function freezeReadDigest(pool: Pool, cutoverId: string, table: string): Promise<string | undefined> {
  const r = await pool.query<{ digest: string }>(
    'select digest from cutover_freeze_tables where cutover_id = $1 and source_table = $2',
    [cutoverId, table],
  );
  return r.rows[0]?.digest;
}

/** The cut-over's first read of `table`: record id → record version. */
export async function freezeReadVersions(pool: Pool, cutoverId: string, table: string): Promise<Map<string, string>> {
  const r = await pool.query<{ record_id: string; mod_id: string }>(
    'select record_id, mod_id from cutover_freeze_records where cutover_id = $1 and source_table = $2',
    [cutoverId, table],
  );
  return new Map(r.rows.map((x) => [x.record_id, x.mod_id]));
}
