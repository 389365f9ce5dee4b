/**
 * What changed since the last run, end to end on the real dev server, PostgreSQL, MinIO and the simulator (tiny
 * preset): after inserts, edits, deletes and a replaced container between two runs, the second run's delta per source
 * table equals the simulator's journal of those changes, in its result and in `run_delta` (the ids), and the first
 * run reports everything as new. When more than the run's threshold of a table vanished, the run stops before the delete
 * phase with nothing changed, and goes on after `confirmVanished` or rolls back on a cancel; a dry run shows the counts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { JournalEntry } from '../../sim/dataset';
import { PHASES, SOURCE_TABLES, type SourceTableName } from '../../src/domain/tables';
import type { TableDelta } from '../../src/domain/delta';
import type { ReimportResult } from '../../src/workflows/reimport';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { RunProgress } from '../../src/workflows/messages';
import { completedRun, setup, start, type Setup } from '../helpers/files';

const TABLES = Object.keys(SOURCE_TABLES) as SourceTableName[];
const EVERY_PHASE = { phases: PHASES };
/** The first test deletes one record of a small table: above the default threshold, it must not stop the run. */
const NO_GATE = { ...EVERY_PHASE, vanishedThreshold: 1 };

/** The result's delta per source table. */
function deltas(result: ReimportResult): Map<string, TableDelta> {
  return new Map(result.phases.flatMap((p) => Object.entries(p.delta ?? {}).map(([t, d]) => [t, d] as const)));
}

/** Net change per record between two journal positions: a record inserted and deleted in between is no change. */
function expectedChanges(
  entries: readonly JournalEntry[],
): Map<string, { added: Set<number>; changed: Set<number>; vanished: Set<number> }> {
  const out = new Map<string, { added: Set<number>; changed: Set<number>; vanished: Set<number> }>();
  for (const e of entries) {
    const t = out.get(e.table) ?? { added: new Set(), changed: new Set(), vanished: new Set() };
    out.set(e.table, t);
    if (e.op === 'insert') t.added.add(e.recordId);
    else if (e.op === 'delete') {
      if (!t.added.delete(e.recordId)) t.vanished.add(e.recordId);
      t.changed.delete(e.recordId);
    } else if (!t.added.has(e.recordId)) t.changed.add(e.recordId);
  }
  return out;
}

