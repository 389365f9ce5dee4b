/**
 * Nothing vanishes unnoticed: when a run's manifest of a table no longer lists records the previous completed run
 * imported (its delta's `vanished`), their last rows are copied from the run's backup into `archived_records`, with
 * their file's key, before anything could lose them. The objects themselves stay in S3.
 */
import { ident } from './schema';
import { backupSchemaOf, SNAPSHOT_TABLES } from './backup';
import { withTransaction, type Pool } from './db';

/**
 * Archives the records of `table` that vanished since the previous completed run (run_delta) and that it imported or
 * kept unlinked, in one transaction, replacing what a retried activity archived. Returns how many were archived.
 * IntegrityError when the run has no backup to read their rows from.
 */
export async function archiveVanished(pool: Pool, runId: string, table: string): Promise<number> {
  return withTransaction(pool, async (c) => {
    await c.query('delete from archived_records where missing_since_run_id = $1 and source_table = $2', [runId, table]);
    const prev = await c.query<{ previous_run_id: string | null; vanished: number }>(
      'select previous_run_id, vanished from run_delta_tables where run_id = $1 and source_table = $2',
      [runId, table],
    );
    const previous = prev.rows[0]?.previous_run_id;
    if (!previous || !prev.rows[0]!.vanished) return 0;
    const schema = ident(await backupSchemaOf(c, runId));
    const vanished = `from run_delta d
      join import_ledger l on l.run_id = $3 and l.source_table = d.source_table and l.record_id = d.record_id
     where d.run_id = $1 and d.source_table = $2 and d.change = 'vanished' and l.state in ('imported', 'unlinked')`;
    const targets = await c.query<{ target_table: string | null }>(`select distinct l.target_table ${vanished}`, [
      runId,
      table,
      previous,
    ]);
    let archived = 0;
    for (const { target_table: target } of targets.rows) {
      // The last row is the backup's, taken before this run changed anything; a target outside it keeps no row.
      const known = target !== null && (SNAPSHOT_TABLES as readonly string[]).includes(target);
      const row = known
        ? `(select to_jsonb(b.*) from ${schema}.${ident(target)} b where b.filemaker_id = l.filemaker_id limit 1)`
        : 'null::jsonb';
      const r = await c.query(
        `insert into archived_records (source_table, record_id, filemaker_id, target_table, target_id, row, s3_key,
                                       last_imported_run_id, missing_since_run_id)
         select d.source_table, d.record_id, l.filemaker_id, l.target_table, l.target_id, ${row}, l.s3_key, $3, $1
         ${vanished} and l.target_table is not distinct from $4`,
        [runId, table, previous, target],
      );
      archived += r.rowCount ?? 0;
    }
    return archived;
  });
}
