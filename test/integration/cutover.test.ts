/**
 * The cut-over's decisions on a real Temporal server with stubbed activities: a final import that fails while the
 * source moved is reported as the source that moved (the cause to act on), one that fails on a frozen source keeps
 * its own failure, neither is certified, and an id that cannot name the final run is refused before anything is read.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, ChildWorkflowFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { CutoverActivities, ReimportActivities } from '../../src/activities/types';
import { compareVersions } from '../../src/domain/freeze';
import { stubbedWorkflows } from '../helpers/workflow-env';

interface CutoverStub {
  /** What each freeze check after the first read finds moved in API_Contacts: record id → new version. */
  checks: Record<string, string>[];
  calls: string[];
}

const stubs = new Map<string, CutoverStub>();
const FIRST = new Map([
  ['7', '1'],
  ['8', '1'],
]);

const activities: Partial<ReimportActivities & CutoverActivities> = {
  freezeSnapshot: async ({ cutoverId }) => {
    stubs.get(cutoverId)!.calls.push('freezeSnapshot');
    return [{ table: 'API_Contacts', records: FIRST.size }];
  },
  freezeCheck: async ({ cutoverId }) => {
    const s = stubs.get(cutoverId)!;
    s.calls.push('freezeCheck');
    const moved = s.checks.shift() ?? {};
    const now = [...FIRST].map(([recordId, modId]) => ({ recordId, modId: moved[recordId] ?? modId }));
    return [compareVersions('API_Contacts', FIRST, now)];
  },
  writeCertificate: async ({ runId }) => {
    stubs.get(runId.replace(/-import$/, ''))!.calls.push('writeCertificate');
    return { certificateKey: 'k', ledgerDigest: 'd', ledgerRows: 0 };
  },
  // The final import fails at once, before it changes anything.
  preflight: async () => {
    throw ApplicationFailure.nonRetryable('FileMaker refused the run', 'PREFLIGHT_FAILED');
  },
  notify: async () => undefined,
};

describe('cut-over', () => {
  const env = stubbedWorkflows('cutover', activities);
  const { taskQueue } = env;

  /** Runs a cut-over to its failure; the failure's cause and the activities it called. */
  async function failedCutover(checks: Record<string, string>[], cutoverId = `cutover-${randomUUID().slice(0, 8)}`) {
    const s: CutoverStub = { checks, calls: [] };
    stubs.set(cutoverId, s);
    const err = await env.client.workflow
      .execute('cutover', { taskQueue, workflowId: cutoverId, args: [{ freezeIntervalSeconds: 1 }] })
      .then(
        () => assert.fail('the cut-over completed'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    return { cause: err.cause, calls: s.calls };
  }

  test('a final import that fails while the source moved fails with SOURCE_CHANGED naming the records', async () => {
    const { cause, calls } = await failedCutover([{}, { '8': '2' }]);
    assert.ok(cause instanceof ApplicationFailure, String(cause));
    assert.equal(cause.type, 'SOURCE_CHANGED');
    assert.equal(
      cause.message,
      'source changed during the final import (which failed): API_Contacts: 1 changed (record 8)',
    );
    assert.deepEqual(calls, ['freezeSnapshot', 'freezeCheck', 'freezeCheck']);
  });

  test("a final import that fails on a frozen source fails with the import's own failure, uncertified", async () => {
    const { cause, calls } = await failedCutover([{}, {}]);
    assert.ok(cause instanceof ChildWorkflowFailure, String(cause));
    assert.match(cause.execution?.workflowId ?? '', /-import$/);
    assert.deepEqual(calls, ['freezeSnapshot', 'freezeCheck', 'freezeCheck']);
  });

  test('a change in the freeze interval fails it before the import', async () => {
    const { cause, calls } = await failedCutover([{ '7': '5' }]);
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.message, 'source changed in the 1 s freeze interval: API_Contacts: 1 changed (record 7)');
    assert.deepEqual(calls, ['freezeSnapshot', 'freezeCheck']);
  });

  test('a cut-over id that cannot name a run is refused before FileMaker is read', async () => {
    const { cause, calls } = await failedCutover([], 'cut/over');
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.type, 'INVALID_INPUT');
    assert.deepEqual(calls, []);
  });
});
