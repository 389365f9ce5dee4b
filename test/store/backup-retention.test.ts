/**
 * Backups kept by a policy (src/store/retention.ts, run by the `finishRun` activity of src/activities/runs.ts) on
 * PostgreSQL: after N + 2 completed runs exactly N backups remain plus those of runs not signed off, each kept one
 * still rolls back, and a dropped one can neither be restored nor delete objects in its run's name.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type pg from 'pg';
import type { ActivityDeps } from '../../src/activities/deps';
import { runBookkeeping } from '../../src/activities/runs';
import { IntegrityError } from '../../src/errors';
import { backupSchemaName } from '../../src/store/backup';
import { listBackups, pruneBackups, signOff } from '../../src/store/retention';
import { upsertRows } from '../../src/store/upsert';
import { createTestBucket, s3ClientFor } from '../helpers/stack';
import { migratedDatabase, patientRow } from './fixtures';

const KEEP = 2;
const database = migratedDatabase();
const bucketP = createTestBucket();

// One story, in order: each test starts from what the one before it left.
describe('backup retention', { concurrency: 1 }, () => {
  let pool: pg.Pool;
  let runs: ReturnType<typeof runBookkeeping>;
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  const act = <T>(fn: () => Promise<T>) => env.run<[], T, () => Promise<T>>(fn);
  const silent = { info: () => undefined, warn: () => undefined };

  before(async () => {
    ({ pool } = await database);
    const config = { s3: { bucket: await bucketP }, database: { backupKeepRuns: KEEP } };
    runs = runBookkeeping({ pool, s3: await s3ClientFor(), config, logger: silent } as unknown as ActivityDeps);
  });

  async function patients(): Promise<string[]> {
    const r = await pool.query<{ p: string }>(`select filemaker_id || ' ' || last_name as p from patients order by 1`);
    return r.rows.map((x) => x.p);
  }

  /** One run as the workflow drives it: registered, backed up, its patients written, finished with `status`. */
  async function run(runId: string, status: 'completed' | 'rolled_back', from: number): Promise<string[]> {
    await act(() => runs.startRun(runId, runId, {}));
    const before = await patients();
    await act(() => runs.backup(runId));
    await pool.query('delete from patients');
    await upsertRows(pool, 'patients', [patientRow(from), patientRow(from + 1)]);
    await act(() => runs.finishRun(runId, status, { ok: true }));
    return before;
  }

  const backups = async () => (await listBackups(pool, KEEP)).filter((b) => b.schema !== null).map((b) => b.runId);
  const summary = async (runId: string) =>
    (
      await pool.query<{ s: { backups?: unknown } }>('select summary as s from reimport_runs where run_id = $1', [
        runId,
      ])
    ).rows[0]?.s;

  test('after N + 2 completed runs N backups remain, plus any not signed off; each kept one rolls back', async () => {
    const before = new Map<string, string[]>();
    before.set('night-1', await run('night-1', 'completed', 100));
    await signOff(pool, 'night-1', 'Practice Manager');
    // night-2 is never signed off: it is kept however many runs follow.
    before.set('night-2', await run('night-2', 'completed', 200));
    before.set('night-3', await run('night-3', 'rolled_back', 300));
    assert.deepEqual(await backups(), ['night-3', 'night-2', 'night-1'], 'nothing superseded yet');

    before.set('night-4', await run('night-4', 'completed', 400));
    await signOff(pool, 'night-4', 'Practice Manager');
    // night-1: signed off, with KEEP later completed runs; night-3: rolled back, superseded by night-4.
    assert.deepEqual(await backups(), ['night-4', 'night-2']);
    assert.deepEqual(await summary('night-4'), { ok: true, backups: { dropped: ['night-3', 'night-1'], kept: 2 } });

    before.set('night-5', await run('night-5', 'completed', 500));
    // N + 2 completed runs: the newest N and the one not signed off keep their backups.
    assert.deepEqual(await backups(), ['night-5', 'night-4', 'night-2']);
    assert.deepEqual(await summary('night-5'), { ok: true, backups: { dropped: [], kept: 3 } });

    // Only the newest KEEP completed runs and the unsigned one hold a backup now.
    const listing = await listBackups(pool, KEEP);
    assert.equal(listing.find((b) => b.runId === 'night-2')?.why, 'completed, not signed off');
    assert.ok(listing.find((b) => b.runId === 'night-1')?.droppedAt);
    for (const gone of ['night-1', 'night-3']) {
      const schema = await pool.query('select 1 from pg_namespace where nspname = $1', [backupSchemaName(gone)]);
      assert.equal(schema.rowCount, 0, gone);
      const inventory = await pool.query('select 1 from s3_inventory where run_id = $1', [gone]);
      assert.equal(inventory.rowCount, 0, gone);
    }

    for (const kept of ['night-5', 'night-4', 'night-2']) {
      const restored = await act(() => runs.restore(kept));
      assert.equal(restored.verified, true, kept);
      assert.deepEqual(await patients(), before.get(kept), `rollback of ${kept}`);
    }
  });

  test('a run whose backup was dropped is refused by rollback before anything is touched', async () => {
    const now = await patients();
    await assert.rejects(
      act(() => runs.restore('night-1')),
      (err) => err instanceof IntegrityError,
    );
    // Without its inventory every object would look like the run's own: none may be deleted in its name.
    await assert.rejects(
      act(() => runs.deleteRunObjects('night-1')),
      /dropped by the retention policy/,
    );
    assert.deepEqual(await patients(), now);
  });

  test('a run that never took a backup deletes no object in its name', async () => {
    await act(() => runs.startRun('no-backup', 'no-backup', {}));
    await assert.rejects(
      act(() => runs.deleteRunObjects('no-backup')),
      /no backup for run no-backup/,
    );
  });

  test('prune keeps what the policy keeps, and a dry run drops nothing', async () => {
    await signOff(pool, 'night-2', 'Practice Manager');
    const dry = await pruneBackups(pool, KEEP, { dryRun: true });
    assert.deepEqual(
      dry.dropped.map((d) => d.runId),
      ['night-2'],
    );
    assert.deepEqual(await backups(), ['night-5', 'night-4', 'night-2']);
    const real = await pruneBackups(pool, KEEP);
    assert.deepEqual(
      real.dropped.map((d) => d.runId),
      ['night-2'],
    );
    assert.deepEqual(await backups(), ['night-5', 'night-4']);
  });

  test('a sign-off names a person, is for a completed run, and is not overwritten', async () => {
    await assert.rejects(signOff(pool, 'night-5', '  \u0000 '), /needs the name/);
    await assert.rejects(signOff(pool, 'night-3', 'Practice Manager'), /rolled_back: only a completed run/);
    await assert.rejects(signOff(pool, 'no-such-run', 'Practice Manager'), /no run no-such-run/);
    await signOff(pool, 'night-5', 'Practice Manager');
    assert.equal((await signOff(pool, 'night-5', 'Practice Manager')).signedOffBy, 'Practice Manager');
    await assert.rejects(signOff(pool, 'night-5', 'Someone Else'), /already signed off/);
  });
});
