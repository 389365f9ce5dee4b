/**
 * A Temporal server for workflow tests with stubbed activities: the shared stack's when `npm test` runs (it sets
 * TEMPORAL_ADDRESS), else a private dev server from the stack's cached CLI. Not the time-skipping test server: that
 * one is downloaded on first use, which a machine without internet access cannot do; the tests that use this helper
 * wait on no long timer.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { ReimportActivities } from '../../src/activities/types';
import { ensureTemporalCli } from '../../scripts/stack';

export async function workflowTestEnv(): Promise<TestWorkflowEnvironment> {
  const address = process.env.TEMPORAL_ADDRESS;
  if (address) return TestWorkflowEnvironment.createFromExistingServer({ address });
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: ensureTemporalCli() },
      log: { format: 'json', level: 'warn' },
    },
  });
}

/** A pre-flight that passes: a large budget, OData's `$value` as configured. */
export const preflightPassed: ReimportActivities['preflight'] = async () => ({
  schemaVersion: 'test',
  sourceCounts: {},
  transferLeftBytes: 1e9,
  transferBudgetBytes: 1e9,
  containerPath: 'odata',
  containerPathReason: 'CONFIGURED',
});

/** A worker on `env` for the workflows of src/workflows with stubbed `activities`; runs until the returned stop. */
export async function stubbedWorker(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  activities: object,
): Promise<() => Promise<void>> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../../src/workflows'),
    activities,
  });
  const running = worker.run();
  return async () => {
    worker.shutdown();
    await running;
  };
}
