/**
 * rollback: rolls a finished run back on request — restores the database snapshot taken by the run's backup phase
 * (verified by fingerprints) and deletes the S3 objects the run created. Input: `{ runId }` (the reimport's
 * workflow id). Ends with the restored tables' fingerprints, or fails with RESTORE_FAILED.
 */
import { ApplicationFailure, CancellationScope, proxyActivities } from '@temporalio/workflow';
import type { ReimportActivities, RestoreResult } from '../activities/types';
import { ERROR_CODES } from './failures';
import { shortActivity, tableWorkActivity } from './profiles';

export async function rollback(input: { runId: string }): Promise<RestoreResult & { objectsDeleted: number }> {
  if (typeof input?.runId !== 'string' || input.runId.length === 0) {
    throw ApplicationFailure.nonRetryable('invalid input: runId is required', ERROR_CODES.INVALID_INPUT);
  }
  const heavy = proxyActivities<ReimportActivities>(tableWorkActivity);
  const acts = proxyActivities<ReimportActivities>(shortActivity);
  return CancellationScope.nonCancellable(async () => {
    const { deleted } = await heavy.deleteRunObjects({ runId: input.runId });
    const restored = await heavy.restore({ runId: input.runId });
    if (!restored.verified) {
      throw ApplicationFailure.nonRetryable(
        'restored fingerprints differ from the snapshot',
        ERROR_CODES.RESTORE_FAILED,
      );
    }
    await acts.finishRun({ runId: input.runId, status: 'rolled_back', report: { rolledBackOnRequest: true } });
    return { ...restored, objectsDeleted: deleted };
  });
}
