/**
 * The reimport's backup and restore (src/activities/runs.ts over src/store/backup.ts) on PostgreSQL: every run id gets its own backup schema,
 * and backups made under the older, shared name are restored only when they are provably the run's.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type pg from 'pg';
import type { ActivityDeps } from '../../src/activities/deps';
import { runBookkeeping } from '../../src/activities/runs';
import type { BackupResult, RestoreResult } from '../../src/activities/types';
import { IntegrityError } from '../../src/errors';
import { backupSchemaName, fingerprint, SNAPSHOT_TABLES } from '../../src/store/backup';
import { upsertRows } from '../../src/store/upsert';
import { createTestBucket, s3ClientFor } from '../helpers/stack';
import { migratedDatabase, patientRow } from './fixtures';

const database = migratedDatabase();
const bucketP = createTestBucket();

describe('run backups', () => {
  let pool: pg.Pool;
  let runs: ReturnType<typeof runBookkeeping>;
  // Refused restores are expected here: only errors the tests do not expect are worth printing.
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  const backup = (runId: string) => env.run<[], BackupResult, () => Promise<BackupResult>>(() => runs.backup(runId));
  const restore = (runId: string) =>
    env.run<[], RestoreResult, () => Promise<RestoreResult>>(() => runs.restore(runId));

  before(async () => {
    ({ pool } = await database);
    const deps = { pool, s3: await s3ClientFor(), config: { s3: { bucket: await bucketP } } };
    runs = runBookkeeping(deps as unknown as ActivityDeps);
  });

  /** Replaces the patients with rows `from`..`from + n - 1` and returns them as the tests compare them. */
  async function setPatients(from: number, n: number): Promise<string[]> {
    await pool.query('delete from patients');
    await upsertRows(
      pool,
      'patients',
      Array.from({ length: n }, (_, i) => patientRow(from + i)),
    );
    return patients();
  }

  async function patients(): Promise<string[]> {
    const r = await pool.query<{ p: string }>(`select filemaker_id || ' ' || last_name as p from patients order by 1`);
    return r.rows.map((x) => x.p);
  }

  async function startRun(runId: string): Promise<void> {
    await pool.query(`insert into reimport_runs (run_id) values ($1)`, [runId]);
  }

  /** A backup as runs were backed up before names were hashed: `backup_<cleaned id>` cut at 60, no run id. */
  async function legacyBackup(schema: string): Promise<void> {
    await pool.query(`create schema ${schema}`);
    for (const t of SNAPSHOT_TABLES) {
      await pool.query(`create table ${schema}.${t} as table public.${t}`);
    }
  }

  const long = 'r'.repeat(53);
  for (const ids of [
    ['Run-A', 'run_a', 'RUN.A'],
    [`${long}-first`, `${long}-second`],
  ]) {
    test(`${ids.map((id) => id.slice(0, 12)).join(', ')}: each run restores its own snapshot`, async () => {
      const names = ids.map(backupSchemaName);
      assert.equal(new Set(names).size, ids.length);
      for (const n of names) assert.ok(Buffer.byteLength(n) <= 63 && /^[a-z_][a-z0-9_]*$/.test(n), n);

      const states: string[][] = [];
      for (const [i, id] of ids.entries()) {
        states.push(await setPatients(100 * (i + 1), i + 2));
        // The copies are hashed side by side after they are made: each holds what its table held.
        const { tables } = await backup(id);
        for (const t of SNAPSHOT_TABLES) assert.deepEqual(tables[t], await fingerprint(pool, t), `${id}: ${t}`);
      }
      await setPatients(900, 1);
      for (const [i, id] of ids.entries()) {
        const restored = await restore(id);
        assert.equal(restored.verified, true);
        assert.deepEqual(await patients(), states[i], `restore of ${id}`);
      }
    });
  }

  test('a backup made under the legacy name is restored when no later run shares the name', async () => {
    await startRun('Run-B');
    const before = await setPatients(200, 3);
    await legacyBackup('backup_run_b');
    await startRun('other-run');
    await setPatients(900, 1);
    assert.equal((await restore('Run-B')).verified, true);
    assert.deepEqual(await patients(), before);
  });

  test('a legacy backup a later run may have replaced is refused until that run shows its own backup', async () => {
    await startRun('Run-C');
    const runC = await setPatients(300, 3);
    await legacyBackup('backup_run_c');
    await startRun('run-c');
    const now = await setPatients(900, 2);
    await assert.rejects(restore('Run-C'), (err) => err instanceof IntegrityError);
    assert.deepEqual(await patients(), now, 'a refused restore changes nothing');

    // run-c backs up under its own name, so the legacy schema is Run-C's.
    await backup('run-c');
    assert.equal((await restore('Run-C')).verified, true);
    assert.deepEqual(await patients(), runC);
    assert.equal((await restore('run-c')).verified, true);
    assert.deepEqual(await patients(), now);
  });

  test("a legacy-named backup that records another run's id is not restored", async () => {
    await startRun('Run-D');
    await setPatients(400, 2);
    await legacyBackup('backup_run_d');
    await pool.query(`create table backup_run_d._backup_info (run_id text not null)`);
    await pool.query(`insert into backup_run_d._backup_info values ('RUN-D')`);
    await assert.rejects(restore('Run-D'), (err) => err instanceof IntegrityError);
  });

  test('restore without any backup fails and changes nothing', async () => {
    const now = await setPatients(500, 2);
    await assert.rejects(restore('never-backed-up'), (err) => err instanceof IntegrityError);
    assert.deepEqual(await patients(), now);
  });
});
