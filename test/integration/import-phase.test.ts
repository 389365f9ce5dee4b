/**
 * The import phase's scheduling as the workflow does it, on a real Temporal server with stubbed activities (one
 * table, one record per chunk): an overload episode is one cooldown, the window halves and grows back, a quota pause
 * holds until the budget is changed, and continue-as-new carries the operator's state and the phase's progress.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { emptyChunkResult, type ChunkInput, type ReimportActivities } from '../../src/activities/types';
import { settingsSchema, type Settings } from '../../src/workflows/options';
import type { PhaseInput, PhaseResult } from '../../src/workflows/phase';
import { phaseControlSignal, phaseProgressQuery } from '../../src/workflows/messages';
import { ensureTemporalCli } from '../../scripts/stack';
import { workflowTestEnv } from '../helpers/workflow-env';

type Answer = 'ok' | 'overloaded' | 'quota';

interface PhaseStub {
  chunks: number;
  /** How the chunk at `offset` answers, decided when it starts (`n`: how many chunks started before it). */
  answer: (offset: number, n: number, stub: PhaseStub) => Answer | Promise<Answer>;
  /** Milliseconds a successful chunk takes. */
  okMs: number;
  /** Every chunk start: its offset and size, the chunks in flight with it, and the successes so far. */
  starts: { offset: number; limit: number; inFlight: number; succeeded: number }[];
  inFlight: number;
  succeeded: number;
}

const stubs = new Map<string, PhaseStub>();

const activities: Partial<ReimportActivities> = {
  buildManifest: async ({ runId }) => ({ count: stubs.get(runId)!.chunks }),
  importChunk: async ({ runId, offset, limit }: ChunkInput) => {
    const s = stubs.get(runId)!;
    s.inFlight++;
    s.starts.push({ offset, limit, inFlight: s.inFlight, succeeded: s.succeeded });
    try {
      const answer = await s.answer(offset, s.starts.length - 1, s);
      if (answer === 'overloaded') throw ApplicationFailure.nonRetryable('busy', 'FILEMAKER_OVERLOADED');
      if (answer === 'quota') throw ApplicationFailure.nonRetryable('budget spent', 'TRANSFER_QUOTA_EXCEEDED');
      await sleep(s.okMs);
      const n = Math.min(limit, s.chunks - offset);
      s.succeeded += n;
      return { ...emptyChunkResult(), processed: n, byState: { imported: n, unlinked: 0, skipped: 0, failed: 0 } };
    } finally {
      s.inFlight--;
    }
  },
  finishTable: async () => ({ imported: 0, unlinked: 0, skipped: 0, failed: 0 }),
  reconcileTable: async ({ runId, table }) => {
    const s = stubs.get(runId)!;
    return {
      table,
      manifest: s.chunks,
      imported: s.succeeded,
      unlinked: 0,
      skipped: 0,
      failed: 0,
      pending: 0,
      missing: [],
      objectsChecked: 0,
      objectMismatches: [],
      ok: true,
    };
  },
  notify: async () => undefined,
};

const settings = (o: Partial<Settings>) =>
  settingsSchema.parse({ chunkSize: 1, cooldownBaseSeconds: 0.5, cooldownMaxSeconds: 5, ...o });

/** Waits (up to 10 s) until `ready()`. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !ready(); waited += 20) {
    if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Overloaded for the first `n` chunks, answered together once all `n` are in flight. */
const firstWaveOverloaded =
  (n: number) =>
  async (_offset: number, i: number, s: PhaseStub): Promise<Answer> => {
    if (i >= n) return 'ok';
    await until(() => s.starts.length >= n, 'the first wave');
    return 'overloaded';
  };

let bundle: WorkflowBundleWithSourceMap;
before(async () => {
  const quiet = () => undefined;
  bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet },
  });
});

/** A worker for the phase's stubs on `env`, running until the returned stop is called. */
async function startWorker(env: TestWorkflowEnvironment, taskQueue: string) {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities,
  });
  const running = worker.run();
  return async () => {
    worker.shutdown();
    await running;
  };
}

function startPhase(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  stub: Omit<PhaseStub, 'starts' | 'inFlight' | 'succeeded'>,
  phaseSettings: Settings,
) {
  const runId = `phase-${randomUUID().slice(0, 8)}`;
  const s: PhaseStub = { ...stub, starts: [], inFlight: 0, succeeded: 0 };
  stubs.set(runId, s);
  const input: PhaseInput = {
    runId,
    phase: 'appointments',
    // No parent: the phase's progress reports go nowhere, which it tolerates.
    parentWorkflowId: `${runId}-parent`,
    dryRun: false,
    writeBack: false,
    settings: phaseSettings,
    paused: false,
    transferBudgetBytes: 1000,
  };
  return {
    s,
    runId,
    handle: env.client.workflow.start('importPhase', { taskQueue, workflowId: runId, args: [input] }),
  };
}

