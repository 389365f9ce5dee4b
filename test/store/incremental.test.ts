/**
 * What an incremental run builds on (src/store/incremental.ts `incrementalBase`) on PostgreSQL: the last completed run
 * before it, and a refusal, naming the reason, when there is none, when the schema changed since, or when a later run
 * failed without a complete rollback.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type pg from 'pg';
import { IncrementalRefusedError } from '../../src/errors';
import { incrementalBase } from '../../src/store/incremental';
import { startRun } from '../../src/store/runs';
import { migratedDatabase } from './fixtures';

const database = migratedDatabase();

describe('incremental base run', { concurrency: 1 }, () => {
  let pool: pg.Pool;
  before(async () => {
    ({ pool } = await database);
  });

  /** Registers a run as the product does, then ends it with `status`, a minute after the last one started. */
  let minute = 0;
  async function run(runId: string, status: string) {
    await startRun(pool, runId, runId, {});
    minute += 1;
    await pool.query(
      `update reimport_runs set started_at = timestamptz '2026-01-01' + make_interval(mins => $2),
              status = $3, finished_at = case when $3 = 'running' then null else now() end
        where run_id = $1`,
      [runId, minute, status],
    );
  }
  const refused = (runId: string, reason: RegExp) =>
    assert.rejects(incrementalBase(pool, runId), (err: unknown) => {
      assert.ok(err instanceof IncrementalRefusedError);
      assert.match(err.message, reason);
      return true;
    });

  test('without a completed run there is nothing to build on', async () => {
    await run('rolled', 'rolled_back');
    await refused('next', /no completed run/);
  });

  test('the last completed run before it is the base; rolled-back runs after it do not matter', async () => {
    await run('full-1', 'completed');
    await run('full-2', 'completed');
    await run('rolled-after', 'rolled_back');
    assert.equal(await incrementalBase(pool, 'next'), 'full-2');
  });

  test('a run that failed without a complete rollback after the base is refused', async () => {
    await run('broken', 'failed');
    await refused('next', /run broken failed after run full-2/);
    await run('full-3', 'completed');
    assert.equal(await incrementalBase(pool, 'next'), 'full-3');
  });

  test('a schema changed since the base run is refused', async () => {
    await pool.query(`update reimport_runs set schema_version = 'older' where run_id = 'full-3'`);
    await refused('next', /schema changed since run full-3/);
    await pool.query(`update reimport_runs set schema_version = null where run_id = 'full-3'`);
    await refused('next', /schema changed since run full-3 \(unknown/);
  });
});
