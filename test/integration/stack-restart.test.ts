/**
 * The local stack's Temporal dev server keeps its state in a SQLite file (`--db-filename`): a workflow's history
 * survives stopping the server and starting it again on the same state folder. Runs its own server (only Temporal:
 * PostgreSQL and MinIO are marked as configured elsewhere), so stopping it disturbs no other test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { startStack, type Stack } from '../../scripts/stack';
import type { WiringActivities } from './wiring.test';

// Endpoints set here make startStack start only the Temporal dev server.
const ONLY_TEMPORAL = { DATABASE_URL: 'postgres://127.0.0.1:1/unused', S3_ENDPOINT: 'http://127.0.0.1:1' };

const startTemporal = (stateDir: string) => startStack({ stateDir, ui: false, env: ONLY_TEMPORAL, log: () => {} });

async function reachable(address: string): Promise<boolean> {
  try {
    // connect() waits for the server to answer (getSystemInfo) within connectTimeout.
    const conn = await Connection.connect({ address, connectTimeout: 1000 });
    await conn.close();
    return true;
  } catch {
    return false;
  }
}

test('a workflow history survives stopping and restarting the dev server on the same state folder', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'fm-reimport-restart-'));
  let stack: Stack | undefined;
  try {
    stack = await startTemporal(stateDir);
    const first = stack.env.TEMPORAL_ADDRESS!;
    assert.ok(existsSync(join(stateDir, 'temporal', 'temporal.db')), 'the server writes its SQLite file');

    // A short workflow with activities, so the history has a few dozen events worth keeping.
    const rows = new Map<string, string>();
    const activities: WiringActivities = {
      writeRow: async (marker) => void rows.set(`row:${marker}`, marker),
      readRow: async (marker) => rows.get(`row:${marker}`) ?? 'missing',
      putObject: async (marker) => void rows.set(`object:${marker}`, `object:${marker}`),
      getObject: async (marker) => rows.get(`object:${marker}`) ?? 'missing',
    };
    const nativeConnection = await NativeConnection.connect({ address: first });
    const connection = await Connection.connect({ address: first });
    const taskQueue = `restart-${randomUUID()}`;
    const workflowId = `restart-${randomUUID()}`;
    const marker = randomUUID();
    let before: { historyLength: number; events: number; runId: string };
    try {
      const client = new Client({ connection });
      const worker = await Worker.create({
        connection: nativeConnection,
        taskQueue,
        workflowsPath: require.resolve('../fixtures/wiring-workflow'),
        activities,
      });
      const result = await worker.runUntil(
        client.workflow.execute('wiringWorkflow', { taskQueue, workflowId, args: [{ marker }] }),
      );
      assert.deepEqual(result, { row: marker, object: `object:${marker}` });
      const handle = client.workflow.getHandle(workflowId);
      const described = await handle.describe();
      const history = await handle.fetchHistory();
      before = { historyLength: described.historyLength, events: history.events?.length ?? 0, runId: described.runId };
      assert.ok(before.events >= 11, `a workflow with four activities has a real history: ${before.events} events`);
      assert.equal(before.historyLength, before.events, 'describe and fetchHistory agree before the restart');
    } finally {
      await connection.close();
      await nativeConnection.close();
    }

    await stack.stop();
    stack = undefined;
    assert.equal(await reachable(first), false, `the first server at ${first} is really gone`);

    stack = await startTemporal(stateDir);
    const second = stack.env.TEMPORAL_ADDRESS!;
    const again = await Connection.connect({ address: second });
    try {
      const handle = new Client({ connection: again }).workflow.getHandle(workflowId);
      const described = await handle.describe();
      const history = await handle.fetchHistory();
      assert.equal(described.status.name, 'COMPLETED');
      assert.equal(described.runId, before.runId, 'the same run, not a new one');
      assert.equal(described.historyLength, before.historyLength, 'describe: same history length after the restart');
      assert.equal(history.events?.length ?? 0, before.events, 'fetchHistory: same number of events after the restart');
      assert.deepEqual(await handle.result(), { row: marker, object: `object:${marker}` }, 'the result is kept too');
    } finally {
      await again.close();
    }
  } finally {
    await stack?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
