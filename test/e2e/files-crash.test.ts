/**
 * The files phases when things break for real: the worker process is killed with SIGKILL in the middle of a batch
 * and replaced; one of two worker processes is killed and the other finishes its batches; and the `hostile` FileMaker
 * profile (bursts of 503, HTML pages, restarts, sporadic 401s on
 * containers, broken JSON, session caps). Either way every container lands once with its ground-truth SHA-256, or
 * ends with its reason — nothing lost, nothing duplicated.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { ReimportResult } from '../../src/workflows/reimport';
import { assertBytesReported, assertFilesLanded, setup, start, type Setup } from '../helpers/files';
import { prepareRun, spawnWorkerProcess, type TestRun } from '../helpers/run';

describe('files phases: a worker killed with SIGKILL mid-batch', () => {
  let s: TestRun;
  const children: ChildProcess[] = [];
  let workerEnv: NodeJS.ProcessEnv;
  const spawnWorker = () => spawnWorkerProcess(workerEnv, children);

  before(async () => {
    s = await prepareRun({ preset: 'tiny', seed: 21, sizeScale: 0.1 }, 'files-kill');
    workerEnv = { ...process.env, ...s.env, LOG_LEVEL: 'error', LOG_FORMAT: 'json' };
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await s?.close();
  });

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
      // The killed attempt's bytes count against the quota; the report says so too.
      await assertBytesReported(s, runId, result);
    },
  );
});

describe('files phases on two worker processes, one killed with SIGKILL mid-batch', () => {
  let s: TestRun;
  const children: ChildProcess[] = [];

  before(async () => {
    s = await prepareRun({ preset: 'tiny', seed: 23, sizeScale: 0.1 }, 'files-two');
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await s?.close();
  });

  test(
    'both take batches; the survivor finishes those of the dead worker; every file once, with its checksum',
    { timeout: 400_000 },
    async () => {
      // One worker per core, FileMaker's concurrency split between them (README, production use).
      const env = { ...process.env, ...s.env, FM_MAX_CONCURRENCY: '2', LOG_LEVEL: 'error', LOG_FORMAT: 'json' };
      const doomed = await spawnWorkerProcess(env, children);
      const survivor = await spawnWorkerProcess(env, children);
      const identity = (c: ChildProcess) => `worker-process-${c.pid!}`;
      s.sim.setFaults({ latencyMs: 40, bandwidthTotalBps: 2 * 1024 * 1024 });
      const runId = `run-${randomUUID()}`;
      const handle = await start(s, runId, { settings: { fileBatchSize: 6, concurrency: 4, cooldownBaseSeconds: 1 } });
      const documents = s.client.workflow.getHandle(`${runId}/documents`);
      // Wait until each worker holds a documents batch of its own.
      let held: { activityId?: string | null; lastWorkerIdentity?: string | null }[] = [];
      const holds = (c: ChildProcess) => held.some((a) => a.lastWorkerIdentity === identity(c));
      for (let i = 0; i < 600 && !(holds(doomed) && holds(survivor)); i++) {
        await delay(200);
        held = await documents
          .describe()
          .then((d) => d.raw.pendingActivities ?? [])
          .catch(() => []);
      }
      assert.ok(holds(doomed) && holds(survivor), 'both workers held a documents batch');
      const orphaned = new Set(held.filter((a) => a.lastWorkerIdentity === identity(doomed)).map((a) => a.activityId));
      doomed.kill('SIGKILL');
      await new Promise<void>((resolve) =>
        doomed.exitCode !== null ? resolve() : doomed.once('exit', () => resolve()),
      );
      s.sim.setFaults({ latencyMs: 0, bandwidthTotalBps: 0 });
      const result = (await handle.result()) as ReimportResult;
      survivor.kill('SIGTERM');
      assert.equal(result.status, 'completed', 'the run completed on the surviving worker');

      // The batches the dead worker held completed, on the survivor's next attempt.
      const events = (await documents.fetchHistory()).events ?? [];
      const activityOf = new Map<string, string>();
      for (const e of events) {
        const a = e.activityTaskScheduledEventAttributes;
        if (a?.activityId) activityOf.set(String(e.eventId), a.activityId);
      }
      const finished = new Map<string, { identity: string; attempt: number }>();
      for (const e of events) {
        const a = e.activityTaskStartedEventAttributes;
        const activityId = a && activityOf.get(String(a.scheduledEventId));
        if (activityId) finished.set(activityId, { identity: a.identity ?? '', attempt: a.attempt ?? 0 });
      }
      let takenOver = 0;
      for (const id of orphaned) {
        const f = finished.get(id ?? '');
        assert.ok(f, `batch ${id ?? ''} completed`);
        // (One the dead worker finished in the instant before the kill counts as its own.)
        if (f.identity === identity(survivor) && f.attempt >= 2) takenOver++;
      }
      assert.ok(takenOver > 0, 'the survivor finished a batch the dead worker held, on its next attempt');
      await assertFilesLanded(s, runId);
      await assertBytesReported(s, runId, result);
    },
  );
});

for (const containerApi of ['odata', 'dataapi'] as const) {
  describe(`files phases on the hostile FileMaker profile, containers over ${containerApi}`, () => {
    let s: Setup;
    before(async () => {
      s = await setup(
        { preset: 'tiny', seed: 22, sizeScale: 0.1, profile: 'hostile' },
        { FM_CONTAINER_API: containerApi },
      );
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
      await assertBytesReported(s, runId, result);
    });
  });
}
