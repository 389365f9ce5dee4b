/**
 * A run's delta per source table: its manifest against the manifest of the previous completed run that read the same
 * table. Records are matched by FileMaker's record id, and a record is `changed` when its record version (ROWMODID /
 * modId) differs; a server that gives no versions shows no changes. When the two manifests key records differently
 * (one run's server listed no record ids, `id:<id>`), records are matched by their FileMaker id instead.
 */
import type { TableDelta } from '../domain/delta';
import { withTransaction, type Pool, type PoolClient } from './db';

type Queryable = Pool | PoolClient;

/**
 * The previous completed run that read `table` before `runId` started (before now, for a run not registered: a dry
 * run); undefined for the first.
 */
export async function previousRun(c: Queryable, runId: string, table: string): Promise<string | undefined> {
  const r = await c.query<{ run_id: string }>(
    `select p.run_id from reimport_runs p
      where p.run_id <> $1 and p.status = 'completed'
        and p.started_at < coalesce((select started_at from reimport_runs where run_id = $1), now())
        and exists (select 1 from source_manifest m where m.run_id = p.run_id and m.source_table = $2)
      order by p.started_at desc limit 1`,
    [runId, table],
  );
  return r.rows[0]?.run_id;
}

/** Whether the run's manifest of `table` keys records by the fallback `id:<id>` (a server without record ids). */
async function keyedById(c: Queryable, runId: string, table: string): Promise<boolean> {
  const r = await c.query<{ fallback: boolean }>(
    `select coalesce(bool_or(record_id like 'id:%'), false) as fallback
       from source_manifest where run_id = $1 and source_table = $2`,
    [runId, table],
  );
  return r.rows[0]?.fallback ?? false;
}

/**
 * Computes and stores the delta of `table` for `runId` (replacing one a retried activity stored) from the two
 * manifests, in one transaction, and returns its counts.
 */
export async function recordDelta(pool: Pool, runId: string, table: string): Promise<TableDelta> {
  return withTransaction(pool, async (c) => {
    await c.query('delete from run_delta where run_id = $1 and source_table = $2', [runId, table]);
    await c.query('delete from run_delta_tables where run_id = $1 and source_table = $2', [runId, table]);
    const previous = await previousRun(c, runId, table);
    if (previous !== undefined) {
      const sameKeys = (await keyedById(c, runId, table)) === (await keyedById(c, previous, table));
      // A fixed column name, chosen here: never input.
      const key = sameKeys ? 'record_id' : 'filemaker_id';
      await c.query(
        `insert into run_delta (run_id, source_table, record_id, filemaker_id, change)
         select $1, $2, coalesce(cur.record_id, prev.record_id), coalesce(cur.filemaker_id, prev.filemaker_id),
                case when prev.record_id is null then 'added' when cur.record_id is null then 'vanished'
                     else 'changed' end
           from (select * from source_manifest where run_id = $1 and source_table = $2) cur
           full join (select * from source_manifest where run_id = $3 and source_table = $2) prev
             on cur.${key} = prev.${key}
          where cur.record_id is null or prev.record_id is null or cur.mod_id is distinct from prev.mod_id
         on conflict (run_id, source_table, record_id) do nothing`,
        [runId, table, previous],
      );
    }
    const { rows } = await c.query<{ added: number; changed: number; vanished: number; total: number }>(
      `select count(*) filter (where change = 'added')::int as added,
              count(*) filter (where change = 'changed')::int as changed,
              count(*) filter (where change = 'vanished')::int as vanished,
              (select count(*)::int from source_manifest where run_id = $1 and source_table = $2) as total
         from run_delta where run_id = $1 and source_table = $2`,
      [runId, table],
    );
    const n = rows[0]!;
    const delta: TableDelta = {
      previousRunId: previous ?? null,
      added: previous === undefined ? n.total : n.added,
      changed: n.changed,
      unchanged: previous === undefined ? 0 : n.total - n.added - n.changed,
      vanished: n.vanished,
    };
    await c.query(
      `insert into run_delta_tables (run_id, source_table, previous_run_id, added, changed, unchanged, vanished)
       values ($1, $2, $3, $4, $5, $6, $7)`,
      [runId, table, delta.previousRunId, delta.added, delta.changed, delta.unchanged, delta.vanished],
    );
    return delta;
  });
}

/**
 * The records of `table` the previous completed run listed, as the keys a census of FileMaker now compares with:
 * record ids, or FileMaker ids when that run's server listed no record ids. Undefined on a first run.
 */
export async function previousKeys(
  pool: Pool,
  runId: string,
  table: string,
): Promise<{ previousRunId: string; byRecordId: boolean; keys: Set<string> } | undefined> {
  const previous = await previousRun(pool, runId, table);
  if (previous === undefined) return undefined;
  const byRecordId = !(await keyedById(pool, previous, table));
  const r = await pool.query<{ k: string | null }>(
    `select ${byRecordId ? 'record_id' : 'filemaker_id'} as k from source_manifest where run_id = $1 and source_table = $2`,
    [previous, table],
  );
  return { previousRunId: previous, byRecordId, keys: new Set(r.rows.flatMap((x) => (x.k === null ? [] : [x.k]))) };
}

/** The delta the run recorded for `table` (with the records it archived), or undefined when none is recorded yet. */
export async function storedDelta(pool: Pool, runId: string, table: string): Promise<TableDelta | undefined> {
  const r = await pool.query<{
    previous_run_id: string | null;
    added: number;
    changed: number;
    unchanged: number;
    vanished: number;
    archived: number;
  }>(
    `select d.previous_run_id, d.added, d.changed, d.unchanged, d.vanished,
            (select count(*)::int from archived_records a
              where a.missing_since_run_id = d.run_id and a.source_table = d.source_table) as archived
       from run_delta_tables d where d.run_id = $1 and d.source_table = $2`,
    [runId, table],
  );
  const d = r.rows[0];
  if (!d) return undefined;
  const delta: TableDelta = {
    previousRunId: d.previous_run_id,
    added: d.added,
    changed: d.changed,
    unchanged: d.unchanged,
    vanished: d.vanished,
  };
  return d.vanished > 0 ? { ...delta, archived: d.archived } : delta;
}
