/**
 * The reimport's saga on a real Temporal server with stubbed activities: after the backup, a failed phase or a cancel
 * runs the compensations last-first (restore the snapshot, then delete the run's objects), each to its end even though
 * the run was cancelled, and one that fails does not stop the others.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { ReimportActivities } from '../../src/activities/types';
import { preflightPassed, stubbedWorkflows } from '../helpers/workflow-env';

/** How the stubbed manifest of a run behaves: fails for good, or waits until the run is cancelled. */
type Manifest = 'fails' | 'waits';

interface RunStub {
  manifest: Manifest;
  restoreVerified: boolean;
  /** Activities in the order they finished (compensations and bookkeeping), with the run status on finishRun. */
  calls: string[];
  /** Resolved when the phase asks for its manifest. */
  manifestReached: Promise<void>;
  reachManifest: () => void;
}

const runs = new Map<string, RunStub>();
const stub = (runId: string) => runs.get(runId.split('/')[0]!)!;

const activities: Partial<ReimportActivities> = {
  preflight: preflightPassed,
  startRun: async ({ runId }) => {
    stub(runId).calls.push('startRun');
  },
  backup: async ({ runId }) => {
    stub(runId).calls.push('backup');
    return { tables: { patients: { rows: 3, fingerprint: 'f' } }, objectsBefore: 0, backupKey: undefined };
  },
  buildManifest: async ({ runId }) => {
    const s = stub(runId);
    s.reachManifest();
    if (s.manifest === 'fails') throw ApplicationFailure.nonRetryable('manifest changed while read', 'MANIFEST_BROKEN');
    // Until the cancel reaches this activity (at a heartbeat).
    for (;;) {
      Context.current().heartbeat();
      await Context.current().sleep(100);
    }
  },
  restore: async ({ runId }) => {
    const s = stub(runId);
    // Slow enough that a compensation cut short by the cancel would show.
    await new Promise((r) => setTimeout(r, 300));
    s.calls.push('restore');
    return { tables: {}, verified: s.restoreVerified };
  },
  deleteRunObjects: async ({ runId }) => {
    stub(runId).calls.push('deleteRunObjects');
    return { deleted: 2 };
  },
  finishRun: async ({ runId, status }) => {
    stub(runId).calls.push(`finishRun:${status}`);
    return { reportKey: undefined };
  },
  notify: async () => undefined,
};

describe('reimport saga', () => {
  const env = stubbedWorkflows('saga', activities);
  const { taskQueue } = env;

  const start = async (manifest: Manifest, restoreVerified = true) => {
    const runId = `saga-${randomUUID().slice(0, 8)}`;
    let reachManifest = () => {};
    const manifestReached = new Promise<void>((resolve) => (reachManifest = resolve));
    const s: RunStub = { manifest, restoreVerified, calls: [], manifestReached, reachManifest };
    runs.set(runId, s);
    const handle = await env.client.workflow.start('reimport', {
      taskQueue,
      workflowId: runId,
      args: [{ phases: ['patients'] }],
    });
    const outcome = handle.result().then(
      () => undefined,
      (err: unknown) => err,
    );
    return { s, handle, outcome };
  };

  const rootCause = (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError, 'the run failed');
    return err.cause;
  };

  test(
    'a failed phase runs the compensations last-first: restore, then delete the run objects',
    { timeout: 60_000 },
    async () => {
      const { s, outcome } = await start('fails');
      const cause = rootCause(await outcome);
      assert.ok(cause instanceof ApplicationFailure);
      assert.equal(cause.type, 'RUN_ROLLED_BACK');
      assert.deepEqual(s.calls, ['startRun', 'backup', 'restore', 'deleteRunObjects', 'finishRun:rolled_back']);
    },
  );

  test('a cancel runs every compensation to its end', { timeout: 60_000 }, async () => {
    const { s, handle, outcome } = await start('waits');
    await s.manifestReached;
    await handle.cancel();
    const cause = rootCause(await outcome);
    assert.equal(cause?.name, 'CancelledFailure', 'the run ends cancelled');
    assert.deepEqual(s.calls, ['startRun', 'backup', 'restore', 'deleteRunObjects', 'finishRun:rolled_back']);
  });

  test(
    'a compensation that fails does not stop the ones before it, and the run says the rollback is incomplete',
    { timeout: 60_000 },
    async () => {
      const { s, outcome } = await start('fails', false);
      const cause = rootCause(await outcome);
      assert.ok(cause instanceof ApplicationFailure);
      assert.equal(cause.type, 'ROLLBACK_FAILED');
      assert.match(cause.message, /restore database snapshot: RESTORE_FAILED/);
      assert.deepEqual(s.calls, ['startRun', 'backup', 'restore', 'deleteRunObjects', 'finishRun:failed']);
    },
  );
});
