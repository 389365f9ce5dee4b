import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { workerHealthProblems } from '../../scripts/worker-health';
import { stackEnv } from '../helpers/stack';

const healthScript = join(__dirname, '..', '..', 'scripts', 'worker-health.ts');

void test("the compose healthcheck passes only while this host's worker polls both task queues", async () => {
  const env = await stackEnv();
  const taskQueue = `health-${randomUUID()}`;
  const config = loadConfig({ TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE: taskQueue }, 'client');
  const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS });
  // The production worker's two queues: workflows (and metadata activities) on the queue, downloads on -files.
  const mainAs = (identity: string) =>
    Worker.create({
      connection,
      identity,
      taskQueue,
      workflowsPath: require.resolve('../fixtures/wiring-workflow'),
      activities: {},
    });
  const filesAs = (identity: string) =>
    Worker.create({ connection, identity, taskQueue: `${taskQueue}-files`, activities: { noop: async () => {} } });
  const whileRunning = async <T>(workers: Worker[], fn: () => Promise<T>): Promise<T> => {
    const running = workers.map((w) => w.run());
    try {
      // The pollers are registered with the server once their first long poll reaches it.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return await fn();
    } finally {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
    }
  };
  const here = `${process.pid}@${hostname()}`;
  try {
    assert.deepEqual(await workerHealthProblems(config), [
      `no worker on this host polls ${taskQueue} (workflow tasks)`,
      `no worker on this host polls ${taskQueue}-files (container downloads)`,
    ]);
    // Another container's worker on the same queues says nothing about this one.
    const elsewhere = await whileRunning(
      [await mainAs('1@another-container'), await filesAs('1@another-container')],
      () => workerHealthProblems(config),
    );
    assert.equal(elsewhere.length, 2, elsewhere.join('; '));
    // Only the downloads queue polled: still unhealthy, and the problem names the workflow queue.
    assert.deepEqual(await whileRunning([await filesAs(here)], () => workerHealthProblems(config)), [
      `no worker on this host polls ${taskQueue} (workflow tasks)`,
    ]);
    const healthy = await whileRunning([await mainAs(here), await filesAs(here)], async () => ({
      problems: await workerHealthProblems(config),
      // As compose runs it: the exit code is the healthcheck.
      exit: await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', healthScript], {
          env: { ...process.env, TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE: taskQueue },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('exit', (code) => resolve({ code, stderr }));
      }),
    }));
    assert.deepEqual(healthy.problems, []);
    assert.equal(healthy.exit.code, 0, healthy.exit.stderr);
  } finally {
    await connection.close();
  }
});
