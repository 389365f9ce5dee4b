/**
 * The cut-over, end to end on the real dev server, PostgreSQL, MinIO and the simulator (tiny preset), after one
 * completed run: started by the client command on a frozen source it completes with every table's records as the simulator holds them, the final
 * run completed, and the run's certificate in S3 beside its report, stating the run's ledger digest. A record edited
 * (its version moved, its id did not), deleted or inserted while the freeze interval's timer runs fails it before any
 * import with SOURCE_CHANGED naming those record ids; an edit during the final import fails it after the import.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import {
  ApplicationFailure,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type WorkflowHandle,
} from '@temporalio/client';
import { PHASES, SOURCE_TABLES } from '../../src/domain/tables';
import type { TableFreeze } from '../../src/domain/freeze';
import { getObject, headObject } from '../../src/s3';
import { ledgerDigest } from '../../src/store/certificate';
import type { CutoverInput, CutoverProgress, CutoverResult } from '../../src/workflows/cutover-input';
import { DRY_RUN_ATTRIBUTE, PHASE_ATTRIBUTE, STATUS_ATTRIBUTE } from '../../src/workflows/search-attributes';
import { completedRun, setup, type Setup } from '../helpers/files';

/** Short: the tests wait for the timer, and mutate the simulator while it runs. */
const input = (freezeIntervalSeconds: number): CutoverInput => ({
  freezeIntervalSeconds,
  certificateSample: 2,
  import: { settings: { fileBatchSize: 6, cooldownBaseSeconds: 1 }, vanishedThreshold: 1 },
});

