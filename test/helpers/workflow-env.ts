/**
 * A Temporal server for workflow tests with stubbed activities: the shared stack's when `npm test` runs (it sets
 * TEMPORAL_ADDRESS), else a private dev server from the stack's cached CLI. Not the time-skipping test server: that
 * one is downloaded on first use, which a machine without internet access cannot do; the tests that use this helper
 * wait on no long timer.
 */
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import type { Client } from '@temporalio/client';
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

/**
 * For a suite (call it in `describe`): a workflow test server and a worker on its own task queue for the workflows of
 * src/workflows with stubbed `activities`, started before the suite's tests and stopped after them. `client` is
 * usable from the first test on.
 */
export function stubbedWorkflows(queuePrefix: string, activities: object): { client: Client; taskQueue: string } {
  const taskQueue = `${queuePrefix}-${randomUUID()}`;
  let env: TestWorkflowEnvironment | undefined;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  before(async () => {
    env = await workflowTestEnv();
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../src/workflows'),
      activities,
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });
  return {
    taskQueue,
    get client() {
      if (!env) throw new Error('the workflow test server has not started yet');
      return env.client;
    },
  };
}
