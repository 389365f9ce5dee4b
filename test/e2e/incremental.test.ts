/**
 * Incremental runs, end to end on the real dev server, PostgreSQL, MinIO and the simulator (tiny preset): an
 * incremental run refuses to start without a completed run to build on; with nothing changed it reads no record again;
 * and after inserts, edits, deletes (a patient with appointments and files among them) and replaced containers, it
 * leaves the database and S3 exactly as a full run over the same changed source does — same table fingerprints, same
 * objects — while carrying most records over unread.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import type { RunProgress } from '../../src/workflows/messages';
import { KEY_PREFIX } from '../../src/domain/keys';
import { PHASES } from '../../src/domain/tables';
import { inventory } from '../../src/s3';
import { fingerprintAll } from '../../src/store/backup';
import type { ReimportResult } from '../../src/workflows/reimport';
import { completedRun, setup, start, type Setup } from '../helpers/files';

const EVERY_PHASE = { phases: PHASES, vanishedThreshold: 1 };
const INCREMENTAL = { ...EVERY_PHASE, mode: 'incremental' };
/** The id of a patient that arrives only after an appointment naming it was imported (unlinked). */
const UNBORN_PATIENT = '0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9';

/** The root cause's type of a failed workflow (its ApplicationFailure code). */
function failureType(err: unknown): string | undefined {
  let cause: unknown = err;
  while (cause instanceof Error && cause.cause) cause = cause.cause;
  return (cause as { type?: string }).type;
}

