/**
 * The local stack's Temporal dev server keeps its state in a SQLite file (`--db-filename`): a workflow's history
 * survives stopping the server and starting it again on the same state folder. Runs its own server (only Temporal:
 * PostgreSQL and MinIO are marked as configured elsewhere), so stopping it disturbs no other test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { ensureTemporalCli, startStack, type Stack } from '../../scripts/stack';
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

/**
 * A `temporal` that exits at once, as the dev server does when a port it binds was taken meanwhile, for its first
 * `failures` starts; then the real CLI. Set as TEMPORAL_CLI_PATH for one start of the stack.
 */
function flakyCli(dir: string, failures: number): string {
  const path = join(dir, 'flaky-temporal');
  const count = join(dir, 'starts');
  writeFileSync(
    path,
    `#!/bin/sh
n=$(cat '${count}' 2>/dev/null || echo 0)
echo $((n + 1)) > '${count}'
if [ "$n" -lt ${failures} ]; then
  echo "listen tcp 127.0.0.1:1: bind: address already in use (start $((n + 1)))"
  exit 1
fi
exec '${ensureTemporalCli()}' "$@"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

async function withCli<T>(cli: string, run: () => Promise<T>): Promise<T> {
  const before = process.env.TEMPORAL_CLI_PATH;
  process.env.TEMPORAL_CLI_PATH = cli;
  try {
    return await run();
  } finally {
    if (before === undefined) delete process.env.TEMPORAL_CLI_PATH;
    else process.env.TEMPORAL_CLI_PATH = before;
  }
}

test('a dev server that exits while starting is started again on fresh ports; after three such starts the error quotes its log', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'fm-reimport-flaky-start-'));
  const lines: string[] = [];
  let stack: Stack | undefined;
  try {
    stack = await withCli(flakyCli(stateDir, 2), () =>
      startStack({ stateDir, ui: false, env: ONLY_TEMPORAL, log: (l) => lines.push(l) }),
    );
    assert.equal(await reachable(stack.env.TEMPORAL_ADDRESS!), true, 'the third start answers');
    const retries = lines.filter((l) => l.includes('exited while starting'));
    assert.equal(retries.length, 2, lines.join('\n'));
    assert.match(retries[0]!, /attempt 1 of 3\): listen tcp 127\.0\.0\.1:1: bind: address already in use \(start 1\)/);
    assert.match(retries[1]!, /attempt 2 of 3\): .*\(start 2\)/);
    await stack.stop();
    stack = undefined;

    const failing = mkdtempSync(join(stateDir, 'always-'));
    await assert.rejects(
      withCli(flakyCli(failing, 99), () =>
        startStack({ stateDir: failing, ui: false, env: ONLY_TEMPORAL, log: () => {} }),
      ),
      /Temporal dev server exited with code 1 while starting; its log ends: .*\(start 3\)/,
    );
  } finally {
    await stack?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
