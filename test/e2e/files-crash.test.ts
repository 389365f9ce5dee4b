/**
 * The files phases when things break for real: the worker process is killed with SIGKILL in the middle of a batch
 * and replaced, and the `hostile` FileMaker profile (bursts of 503, HTML pages, restarts, sporadic 401s on
 * containers, broken JSON, session caps). Either way every container lands once with its ground-truth SHA-256, or
 * ends with its reason — nothing lost, nothing duplicated.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { startSimulator } from '../../sim/server';
import { migrate } from '../../src/store/migrate';
import type { ReimportResult } from '../../src/workflows/reimport';
import { assertFilesLanded, setup, start, type Setup } from '../helpers/files';
import { createTestBucket, createTestDatabase, s3ClientFor, stackEnv } from '../helpers/stack';

const ROOT = join(__dirname, '..', '..');

describe('files phases: a worker killed with SIGKILL mid-batch', () => {
  let s: Setup;
  const children: ChildProcess[] = [];
  let workerEnv: NodeJS.ProcessEnv;

  before(async () => {
    const env = await stackEnv();
    const db = await createTestDatabase();
    const bucket = await createTestBucket();
    await migrate(db.url);
    const sim = await startSimulator({ preset: 'tiny', seed: 21, sizeScale: 0.1 });
    const taskQueue = `files-kill-${randomUUID()}`;
    workerEnv = {
      ...process.env,
      ...env,
      DATABASE_URL: db.url,
      S3_BUCKET: bucket,
      FM_URL: sim.url,
      FM_DATABASE: sim.database,
      FM_USERNAME: sim.username,
      FM_PASSWORD: sim.password,
      TEMPORAL_TASK_QUEUE: taskQueue,
      LOG_LEVEL: 'error',
      LOG_FORMAT: 'json',
    };
    const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
    const pool = new pg.Pool({ connectionString: db.url });
    const s3 = await s3ClientFor();
    s = {
      sim,
      client: new Client({ connection }),
      connection,
      pool,
      s3,
      bucket,
      taskQueue,
      worker: undefined as never,
      async close() {
        await connection.close();
        await pool.end();
        await sim.close();
        s3.destroy();
      },
    };
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await s?.close();
  });

  const spawnWorker = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'fixtures', 'worker-process.ts')], {
      cwd: ROOT,
      env: workerEnv,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const lines = createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('worker process did not become ready in 60 s')), 60_000);
      child.once('exit', (code, signal) => reject(new Error(`worker process exited (${code ?? signal})`)));
      lines.on('line', (line) => {
        if (line.includes('"ready":true')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return child;
  };

  test(
    'the replacement worker resumes the batch; every file once, with its checksum',
    { timeout: 400_000 },
    async () => {
      const first = await spawnWorker();
      // Slow container bytes keep a batch in flight long enough to kill the worker inside it.
      s.sim.setFaults({ latencyMs: 40, bandwidthTotalBps: 2 * 1024 * 1024 });
      const runId = `run-${randomUUID()}`;
      const handle = await start(s, runId, { settings: { fileBatchSize: 8, concurrency: 2, cooldownBaseSeconds: 1 } });
      let atKill = 0;
      for (let i = 0; i < 600; i++) {
        await delay(200);
        const r = await s.pool.query<{ n: number }>(
          `select count(*)::int as n from import_ledger where run_id = $1 and source_table = 'API_Docs'`,
          [runId],
        );
        atKill = r.rows[0]!.n;
        if (atKill >= 3 && s.sim.stats().inFlight > 0) break;
      }
      assert.ok(atKill >= 3, 'documents were being imported when the worker was killed');
      first.kill('SIGKILL');
      await new Promise<void>((resolve) => (first.exitCode !== null ? resolve() : first.once('exit', () => resolve())));
      assert.equal(first.signalCode, 'SIGKILL', 'the first worker died of SIGKILL');
      s.sim.setFaults({ latencyMs: 0, bandwidthTotalBps: 0 });
      const second = await spawnWorker();
      const result = (await handle.result()) as ReimportResult;
      second.kill('SIGTERM');
      assert.equal(result.status, 'completed', 'the run completed after the kill');
      const attempts = await s.pool.query<{ n: number }>(
        `select count(*)::int as n from import_ledger where run_id = $1 and source_table = 'API_Docs' and attempts > 1`,
        [runId],
      );
      assert.equal(attempts.rows[0]!.n, 0, 'no document was written twice to the ledger (resumed, not redone)');
      await assertFilesLanded(s, runId);
    },
  );
});

describe('files phases on the hostile FileMaker profile', () => {
  let s: Setup;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 22, sizeScale: 0.1, profile: 'hostile' });
  });
  after(async () => {
    await s?.close();
  });

  test('loses nothing and duplicates nothing', { timeout: 400_000 }, async () => {
    const runId = `run-${randomUUID()}`;
    const handle = await start(s, runId, {
      settings: { fileBatchSize: 6, cooldownBaseSeconds: 1, cooldownMaxSeconds: 4 },
    });
    const result = (await handle.result()) as ReimportResult;
    assert.equal(result.status, 'completed', 'the run completed on the hostile profile');
    const faults = s.sim.stats().faults;
    assert.ok(Object.values(faults).reduce((a, b) => a + b, 0) > 0, 'the simulator injected faults');
    await assertFilesLanded(s, runId);
  });
});
