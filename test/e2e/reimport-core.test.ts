/**
 * The core-record phases end to end on the real dev server, PostgreSQL, MinIO and the FileMaker simulator (tiny):
 * every source id ends in a terminal ledger state, rows land, a second run leaves identical fingerprints, and a
 * failure in appointments rolls the database back to exactly its pre-run state, and rolling back a finished run
 * restores that run's own snapshot.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type Client, WorkflowFailedError } from '@temporalio/client';
import type pg from 'pg';
import type { RunningSimulator } from '../../sim/server';
import type { RunningWorker } from '../../src/worker';
import { prepareRun, startTestWorker, type TestRun } from '../helpers/run';
import type { ReimportResult } from '../../src/workflows/reimport';

const CORE = ['patients', 'appointments', 'notes', 'referrers'];

describe('reimport of the core records', () => {
  let sim: RunningSimulator;
  let worker: RunningWorker;
  let client: Client;
  let pool: pg.Pool;
  let taskQueue: string;
  let prepared: TestRun;

  before(async () => {
    prepared = await prepareRun({ preset: 'tiny', seed: 7 }, 'reimport');
    ({ sim, client, pool, taskQueue } = prepared);
    worker = await startTestWorker(prepared);
  });

  after(async () => {
    await worker?.shutdown();
    await prepared?.close();
  });

  const run = (id: string, input: Record<string, unknown> = {}) =>
    client.workflow.execute('reimport', {
      taskQueue,
      workflowId: id,
      args: [{ phases: ['backup', 'delete', ...CORE, 'validation'], settings: { chunkSize: 7 }, ...input }],
    }) as Promise<ReimportResult>;

  const truthIds = async (table: string): Promise<string[]> => {
    const res = await fetch(`${sim.adminUrl}/truth/tables/${table}`);
    const body = (await res.json()) as { records: { fieldData: Record<string, unknown> }[] };
    return body.records.map((r) => String(r.fieldData.id).trim().toLowerCase()).filter(Boolean);
  };

  const fingerprints = async () => {
    const out: Record<string, string> = {};
    for (const t of ['clinics', 'patients', 'appointments', 'notes', 'sms_messages', 'companies', 'referrers']) {
      const r = await pool.query<{ fp: string }>(
        `select md5(coalesce(string_agg(md5((to_jsonb(t) - 'created_at' - 'updated_at' - 'import_run_id')::text), ''
                order by filemaker_id), '')) as fp from ${t} t`,
      );
      out[t] = r.rows[0]!.fp;
    }
    return out;
  };

  test('every source id of every core table ends with a terminal ledger state and rows land', async () => {
    const runId = `run-${randomUUID()}`;
    const result = await run(runId);
    assert.equal(result.status, 'completed');
    for (const table of ['API_Clinic_Name', 'API_Contacts', 'API_event', 'API_Notes', 'API_Messages', 'API_Referrer']) {
      const truth = new Set(await truthIds(table));
      const ledger = await pool.query<{ filemaker_id: string; state: string }>(
        'select filemaker_id, state from import_ledger where run_id = $1 and source_table = $2',
        [runId, table],
      );
      const states = new Map(ledger.rows.map((r) => [r.filemaker_id, r.state]));
      const missing = [...truth].filter(
        (id) => !['imported', 'unlinked', 'skipped', 'failed'].includes(states.get(id) ?? ''),
      );
      assert.deepEqual(missing, [], `${table}: ids without a terminal state`);
    }
    const patients = await pool.query<{ n: number }>('select count(*)::int as n from patients');
    const imported = await pool.query<{ n: number }>(
      `select count(*)::int as n from import_ledger where run_id = $1 and source_table = 'API_Contacts'
          and state in ('imported', 'unlinked')`,
      [runId],
    );
    assert.equal(patients.rows[0]!.n, imported.rows[0]!.n);
    assert.ok(patients.rows[0]!.n > 0);
    const status = await pool.query<{ status: string }>('select status from reimport_runs where run_id = $1', [runId]);
    assert.equal(status.rows[0]!.status, 'completed');
  });

  test('a second run leaves identical table fingerprints', async () => {
    const before = await fingerprints();
    await run(`run-${randomUUID()}`);
    assert.deepEqual(await fingerprints(), before);
  });

  test('a failure in appointments restores the pre-run database exactly and the run ends rolled_back', async () => {
    const before = await fingerprints();
    const runId = `run-${randomUUID()}`;
    // A database fault only this run's appointment writes hit (not a data error, so the chunk fails for good).
    await pool.query(`
      create or replace function fail_appointments() returns trigger language plpgsql as $$
      begin
        if new.import_run_id = '${runId}' then raise exception 'injected appointments failure' using errcode = 'XX000'; end if;
        return new;
      end $$;
      create trigger fail_appointments before insert or update on appointments
        for each row execute function fail_appointments();`);
    try {
      await assert.rejects(run(runId, { settings: { chunkSize: 7, cooldownBaseSeconds: 0.1 } }), (err) => {
        assert.ok(err instanceof WorkflowFailedError);
        return true;
      });
    } finally {
      await pool.query('drop trigger fail_appointments on appointments');
    }
    assert.deepEqual(await fingerprints(), before);
    const status = await pool.query<{ status: string }>('select status from reimport_runs where run_id = $1', [runId]);
    assert.equal(status.rows[0]!.status, 'rolled_back');
  });

  test('a NUL in one contact detail is cleaned, and one the database refuses costs only that record', async () => {
    const ledgerStates = async (runId: string) =>
      new Map(
        (
          await pool.query<{ filemaker_id: string; state: string }>(
            `select filemaker_id, state from import_ledger where run_id = $1 and source_table = 'API_Contact_Details'`,
            [runId],
          )
        ).rows.map((r) => [r.filemaker_id, r.state]),
      );
    const previous = await pool.query<{ run_id: string }>(
      `select run_id from reimport_runs where status = 'completed' order by started_at desc limit 1`,
    );
    const before = await ledgerStates(previous.rows[0]!.run_id);
    const kept = await pool.query<{ filemaker_id: string }>(
      `select filemaker_id from contact_details where owner_table = 'patients'`,
    );
    const keptIds = new Set(kept.rows.map((r) => r.filemaker_id));
    const [withNul, refused] = sim.dataset
      .table('API_Contact_Details')!
      .records.filter((r) => String(r.fields.ph ?? '').length > 4 && keptIds.has(String(r.fields.id).toLowerCase()));
    assert.ok(withNul && refused, 'two imported phone details');
    const nulId = String(withNul.fields.id).toLowerCase();
    const refusedId = String(refused.fields.id).toLowerCase();
    const phone = String(withNul.fields.ph);
    sim.mutate([
      {
        op: 'update',
        table: 'API_Contact_Details',
        recordId: withNul.recordId,
        fields: { ph: `${phone.slice(0, 3)}\u0000${phone.slice(3)}` },
      },
    ]);
    const runId = `run-${randomUUID()}`;
    // The database refuses one contact detail of a chunk for a data reason no cleaning removes.
    await pool.query(`
      create or replace function refuse_contact_detail() returns trigger language plpgsql as $$
      begin
        if new.import_run_id = '${runId}' and new.filemaker_id = '${refusedId}' then
          raise exception 'injected refusal' using errcode = '23514';
        end if;
        return new;
      end $$;
      create trigger refuse_contact_detail before insert or update on contact_details
        for each row execute function refuse_contact_detail();`);
    let result: ReimportResult;
    try {
      result = await run(runId);
    } finally {
      await pool.query('drop trigger refuse_contact_detail on contact_details');
    }
    assert.equal(result.status, 'completed');

    const after = await ledgerStates(runId);
    assert.deepEqual(after, new Map([...before].map(([id, state]) => [id, id === refusedId ? 'failed' : state])));
    const failed = await pool.query<{ reason_code: string; message: string }>(
      `select reason_code, message from import_ledger
        where run_id = $1 and source_table = 'API_Contact_Details' and filemaker_id = $2`,
      [runId, refusedId],
    );
    assert.deepEqual(failed.rows, [
      { reason_code: 'CHECK_VIOLATION', message: 'database refused the row: sqlstate 23514' },
    ]);
    const written = await pool.query<{ filemaker_id: string }>(
      'select filemaker_id from contact_details where import_run_id = $1',
      [runId],
    );
    const imported = [...after].filter(([, state]) => state === 'imported').map(([id]) => id);
    assert.deepEqual(written.rows.map((r) => r.filemaker_id).sort(), imported.sort());
    const cleaned = await pool.query<{ ph: string }>(
      `select field_data->>'ph' as ph from contact_details where filemaker_id = $1`,
      [nulId],
    );
    assert.deepEqual(cleaned.rows, [{ ph: phone }]);
  });

  test('rolling back a finished run restores its own snapshot after a run whose id differs only in case', async () => {
    const id = randomUUID();
    const [first, second] = [`Run-${id}`, `run-${id}`];
    const dropNotes = (n: number) =>
      pool.query(
        `delete from notes where filemaker_id in (select filemaker_id from notes order by filemaker_id limit $1)`,
        [n],
      );
    await dropNotes(3);
    const beforeFirst = await fingerprints();
    assert.equal((await run(first)).status, 'completed');
    await dropNotes(5);
    const beforeSecond = await fingerprints();
    assert.notDeepEqual(beforeSecond, beforeFirst);
    assert.equal((await run(second)).status, 'completed');

    const rollback = (runId: string) =>
      client.workflow.execute('rollback', { taskQueue, workflowId: `${runId}/rollback`, args: [{ runId }] });
    await rollback(first);
    assert.deepEqual(await fingerprints(), beforeFirst, `rollback of the first run`);
    await rollback(second);
    assert.deepEqual(await fingerprints(), beforeSecond, `rollback of the second run`);
    const status = await pool.query<{ status: string }>(
      'select status from reimport_runs where run_id = any($1) order by run_id',
      [[first, second]],
    );
    assert.deepEqual(
      status.rows.map((r) => r.status),
      ['rolled_back', 'rolled_back'],
    );
  });
});
