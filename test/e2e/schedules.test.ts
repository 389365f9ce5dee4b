/**
 * `npm run client -- schedule …` on the real dev server, PostgreSQL, MinIO and the simulator: a schedule every few
 * seconds starts reimports with the input `start` builds, one after the other and never two at once; a run that
 * fails (the pre-flight refuses a schema it does not know) pauses the schedule; unpause and delete work.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError, type ScheduleDescription } from '@temporalio/client';
import type { RunningWorker } from '../../src/worker';
import type { ReimportResult } from '../../src/workflows/reimport';
import { prepareRun, startTestWorker, type TestRun } from '../helpers/run';

const ROOT = join(__dirname, '..', '..');

describe('reimport schedules', () => {
  let prepared: TestRun;
  let worker: RunningWorker;

  before(async () => {
    prepared = await prepareRun({ preset: 'tiny', seed: 31 }, 'schedules');
    worker = await startTestWorker(prepared, 'error');
  });

  after(async () => {
    await worker?.shutdown();
    await prepared?.close();
  });

  /** The operator's command line, as `npm run client -- …` runs it. */
  const cli = async (...args: string[]) =>
    (
      await promisify(execFile)(process.execPath, ['--import', 'tsx', join('src', 'client', 'cli.ts'), ...args], {
        cwd: ROOT,
        env: { ...process.env, ...prepared.env, NODE_NO_WARNINGS: '1' },
      })
    ).stdout;

  const until = async (what: string, check: () => Promise<boolean>, ms = 90_000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  test('a schedule starts runs one after another, pauses after a failed one, and can be unpaused and deleted', async () => {
    const id = `nightly-${randomUUID().slice(0, 8)}`;
    const handle = prepared.client.schedule.getHandle(id);
    const describe = () => handle.describe();
    assert.match(
      await cli('schedule', 'create', id, '--every', '5s', '--phases', 'patients', '--chunk-size', '40'),
      new RegExp(`created schedule ${id}`),
    );

    const d: ScheduleDescription = await describe();
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal(d.policies.pauseOnFailure, true);
    assert.equal(d.action.type, 'startWorkflow');
    assert.equal(d.action.workflowType, 'reimport');
    assert.equal(d.action.taskQueue, prepared.taskQueue);
    // What `start --phases patients --chunk-size 40` would start.
    assert.deepEqual(d.action.args, [
      { phases: ['patients'], dryRun: false, writeBack: false, settings: { chunkSize: 40 } },
    ]);

    // Two runs, each to its end.
    await until('two runs have finished', async () => {
      const actions = (await describe()).info.recentActions;
      if (actions.length < 2) return false;
      const states = await Promise.all(
        actions.map(
          async (a) => (await prepared.client.workflow.getHandle(a.action.workflow.workflowId).describe()).status.name,
        ),
      );
      return states.filter((s) => s === 'COMPLETED').length >= 2;
    });
    const runs = await Promise.all(
      (await describe()).info.recentActions.map((a) =>
        prepared.client.workflow.getHandle(a.action.workflow.workflowId).describe(),
      ),
    );
    const done = runs.filter((r) => r.status.name === 'COMPLETED');
    assert.ok(done.length >= 2);
    for (const r of done) {
      assert.ok(r.workflowId.startsWith(`${id}-`), 'a scheduled run is named after its schedule');
      const result = (await prepared.client.workflow.getHandle(r.workflowId).result()) as ReimportResult;
      assert.equal(result.status, 'completed');
      assert.deepEqual(
        result.phases.map((p) => p.phase),
        ['backup', 'patients'],
      );
      const ledger = await prepared.pool.query<{ n: number }>(
        `select count(*)::int as n from import_ledger where run_id = $1 and source_table = 'API_Contacts'`,
        [r.workflowId],
      );
      assert.ok(ledger.rows[0]!.n > 0, 'the scheduled run imported patients');
    }
    // Never two at once: each run started after the one before it had closed.
    const byStart = [...runs].sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
    for (let i = 1; i < byStart.length; i++)
      assert.ok(
        byStart[i - 1]!.closeTime !== undefined && byStart[i - 1]!.closeTime! <= byStart[i]!.startTime,
        'runs did not overlap',
      );

    // The next run fails in its pre-flight: the schedule pauses itself.
    const version = (await prepared.pool.query<{ version: string }>('select version from schema_info')).rows[0]!
      .version;
    await prepared.pool.query(`update schema_info set version = 'not-a-known-version'`);
    try {
      await until('the schedule has paused', async () => (await describe()).state.paused);
      const last = (await describe()).info.recentActions.at(-1)!.action.workflow.workflowId;
      await assert.rejects(prepared.client.workflow.getHandle(last).result(), WorkflowFailedError);
      const listed = await cli('schedule', 'list');
      assert.match(listed, new RegExp(`${id}: paused`));
      // No further run while paused.
      const taken = (await describe()).info.numActionsTaken;
      await new Promise((r) => setTimeout(r, 6000));
      assert.equal((await describe()).info.numActionsTaken, taken, 'a paused schedule starts nothing');
    } finally {
      await prepared.pool.query('update schema_info set version = $1', [version]);
    }

    await cli('schedule', 'unpause', id, '--note', 'schema fixed');
    const unpaused = await describe();
    assert.equal(unpaused.state.paused, false);
    assert.equal(unpaused.state.note, 'schema fixed');

    await cli('schedule', 'delete', id);
    await assert.rejects(describe(), /not found/i);
    // The runs it started stay.
    assert.equal((await prepared.client.workflow.getHandle(done[0]!.workflowId).describe()).status.name, 'COMPLETED');
  });
});