describe('cut-over', { concurrency: 1 }, () => {
  let s: Setup;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 27, sizeScale: 0.05 });
    // The final import is incremental: it needs a completed run to compare with.
    await completedRun(s, { phases: PHASES, vanishedThreshold: 1 });
  });
  after(async () => {
    await s?.close();
  });

  const startCutover = (id: string, freezeIntervalSeconds: number) =>
    s.client.workflow.start('cutover', {
      taskQueue: s.taskQueue,
      workflowId: id,
      args: [input(freezeIntervalSeconds)],
    });

  /** Waits until the cut-over reaches `stage` (polling its query), failing if it ends first. */
  async function reached(handle: WorkflowHandle, stage: CutoverProgress['stage']): Promise<void> {
    for (let i = 0; i < 1200; i++) {
      const p = await handle.query<CutoverProgress>('cutoverProgress');
      if (p.stage === stage) return;
      assert.ok(!['cutover_complete', 'failed'].includes(p.stage), `cut-over ended (${p.stage}) before ${stage}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the cut-over never reached ${stage}`);
  }

  /** The SOURCE_CHANGED failure of a cut-over: its message and the tables that moved. */
  async function sourceChanged(handle: WorkflowHandle): Promise<{ message: string; moved: TableFreeze[] }> {
    const err = await handle.result().then(
      () => assert.fail('the cut-over completed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const cause = err.cause;
    assert.ok(cause instanceof ApplicationFailure, `cause ${String(cause)}`);
    assert.equal(cause.type, 'SOURCE_CHANGED');
    assert.equal(cause.nonRetryable, true);
    return { message: cause.message, moved: (cause.details?.[0] ?? []) as TableFreeze[] };
  }

  const records = (table: string) => [...s.sim.dataset.table(table)!.scan()];

  test('on a frozen source it completes: the final run, every table, and the certificate in S3', async () => {
    // Started by the client command, as an operator would (asynchronously: the simulator answers from this process).
    const cli = await promisify(execFile)(
      join('node_modules', '.bin', 'tsx'),
      ['src/client/cli.ts', 'cutover', '--id', 'cutover-frozen', '--freeze-interval', '1', '--sample', '2'],
      { env: { ...process.env, ...s.env }, encoding: 'utf8' },
    );
    const result = (await s.client.workflow.getHandle('cutover-frozen').result()) as CutoverResult;
    assert.match(cli.stdout, /^cut-over cutover-frozen: cutover complete$/m);
    assert.ok(cli.stdout.includes(`certificate: s3://${s.bucket}/${result.certificateKey}`), cli.stdout);
    assert.equal(result.status, 'cutover_complete');
    assert.equal(result.runId, 'cutover-frozen-import');
    assert.deepEqual(
      Object.fromEntries(result.tables.map((t) => [t.table, t.records])),
      Object.fromEntries(Object.keys(SOURCE_TABLES).map((t) => [t, records(t).length])),
      'every table with the records the simulator holds',
    );
    const run = await s.pool.query<{ status: string; options: { mode?: string; writeBack?: boolean } }>(
      'select status, options from reimport_runs where run_id = $1',
      [result.runId],
    );
    assert.equal(run.rows[0]?.status, 'completed');
    assert.deepEqual([run.rows[0]?.options.mode, run.rows[0]?.options.writeBack], ['incremental', false]);
    assert.equal(result.phases.find((p) => p.phase === 'delete')?.status, 'skipped', 'incremental: nothing deleted');
    // The final import is filtered in the Web UI's run list like any run the client starts.
    const attributes = (await s.client.workflow.getHandle(result.runId).describe()).typedSearchAttributes;
    assert.deepEqual(
      [attributes.get(STATUS_ATTRIBUTE), attributes.get(PHASE_ATTRIBUTE), attributes.get(DRY_RUN_ATTRIBUTE)],
      ['completed', 'validation', false],
    );
    // What the reads saw is in PostgreSQL, not in the history: every record id with its version.
    const stored = await s.pool.query<{ n: number }>(
      `select count(*)::int as n from cutover_freeze_records where cutover_id = 'cutover-frozen'`,
    );
    assert.equal(
      stored.rows[0]!.n,
      result.tables.reduce((n, t) => n + t.records, 0),
    );

    assert.equal(result.certificateKey, 'reports/cutover-frozen-import.certificate.html');
    assert.ok(result.reportKey && (await headObject(s.s3, s.bucket, result.reportKey)), 'the run report is there');
    const page = await (await getObject(s.s3, s.bucket, result.certificateKey)).Body!.transformToString();
    const { digest } = await ledgerDigest(s.pool, result.runId);
    assert.equal(result.ledgerDigest, digest);
    assert.ok(page.includes(`<span class="digest" id="digest">${digest}</span>`), 'the page states the ledger digest');
    assert.ok(page.includes(`Run <b>${result.runId}</b>: completed`), 'the page is the completed run');
    assert.equal((page.match(/class="patient"/g) ?? []).length, 2, 'the sample asked for');
    // The page holds patient data: the command prints where it is, not what it says.
    assert.ok(!cli.stdout.includes('class="patient"') && !cli.stderr.includes('class="patient"'));
  });

  test('an edit, a delete and an insert during the freeze interval fail it with their record ids, before any import', async () => {
    const handle = await startCutover('cutover-moved', 8);
    await reached(handle, 'waiting');
    const [edited] = records('API_Contacts');
    const [deleted] = records('API_event');
    const [, inserted] = s.sim.mutate([
      { op: 'update', table: 'API_Contacts', recordId: edited!.recordId },
      { op: 'insert', table: 'API_Notes' },
      { op: 'delete', table: 'API_event', recordId: deleted!.recordId },
    ]);
    const { message, moved } = await sourceChanged(handle);
    const byTable = new Map(moved.map((t) => [t.table, t]));
    // The edit changed the record's version only: the same record id, so only a comparison of versions sees it.
    assert.deepEqual(byTable.get('API_Contacts')?.moved, {
      changed: [String(edited!.recordId)],
      added: [],
      vanished: [],
    });
    assert.deepEqual(byTable.get('API_Notes')?.moved.added, [String(inserted!.recordId)]);
    assert.deepEqual(byTable.get('API_event')?.moved.vanished, [String(deleted!.recordId)]);
    assert.deepEqual([...byTable.keys()].sort(), ['API_Contacts', 'API_Notes', 'API_event']);
    assert.match(message, /freeze interval/);
    assert.match(message, new RegExp(`API_Contacts: 1 changed \\(record ${edited!.recordId}\\)`));
    await assert.rejects(
      s.client.workflow.getHandle('cutover-moved-import').describe(),
      WorkflowNotFoundError,
      'no import was started',
    );
  });

  test('an edit during the final import fails it after the import, naming the record', async () => {
    const handle = await startCutover('cutover-moved-late', 1);
    await reached(handle, 'importing');
    const [edited] = records('API_Referrer');
    s.sim.mutate([{ op: 'update', table: 'API_Referrer', recordId: edited!.recordId }]);
    const { message, moved } = await sourceChanged(handle);
    assert.deepEqual(
      moved.map((t) => [t.table, t.moved.changed]),
      [['API_Referrer', [String(edited!.recordId)]]],
    );
    // Seen by the read after the import, which completed: the run stays as it is, without a certificate.
    assert.match(message, /^source changed during the final import: API_Referrer: 1 changed/);
    const run = await s.pool.query<{ status: string }>('select status from reimport_runs where run_id = $1', [
      'cutover-moved-late-import',
    ]);
    assert.equal(run.rows[0]?.status, 'completed');
    assert.equal(await headObject(s.s3, s.bucket, 'reports/cutover-moved-late-import.certificate.html'), undefined);
  });
});