describe('incremental runs', { concurrency: 1 }, () => {
  let s: Setup;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 27, sizeScale: 0.05 });
  });
  after(async () => {
    await s?.close();
  });

  /** What Nexus holds: every table's fingerprint, and every imported object with its size and ETag. */
  const nexus = async () => {
    const objects: string[] = [];
    for await (const o of inventory(s.s3, s.bucket, `${KEY_PREFIX}/`)) objects.push(`${o.key} ${o.size} ${o.etag}`);
    return { tables: await fingerprintAll(s.pool), objects: objects.sort() };
  };
  /** Per run: records carried over unchanged, and records the run read again (its ledger entries of its own). */
  const ledgerSplit = async (runId: string) => {
    const r = await s.pool.query<{ carried: number; read: number }>(
      `select count(*) filter (where carried_from is not null)::int as carried,
              count(*) filter (where carried_from is null)::int as read
         from import_ledger where run_id = $1`,
      [runId],
    );
    return r.rows[0]!;
  };

  test('an incremental run without a completed run to build on is refused, changing nothing', async () => {
    const handle = await start(s, 'incremental-first', INCREMENTAL);
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.equal(failureType(err), 'INCREMENTAL_REFUSED');
      return true;
    });
    const runs = await s.pool.query('select 1 from reimport_runs where run_id = $1', ['incremental-first']);
    assert.equal(runs.rowCount, 0, 'the refused run is not registered');
    const patients = await s.pool.query('select 1 from patients');
    assert.equal(patients.rowCount, 0, 'nothing imported');
  });

  /** A patient with an appointment of no clinic of its own, which takes the patient's (the later test moves it). */
  let movingPatient: { recordId: number; fields: Record<string, unknown> } | undefined;

  test('with nothing changed, an incremental run carries every record over and changes nothing', async () => {
    movingPatient = [...s.sim.dataset.table('API_Contacts')!.scan()][5]!;
    s.sim.mutate([
      { op: 'insert', table: 'API_event', fields: { id_Contact: String(movingPatient.fields.id), id_Clinic: '' } },
      { op: 'insert', table: 'API_event', fields: { id_Contact: UNBORN_PATIENT } },
    ]);
    await completedRun(s, EVERY_PHASE);
    const before = await nexus();
    const run = await completedRun(s, INCREMENTAL);
    assert.deepEqual(await nexus(), before, 'Nexus as it was');
    const split = await ledgerSplit(run.runId);
    const bad = await s.pool.query<{ n: number }>(
      `select count(*)::int as n from source_manifest m where run_id = $1 and (id_issue is not null or exists (
         select 1 from import_ledger l where l.run_id = $1 and l.record_id = m.record_id
            and l.source_table = m.source_table and l.reason_code = 'DOWNLOAD_FAILED'))`,
      [run.runId],
    );
    // Records whose id cannot key a row are failed again (no FileMaker read), files whose download failed are tried
    // again; every other record is carried.
    assert.ok(split.carried > 0, 'records carried over');
    const read = await s.pool.query<{ t: string; state: string; reason: string | null; n: number }>(
      `select source_table as t, state, reason_code as reason, count(*)::int as n from import_ledger
        where run_id = $1 and carried_from is null group by 1, 2, 3 order by 1, 2, 3`,
      [run.runId],
    );
    assert.ok(split.read <= bad.rows[0]!.n, `read again: ${JSON.stringify(read.rows)}`);
  });

  test('after changes, an incremental run leaves Nexus exactly as a full run does', async () => {
    const ds = s.sim.dataset;
    const rows = (table: string) => [...ds.table(table)!.scan()];
    const patients = rows('API_Contacts');
    const text = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : '');
    const patientIds = new Set(patients.map((p) => text(p.fields.id)));
    // A patient with appointments goes: its appointments, notes and files become unlinked in both runs.
    const linked = rows('API_event').find(
      (e) => patientIds.has(text(e.fields.id_Contact)) && text(e.fields.id_Contact) !== text(movingPatient!.fields.id),
    );
    assert.ok(linked, 'an appointment with its patient');
    const gone = patients.find((p) => text(p.fields.id) === text(linked.fields.id_Contact))!;
    const others = patients.filter((p) => p !== gone);
    const [a0, a1] = rows('API_event').filter((e) => e !== linked);
    // A patient moves clinic: an appointment without a clinic of its own takes its patient's, so that unchanged
    // appointment must be read again.
    const moved = movingPatient!;
    const clinics = rows('API_Clinic_Name').map((c) => c.fields.id);
    const newClinic = clinics.find((c) => text(c) !== text(moved.fields.id_Clinic));
    // A patient arrives that an appointment already named: the appointment, unchanged and unlinked so far, links now.
    const [doc] = rows('API_Docs');
    const [img] = rows('API_Images');
    const [note] = rows('API_Notes');
    const [detail] = rows('API_Contact_Details');
    const [referrer] = rows('API_Referrer');
    s.sim.mutate([
      { op: 'delete', table: 'API_Contacts', recordId: gone.recordId },
      { op: 'update', table: 'API_Contacts', recordId: others[0]!.recordId },
      { op: 'update', table: 'API_Contacts', recordId: others[1]!.recordId },
      { op: 'insert', table: 'API_Contacts' },
      { op: 'update', table: 'API_event', recordId: a0!.recordId },
      { op: 'delete', table: 'API_event', recordId: a1!.recordId },
      { op: 'insert', table: 'API_event' },
      { op: 'replaceContainer', table: 'API_Docs', recordId: doc!.recordId },
      { op: 'replaceContainer', table: 'API_Images', recordId: img!.recordId },
      { op: 'insert', table: 'API_Docs' },
      { op: 'delete', table: 'API_Notes', recordId: note!.recordId },
      { op: 'insert', table: 'API_Notes' },
      { op: 'update', table: 'API_Contact_Details', recordId: detail!.recordId },
      { op: 'update', table: 'API_Referrer', recordId: referrer!.recordId },
      { op: 'update', table: 'API_Contacts', recordId: moved.recordId, fields: { id_Clinic: newClinic ?? '' } },
      { op: 'insert', table: 'API_Contacts', fields: { id: UNBORN_PATIENT } },
    ]);

    // The same changed source, twice: a full run, rolled back on request, then an incremental one.
    const full = await completedRun(s, EVERY_PHASE);
    const afterFull = await nexus();
    await s.client.workflow.execute('rollback', {
      taskQueue: s.taskQueue,
      workflowId: `${full.runId}/rollback`,
      args: [{ runId: full.runId }],
    });
    const incremental = await completedRun(s, INCREMENTAL);
    const afterIncremental = await nexus();
    const unborn = await s.pool.query(
      `select 1 from appointments a join patients p on p.id = a.patient_id where p.filemaker_id = $1`,
      [UNBORN_PATIENT.toLowerCase()],
    );
    assert.equal(unborn.rowCount, 1, 'the appointment links its patient that arrived');

    for (const [table, f] of Object.entries(afterFull.tables)) {
      assert.deepEqual(afterIncremental.tables[table as keyof typeof afterFull.tables], f, `${table} as a full run`);
    }
    assert.deepEqual(afterIncremental.objects, afterFull.objects, 'the same objects as a full run');

    const result: ReimportResult = incremental.result;
    assert.equal(result.phases.find((p) => p.phase === 'delete')?.status, 'skipped', 'no delete phase');
    // The report counts carried records in their states, as the full run counts the same records.
    const byState = (r: ReimportResult) =>
      ['imported', 'unlinked', 'skipped', 'failed'].map((k) =>
        r.phases.reduce((n, p) => n + (p[k as 'imported'] ?? 0), 0),
      );
    assert.deepEqual(byState(result), byState(full.result), 'the same counts by state as the full run');
    const split = await ledgerSplit(incremental.runId);
    const fullSplit = await ledgerSplit(full.runId);
    assert.equal(split.carried + split.read, fullSplit.read, 'every record of the full run accounted for');
    assert.ok(split.read < fullSplit.read / 4, `read again: ${split.read} of ${fullSplit.read}`);
  });

  test('an incremental run stops before deleting when more than its threshold vanished, and goes on when confirmed', async () => {
    const notes = () => [...s.sim.dataset.table('API_Notes')!.scan()];
    const gone = notes().slice(0, Math.ceil(notes().length * 0.1));
    s.sim.mutate(gone.map((r) => ({ op: 'delete' as const, table: 'API_Notes', recordId: r.recordId })));
    const noteRows = async () => (await s.pool.query('select filemaker_id from notes order by 1')).rows;
    const before = await noteRows();
    const handle = await start(s, 'incremental-gate', { ...INCREMENTAL, vanishedThreshold: 0.05 });
    let progress: RunProgress | undefined;
    for (let i = 0; i < 600 && progress?.status !== 'awaiting_confirmation'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      progress = await handle.query<RunProgress>('progress');
      assert.ok(!['completed', 'failed', 'rolled_back'].includes(progress.status), `run went on: ${progress.status}`);
    }
    assert.equal(progress?.status, 'awaiting_confirmation');
    assert.equal(progress.vanished?.find((v) => v.table === 'API_Notes')?.vanished, gone.length);
    assert.deepEqual(await noteRows(), before, 'nothing deleted while it waits');
    await handle.executeUpdate('confirmVanished', { args: [] });
    const result = (await handle.result()) as ReimportResult;
    assert.equal(result.status, 'completed');
    assert.equal((await noteRows()).length, before.length - gone.length, 'the vanished notes deleted');
  });
});
