/**
 * Replay: the current workflow code (src/workflows, bundled as the worker bundles it) must reproduce the commands of
 * recorded histories exactly, so a non-deterministic change fails here before it breaks runs in flight. Replays the
 * committed fixtures (test/fixtures/histories, `npm run record-histories`) and a history recorded right here from a
 * fresh tiny run on the real stack, so the test always checks something even when the fixtures are being re-recorded.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import pg from 'pg';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { migrate } from '../../src/store/migrate';
import { startWorker, type RunningWorker } from '../../src/worker';
import {
  HISTORIES_DIR,
  historyFromFixture,
  recordScenario,
  type RecordedHistory,
} from '../../scripts/record-histories';
import { createTestBucket, createTestDatabase, stackEnv } from '../helpers/stack';

const CORE_PHASES = ['backup', 'delete', 'patients', 'appointments', 'notes', 'referrers', 'validation'];

/** Replays every history against `bundle`; returns one line per execution that did not replay cleanly. */
async function replayAll(bundle: WorkflowBundleWithSourceMap, histories: RecordedHistory[]): Promise<string[]> {
  const failures: string[] = [];
  const results = Worker.runReplayHistories(
    { workflowBundle: bundle, replayName: 'fm-reimport-replay' },
    histories.map((h) => ({ workflowId: h.workflowId, history: historyFromFixture(h) })),
  );
  let i = 0;
  for await (const r of results) {
    const h = histories[i++]!;
    if (r.error) failures.push(`${h.scenario} ${h.workflowId} (${h.events} events): ${r.error.message}`);
  }
  assert.equal(i, histories.length, 'every history was replayed');
  return failures;
}

function loadFixtures(): RecordedHistory[] {
  if (!existsSync(HISTORIES_DIR)) return [];
  return readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(HISTORIES_DIR, f), 'utf8')) as RecordedHistory);
}

describe('replay of recorded histories against the current workflow code', () => {
  let bundle: WorkflowBundleWithSourceMap;

  before(async () => {
    // The same entry point the worker registers (src/worker.ts: require.resolve('./workflows')).
    bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../src/workflows'),
      logger: {
        log: () => undefined,
        trace: () => undefined,
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      },
    });
  });

  test('the committed fixture histories replay without a determinism error', async (t) => {
    const fixtures = loadFixtures();
    if (fixtures.length === 0) {
      t.skip('no fixtures recorded yet (npm run record-histories)');
      return;
    }
    for (const h of fixtures) {
      assert.equal(h.history.events.length, h.events, `${h.scenario} ${h.workflowId}: fixture is complete`);
    }
    assert.ok(
      fixtures.some((h) => h.workflowType === 'reimport') && fixtures.some((h) => h.workflowType === 'importPhase'),
      'the fixtures hold a parent and its phase children',
    );
    assert.deepEqual(await replayAll(bundle, fixtures), [], 'every fixture replays');
  });

  describe('a history recorded now from a tiny run', () => {
    let sim: RunningSimulator;
    let worker: RunningWorker;
    let connection: Connection;
    let client: Client;
    let pool: pg.Pool;
    let fresh: RecordedHistory[];

    before(async () => {
      const env = await stackEnv();
      const db = await createTestDatabase();
      const bucket = await createTestBucket();
      await migrate(db.url);
      sim = await startSimulator({ preset: 'tiny', seed: 3 });
      const taskQueue = `replay-${randomUUID()}`;
      const config = loadConfig({
        ...env,
        DATABASE_URL: db.url,
        S3_BUCKET: bucket,
        FM_URL: sim.url,
        FM_DATABASE: sim.database,
        FM_USERNAME: sim.username,
        FM_PASSWORD: sim.password,
        TEMPORAL_TASK_QUEUE: taskQueue,
        LOG_LEVEL: 'warn',
      });
      worker = await startWorker(config, createLogger({ level: 'warn', format: 'json' }));
      connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
      client = new Client({ connection });
      pool = new pg.Pool({ connectionString: db.url });
      fresh = await recordScenario(
        { client, taskQueue, sim, pool, phases: CORE_PHASES },
        'core',
        `replay-${randomUUID()}`,
      );
    });

    after(async () => {
      await worker?.shutdown();
      await connection?.close();
      await pool?.end();
      await sim?.close();
    });

    test('holds the parent, every phase child, the operator messages and a durable cooldown', async () => {
      const types = fresh.map((h) => h.workflowType);
      assert.equal(types.filter((x) => x === 'reimport').length, 1, 'one parent execution (no continue-as-new)');
      const ids = new Set(fresh.map((h) => h.workflowId.split('/')[1] ?? 'parent'));
      for (const phase of CORE_PHASES) assert.ok(ids.has(phase), `the ${phase} child was recorded`);
      const parent = fresh.find((h) => h.workflowType === 'reimport')!;
      const signals = parent.history.events.map(
        (e) => (e.workflowExecutionSignaledEventAttributes as { signalName?: string } | undefined)?.signalName,
      );
      assert.ok(signals.includes('pause') && signals.includes('resume'), 'pause and resume are in the parent history');
      const updates = parent.history.events.map(
        (e) =>
          (e.workflowExecutionUpdateAcceptedEventAttributes as { acceptedRequest?: { input?: { name?: string } } })
            ?.acceptedRequest?.input?.name,
      );
      assert.ok(updates.includes('setSettings'), 'the setSettings update is in the parent history');
      const timers = fresh.flatMap((h) => h.history.events).filter((e) => e.timerStartedEventAttributes);
      assert.ok(timers.length >= 1, 'a cooldown timer is in a phase history');
      const largest = fresh.reduce((a, b) => (b.events > a.events ? b : a));
      console.log(
        `replay: ${fresh.length} executions; largest ${largest.workflowId.split('/')[1] ?? 'parent'} with ` +
          `${largest.events} events; ${fresh.map((h) => `${h.workflowId.split('/')[1] ?? 'parent'}=${h.events}`).join(' ')}`,
      );
      assert.ok(largest.events < 10_240, `every execution stays under the 10,240-event warning (${largest.events})`);
    });

    test('replays without a determinism error', async () => {
      assert.deepEqual(await replayAll(bundle, fresh), [], 'every freshly recorded execution replays');
    });

    test('a history the code would not produce fails to replay (the check can fail)', async () => {
      const parent = fresh.find((h) => h.workflowType === 'reimport')!;
      const tampered = structuredClone(parent);
      const scheduled = (tampered.history.events as Record<string, { activityType?: { name?: string } }>[]).find(
        (e) => e.activityTaskScheduledEventAttributes,
      );
      assert.ok(scheduled, 'the parent schedules an activity');
      scheduled.activityTaskScheduledEventAttributes!.activityType = { name: 'notAnActivityOfThisCode' };
      const failures = await replayAll(bundle, [tampered]);
      assert.equal(failures.length, 1, 'the tampered history is reported');
      assert.match(failures[0]!, /nondetermin|determinism|mismatch/i, 'as a determinism error');
    });
  });
});