describe('import phase scheduling', () => {
  let env: TestWorkflowEnvironment;
  let stop: () => Promise<void>;
  const taskQueue = `phase-${randomUUID()}`;

  before(async () => {
    env = await workflowTestEnv();
    stop = await startWorker(env, taskQueue);
  });
  after(async () => {
    await stop?.();
    await env?.teardown();
  });

  test('one overload episode is one cooldown, however many batches it fails', { timeout: 60_000 }, async () => {
    const started = startPhase(
      env,
      taskQueue,
      { chunks: 12, okMs: 20, answer: firstWaveOverloaded(4) },
      settings({ concurrency: 4 }),
    );
    const { s } = started;
    const handle = await started.handle;
    const result: PhaseResult = await handle.result();
    assert.equal(Math.max(...s.starts.slice(0, 4).map((x) => x.inFlight)), 4, 'four chunks failed together');
    assert.equal(result.cooldowns, 1);
    const timers = ((await handle.fetchHistory()).events ?? []).filter((e) => e.timerStartedEventAttributes);
    assert.equal(timers.length, 1, 'one durable timer');
    const summary = timers[0]!.userMetadata?.summary;
    assert.equal(
      summary && defaultPayloadConverter.fromPayload(summary),
      'Cooldown 0.5 s: FileMaker answered overloaded',
    );
    assert.equal(result.byState.imported, 12, 'the failed chunks ran again');
  });

  test('the window halves on overload and grows back by one per success', { timeout: 60_000 }, async () => {
    const started = startPhase(
      env,
      taskQueue,
      { chunks: 24, okMs: 150, answer: firstWaveOverloaded(4) },
      settings({ concurrency: 4 }),
    );
    const { s } = started;
    await (await started.handle).result();
    const afterCooldown = s.starts.slice(4);
    assert.deepEqual(
      afterCooldown.slice(0, 3).map((x) => x.inFlight <= 2),
      [true, true, true],
      `two in flight after the cooldown until a success (${JSON.stringify(afterCooldown.slice(0, 3))})`,
    );
    assert.ok(afterCooldown[2]!.succeeded >= 1, 'the third chunk after the cooldown waited for a success');
    assert.equal(Math.max(...afterCooldown.map((x) => x.inFlight)), 4, 'back to the full concurrency');
  });

  test('a quota pause holds until the budget is changed', { timeout: 60_000 }, async () => {
    let raised = false;
    const started = startPhase(
      env,
      taskQueue,
      { chunks: 6, okMs: 10, answer: (offset) => (offset === 2 && !raised ? 'quota' : 'ok') },
      settings({ concurrency: 1 }),
    );
    const { s } = started;
    const handle = await started.handle;
    await until(() => s.starts.length === 3 && s.inFlight === 0, 'the refused chunk');
    await handle.signal(phaseControlSignal, { paused: false });
    await sleep(1500);
    assert.equal(s.starts.length, 3, 'no chunk starts while paused for the quota, a resume notwithstanding');
    assert.equal((await handle.query(phaseProgressQuery)).pausedForQuota, true);
    raised = true;
    await handle.signal(phaseControlSignal, { transferBudgetBytes: 5000 });
    const result = await handle.result();
    assert.deepEqual(
      s.starts.map((x) => x.offset),
      [0, 1, 2, 2, 3, 4, 5],
    );
    assert.equal(result.byState.imported, 6);
  });
});

describe('import phase continue-as-new', () => {
  let env: TestWorkflowEnvironment;
  let stop: () => Promise<void>;
  const taskQueue = `phase-can-${randomUUID()}`;

  before(async () => {
    // A private server whose workflows are told to continue as new after 60 events, not thousands.
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: ensureTemporalCli() },
        log: { format: 'json', level: 'warn' },
        extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=60'],
      },
    });
    stop = await startWorker(env, taskQueue);
  });
  after(async () => {
    await stop?.();
    await env?.teardown();
  });

  test(
    "continue-as-new carries the operator's settings and budget and the phase's progress",
    { timeout: 60_000 },
    async () => {
      const started = startPhase(
        env,
        taskQueue,
        { chunks: 90, okMs: 10, answer: () => 'ok' },
        settings({ concurrency: 2, chunkSize: 3 }),
      );
      const { s } = started;
      const handle = await started.handle;
      await until(() => s.starts.length >= 2, 'the first chunks');
      // A smaller chunk size, mid-table: the table's pending offsets were spaced by 3, so it applies from the next.
      const changed = settings({ concurrency: 1, cooldownBaseSeconds: 0.25, chunkSize: 1 });
      await handle.signal(phaseControlSignal, { settings: changed, transferBudgetBytes: 4242 });
      const result = await handle.result();
      assert.ok(result.executions >= 2, `continued as new (${result.executions} executions)`);
      assert.equal(result.byState.imported, 90, 'counts carried across executions');
      const read = s.starts.flatMap((x) => Array.from({ length: x.limit }, (_, i) => x.offset + i));
      assert.deepEqual(
        read.sort((a, b) => a - b),
        Array.from({ length: 90 }, (_, i) => i),
        'each manifest position read once',
      );
      const first = await env.client.workflow
        .getHandle(s === stubs.get(started.runId) ? started.runId : '', handle.firstExecutionRunId)
        .fetchHistory();
      const continued = (first.events ?? []).find((e) => e.workflowExecutionContinuedAsNewEventAttributes);
      assert.ok(continued, 'the first execution continued as new');
      const payload = continued.workflowExecutionContinuedAsNewEventAttributes!.input!.payloads![0]!;
      const next = JSON.parse(Buffer.from(payload.data!).toString('utf8')) as PhaseInput;
      assert.deepEqual(next.settings, changed);
      assert.equal(next.transferBudgetBytes, 4242);
      assert.equal(next.paused, false);
      assert.ok(next.carried && next.carried.result.byState.imported > 0, 'the progress so far is carried');
    },
  );
});
