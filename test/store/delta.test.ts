/**
 * A run's delta against the previous completed run (src/store/delta.ts) on PostgreSQL: exact added / changed /
 * unchanged / vanished counts and the records behind them, the right previous run, and manifests keyed differently.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type pg from 'pg';
import { manifestRows } from '../../src/domain/manifest';
import { recordDelta } from '../../src/store/delta';
import { writeManifest } from '../../src/store/manifest';
import { migratedDatabase } from './fixtures';

const database = migratedDatabase();
const TABLE = 'API_Contacts';

/** `n` records `p<i>` with ROWIDs i + 1 at version `v`. */
const records = (n: number, v = '1') =>
  Array.from({ length: n }, (_, i) => ({ id: `p${i}`, rowId: String(i + 1), modId: v }));

describe('run delta', { concurrency: 1 }, () => {
  let pool: pg.Pool;
  let day = 0;
  before(async () => {
    ({ pool } = await database);
  });

  /** Registers a run started a day after the last one, with `status` and a manifest of `recs` for TABLE. */
  async function run(runId: string, status: string, recs: { id: string; rowId: string; modId: string }[]) {
    day += 1;
    await pool.query(
      `insert into reimport_runs (run_id, status, started_at, finished_at)
       values ($1, 'running', timestamptz '2026-01-01' + make_interval(days => $2), null)`,
      [runId, day],
    );
    const rows = manifestRows(
      recs.map((r) => ({
        record_id: r.rowId,
        filemaker_id: r.id,
        id_issue: null,
        mod_id: r.modId,
        source_key: null,
      })),
    );
    await writeManifest(pool, runId, TABLE, rows);
    const delta = await recordDelta(pool, runId, TABLE);
    if (status !== 'running') {
      await pool.query(`update reimport_runs set status = $2, finished_at = now() where run_id = $1`, [runId, status]);
    }
    return delta;
  }

  const changes = async (runId: string) =>
    (
      await pool.query<{ f: string; change: string }>(
        `select filemaker_id as f, change from run_delta where run_id = $1 order by filemaker_id`,
        [runId],
      )
    ).rows.map((r) => `${r.change} ${r.f}`);

  test('the first run counts every record as added and lists none', async () => {
    const d = await run('first', 'completed', records(5));
    assert.deepEqual(d, { previousRunId: null, added: 5, changed: 0, unchanged: 0, vanished: 0 });
    assert.deepEqual(await changes('first'), []);
  });

  test('inserts, edits and deletes are counted exactly, with their ids in run_delta', async () => {
    const recs = records(5);
    recs[1]!.modId = '2'; // edited
    recs.splice(3, 1); // p3 deleted
    recs.push({ id: 'p9', rowId: '10', modId: '1' }); // inserted
    const d = await run('second', 'completed', recs);
    assert.deepEqual(d, { previousRunId: 'first', added: 1, changed: 1, unchanged: 3, vanished: 1 });
    assert.deepEqual(await changes('second'), ['changed p1', 'vanished p3', 'added p9']);
    const stored = await pool.query(`select added, changed, unchanged, vanished from run_delta_tables
                                      where run_id = 'second'`);
    assert.deepEqual(stored.rows, [{ added: 1, changed: 1, unchanged: 3, vanished: 1 }]);
  });

  test('a run that did not complete is not the one compared with', async () => {
    await run('failed', 'rolled_back', records(2));
    const d = await run('third', 'completed', records(5));
    // Against `second` (p0…p2, p4 at their versions, p9), not against the rolled-back run's two records.
    assert.equal(d.previousRunId, 'second');
    assert.deepEqual(await changes('third'), ['changed p1', 'added p3', 'vanished p9']);
  });

  test('a record deleted and created again under the same id is one vanished and one added record', async () => {
    const recs = records(5);
    recs[0] = { id: 'p0', rowId: '50', modId: '1' };
    const d = await run('fourth', 'completed', recs);
    assert.deepEqual([d.added, d.changed, d.vanished], [1, 0, 1]);
  });

  test('against a manifest keyed by id (a server without record ids), records are matched by id', async () => {
    const rows = manifestRows(
      records(5).map((r) => ({ record_id: null, filemaker_id: r.id, id_issue: null, mod_id: null, source_key: null })),
    );
    day += 1;
    await pool.query(
      `insert into reimport_runs (run_id, status, started_at, finished_at)
       values ('by-id', 'completed', timestamptz '2026-01-01' + make_interval(days => $1), now())`,
      [day],
    );
    await writeManifest(pool, 'by-id', TABLE, rows);
    const d = await run('fifth', 'completed', records(6));
    // p0…p4 match by id (no versions on the older side: changed), p5 is new.
    assert.deepEqual([d.previousRunId, d.added, d.vanished], ['by-id', 1, 0]);
  });
});