// One story in order: each test starts from the runs the one before it completed.
describe('delta since the last run', { concurrency: 1 }, () => {
  let s: Setup;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 26, sizeScale: 0.05 });
  });
  after(async () => {
    await s?.close();
  });

  test('the second run reports exactly the journal of changes made since the first', async () => {
    const first = await completedRun(s, NO_GATE);
    const manifestCount = async (runId: string, table: string) =>
      Number(
        (
          await s.pool.query<{ n: string }>(
            'select count(*)::text as n from source_manifest where run_id = $1 and source_table = $2',
            [runId, table],
          )
        ).rows[0]!.n,
      );
    for (const [table, d] of deltas(first.result)) {
      assert.deepEqual(
        [d.previousRunId, d.added, d.changed, d.unchanged, d.vanished],
        [null, await manifestCount(first.runId, table), 0, 0, 0],
        `${table}: the first run's records are all new`,
      );
    }

    const since = s.sim.dataset.journal.length;
    const pick = (table: string, n: number) => [...s.sim.dataset.table(table)!.scan()].slice(0, n);
    const [p0, p1, p2] = pick('API_Contacts', 3);
    const [a0, a1] = pick('API_event', 2);
    const [d0] = pick('API_Docs', 1);
    const [n0] = pick('API_Notes', 1);
    s.sim.mutate([
      { op: 'update', table: 'API_Contacts', recordId: p0!.recordId },
      { op: 'update', table: 'API_Contacts', recordId: p1!.recordId },
      { op: 'delete', table: 'API_Contacts', recordId: p2!.recordId },
      { op: 'insert', table: 'API_Contacts' },
      { op: 'delete', table: 'API_event', recordId: a0!.recordId },
      { op: 'update', table: 'API_event', recordId: a1!.recordId },
      { op: 'insert', table: 'API_event' },
      { op: 'insert', table: 'API_event' },
      { op: 'replaceContainer', table: 'API_Docs', recordId: d0!.recordId },
      { op: 'insert', table: 'API_Notes' },
      { op: 'delete', table: 'API_Notes', recordId: n0!.recordId },
    ]);
    const expected = expectedChanges(s.sim.dataset.journal.slice(since));

    const second = await completedRun(s, NO_GATE);
    const got = deltas(second.result);
    let archivedTotal = 0;
    for (const table of TABLES) {
      const d = got.get(table);
      assert.ok(d, `${table}: a delta`);
      const e = expected.get(table);
      const total = await manifestCount(second.runId, table);
      const want = { added: e?.added.size ?? 0, changed: e?.changed.size ?? 0, vanished: e?.vanished.size ?? 0 };
      assert.deepEqual(
        { previousRunId: d.previousRunId, added: d.added, changed: d.changed, vanished: d.vanished },
        { previousRunId: first.runId, ...want },
        table,
      );
      assert.equal(d.unchanged, total - want.added - want.changed, `${table}: unchanged`);
      // The ids are in the database: the records the journal names, by FileMaker record id.
      const rows = await s.pool.query<{ record_id: string; change: string }>(
        'select record_id, change from run_delta where run_id = $1 and source_table = $2 order by 1',
        [second.runId, table],
      );
      const listed = (change: string) =>
        rows.rows
          .filter((r) => r.change === change)
          .map((r) => Number(r.record_id))
          .sort((x, y) => x - y);
      for (const change of ['added', 'changed', 'vanished'] as const) {
        assert.deepEqual(
          listed(change),
          [...(e?.[change] ?? [])].sort((x, y) => x - y),
          `${table} ${change}`,
        );
      }
      // A vanished record the first run imported is archived with its last row, never left to the delete phase.
      const imported = await s.pool.query<{ record_id: string; filemaker_id: string }>(
        `select record_id, filemaker_id from import_ledger
          where run_id = $1 and source_table = $2 and state in ('imported', 'unlinked') and record_id = any($3)`,
        [first.runId, table, [...(e?.vanished ?? [])].map(String)],
      );
      const archive = await s.pool.query<{ record_id: string; row: { filemaker_id?: string } | null }>(
        `select record_id, row from archived_records where missing_since_run_id = $1 and source_table = $2`,
        [second.runId, table],
      );
      assert.equal(d.archived ?? 0, imported.rowCount, `${table}: archived`);
      assert.deepEqual(
        archive.rows.map((r) => [r.record_id, r.row?.filemaker_id]).sort(),
        imported.rows.map((r) => [r.record_id, r.filemaker_id]).sort(),
        `${table}: the archive holds each vanished record's last row`,
      );
      archivedTotal += archive.rowCount ?? 0;
    }
    // Not vacuous: of the deleted patient, appointment and note, those the first run imported are there.
    assert.ok(archivedTotal >= 2, `archived ${archivedTotal}`);
  });

  /** Deletes `n` patients from the simulator, as an accidental delete in FileMaker would. */
  const deletePatients = (n: number) =>
    s.sim.mutate(
      [...s.sim.dataset.table('API_Contacts')!.scan()]
        .slice(0, n)
        .map((r) => ({ op: 'delete' as const, table: 'API_Contacts', recordId: r.recordId })),
    );
  const patientRows = async () =>
    (await s.pool.query<{ f: string }>('select filemaker_id as f from patients order by 1')).rows.map((r) => r.f);

  /** Starts a run and waits until it stops for a confirmation; the progress it shows then. */
  async function awaitingRun(runId: string): Promise<{ handle: WorkflowHandle; progress: RunProgress }> {
    const handle = await start(s, runId, EVERY_PHASE);
    for (let i = 0; i < 600; i++) {
      const progress = await handle.query<RunProgress>('progress');
      if (progress.status === 'awaiting_confirmation') return { handle, progress };
      assert.ok(!['completed', 'failed', 'rolled_back'].includes(progress.status), `run went on: ${progress.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the run never stopped for a confirmation');
  }

  const patientCount = () => [...s.sim.dataset.table('API_Contacts')!.scan()].length;
  const vanishedOf = (p: { vanished?: { table: string; vanished: number }[] }) =>
    p.vanished?.find((v) => v.table === 'API_Contacts')?.vanished;

  test('5% of patients gone: the run waits before deleting anything and continues after confirmVanished', async () => {
    const n = Math.ceil(patientCount() * 0.05);
    deletePatients(n);
    const before = await patientRows();
    const { handle, progress } = await awaitingRun('gate-confirmed');
    assert.equal(vanishedOf(progress), n);
    assert.deepEqual(await patientRows(), before, 'nothing deleted while it waits');
    await handle.executeUpdate('confirmVanished', { args: [] });
    await assert.rejects(handle.executeUpdate('confirmVanished', { args: [] }), 'a second confirmation is refused');
    const result = (await handle.result()) as ReimportResult;
    assert.equal(result.status, 'completed');
    assert.equal(vanishedOf(result), n);
    const archived = await s.pool.query(
      `select 1 from archived_records where missing_since_run_id = 'gate-confirmed' and source_table = 'API_Contacts'`,
    );
    assert.equal(archived.rowCount, n, 'the vanished patients are archived');
  });

  test('a dry run shows the vanished counts, and a cancelled wait rolls back with nothing changed', async () => {
    const n = Math.ceil(patientCount() * 0.05);
    deletePatients(n);
    const before = await patientRows();
    const dry = (await (await start(s, 'gate-dry', { ...EVERY_PHASE, dryRun: true })).result()) as ReimportResult;
    assert.equal(dry.status, 'dry_run');
    assert.equal(vanishedOf(dry), n, 'the dry run counts what a run would stop for');

    const { handle } = await awaitingRun('gate-cancelled');
    await handle.cancel();
    await assert.rejects(handle.result(), WorkflowFailedError);
    assert.deepEqual(await patientRows(), before, 'the rollback leaves the patients as they were');
  });
});
