import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type pg from 'pg';
import { fingerprint } from '../../src/store/backup';
import { startRun } from '../../src/store/runs';
import { upsertTargetRows } from '../../src/activities/upsert';
import { upsertRows, writeIsolatingRefusals, type RowOutcome, type UpsertStrategy } from '../../src/store/upsert';
import { clinicRow, count, migratedDatabase, noteRow, patientRow, idFor, fmId } from './fixtures';

function failures(outcomes: readonly RowOutcome[]) {
  return outcomes.filter((o) => o.status === 'failed');
}

// Started at module level so its clean-up hooks belong to the file, not to the `before` hook.
const database = migratedDatabase();

describe('upsert', () => {
  let pool: pg.Pool;
  before(async () => {
    ({ pool } = await database);
    const r = await upsertRows(pool, 'clinics', [clinicRow(1)], { runId: 'run-a' });
    assert.equal(r.counts.inserted, 1);
  });

  test('a second identical write changes nothing; a changed row is updated, never duplicated', async () => {
    const clinic = clinicRow(1).id;
    const rows = Array.from({ length: 2500 }, (_, i) => patientRow(i, clinic));
    const first = await upsertRows(pool, 'patients', rows, { runId: 'run-a' });
    assert.deepEqual(first.counts, { inserted: 2500, updated: 0, unchanged: 0, failed: 0 });
    const fp1 = await fingerprint(pool, 'patients');
    const stamps1 = await pool.query<{ filemaker_id: string; updated_at: Date; import_run_id: string }>(
      `select filemaker_id, updated_at, import_run_id from patients order by filemaker_id`,
    );

    const second = await upsertRows(pool, 'patients', rows, { runId: 'run-b' });
    assert.deepEqual(second.counts, { inserted: 0, updated: 0, unchanged: 2500, failed: 0 });
    assert.deepEqual(await fingerprint(pool, 'patients'), fp1);
    const stamps2 = await pool.query(
      `select filemaker_id, updated_at, import_run_id from patients order by filemaker_id`,
    );
    assert.deepEqual(stamps2.rows, stamps1.rows, 'updated_at and import_run_id untouched by an identical write');
    assert.equal(await count(pool, 'patients'), 2500);

    const changed = rows.map((r, i) =>
      i === 7 ? { ...r, last_name: 'Changed', contact_json: { phones: [], emails: [] } } : r,
    );
    const third = await upsertRows(pool, 'patients', changed, { runId: 'run-c' });
    assert.deepEqual(third.counts, { inserted: 0, updated: 1, unchanged: 2499, failed: 0 });
    const o = third.outcomes[7]!;
    assert.equal(o.status, 'updated');
    assert.equal(await count(pool, 'patients'), 2500);
    const row = await pool.query<{ last_name: string; import_run_id: string; changed: boolean; contact_json: unknown }>(
      `select last_name, import_run_id, updated_at > created_at as changed, contact_json from patients where filemaker_id = $1`,
      [rows[7]!.filemaker_id],
    );
    assert.deepEqual(row.rows[0], {
      last_name: 'Changed',
      import_run_id: 'run-c',
      changed: true,
      contact_json: { phones: [], emails: [] },
    });
    assert.notEqual((await fingerprint(pool, 'patients')).fingerprint, fp1.fingerprint);
  });

  test('one row the database refuses in a batch of 1,000: 999 land and the one is reported with its reason', async () => {
    const patient = patientRow(0).id;
    const rows = Array.from({ length: 1000 }, (_, i) => noteRow(i, patient));
    const ghost = idFor('patients', 'does-not-exist');
    rows[613] = { ...rows[613]!, patient_id: ghost };
    const r = await upsertRows(pool, 'notes', rows, { runId: 'run-a', batchSize: 1000 });
    assert.equal(r.counts.inserted, 999);
    const failed = failures(r.outcomes);
    assert.equal(failed.length, 1);
    const f = failed[0]!;
    assert.equal(f.index, 613);
    assert.equal(f.filemakerId, rows[613].filemaker_id);
    assert.ok(f.status === 'failed' && f.reason === 'FOREIGN_KEY_VIOLATION');
    assert.match(f.message, /notes_patient_id_fkey/);
    assert.ok(!f.message.includes(ghost), 'the message carries no values');
    assert.equal(await count(pool, 'notes'), 999);
    const missing = await pool.query(`select 1 from notes where filemaker_id = $1`, [rows[613].filemaker_id]);
    assert.equal(missing.rowCount, 0);
  });

  test('NUL, lone surrogates, over-long values, impossible dates and missing fields are cleaned or refused per row', async () => {
    const patient = patientRow(0).id;
    const base = (i: number) => noteRow(10_000 + i, patient);
    const rows: Record<string, unknown>[] = [
      {
        ...base(0),
        content: 'before\u0000after',
        filemaker_metadata: { 'Note\u0000': 'x\u0000y', nested: ['a\u0000'] },
      },
      { ...base(1), content: 'broken \ud800 surrogate', author: 'tail \udc00' },
      { ...base(2), filemaker_id: 'x'.repeat(300) },
      { ...base(3), author: 'a'.repeat(10_001) },
      { ...base(4), note_date: '2019-02-30T10:00:00+10:00' },
      { ...base(5), note_date: '2019-02-03 10:00:00' },
      { ...base(6), content: null },
      { ...base(7), patient_id: 'not-a-uuid' },
      { ...base(8), filemaker_id: 'UPPER-CASE' },
      { ...base(9), unexpected_column: 1 },
      base(10),
      { ...base(10), content: 'the later duplicate wins' },
    ];
    const r = await upsertRows(pool, 'notes', rows, { runId: 'run-a' });
    const byIndex = (i: number) => r.outcomes[i]!;
    assert.equal(byIndex(0).status, 'inserted');
    const first = byIndex(0);
    assert.deepEqual(first.status !== 'failed' && first.findings, ['TEXT_SANITIZED']);
    assert.equal(byIndex(1).status, 'inserted');
    const reasons = [2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => {
      const o = byIndex(i);
      return o.status === 'failed' ? o.reason : o.status;
    });
    assert.deepEqual(reasons, [
      'INVALID_FILEMAKER_ID',
      'VALUE_TOO_LONG',
      'DATE_IMPOSSIBLE',
      'DATE_UNPARSEABLE',
      'MISSING_REQUIRED',
      'INVALID_UUID',
      'INVALID_FILEMAKER_ID',
      'UNKNOWN_COLUMN',
      'DUPLICATE_ID',
    ]);
    assert.equal(byIndex(11).status, 'inserted');

    const landed = await pool.query<{
      filemaker_id: string;
      content: string;
      author: string;
      filemaker_metadata: unknown;
    }>(
      `select filemaker_id, content, author, filemaker_metadata from notes where filemaker_id = any($1) order by filemaker_id`,
      [[rows[0]!.filemaker_id, rows[1]!.filemaker_id, rows[11]!.filemaker_id]],
    );
    assert.deepEqual(
      landed.rows.map((x) => [x.content, x.author]),
      [
        ['beforeafter', 'clinician'],
        ['broken \ufffd surrogate', 'tail \ufffd'],
        ['the later duplicate wins', 'clinician'],
      ],
    );
    assert.deepEqual(landed.rows[0]!.filemaker_metadata, { Note: 'xy', nested: ['a'] });
    for (const o of r.outcomes)
      if (o.status === 'failed') assert.ok(!o.message.includes('aaaa') && !o.message.includes('2019'));
  });

  test('contact details: NUL and lone surrogates in their JSON are cleaned; a row the database refuses costs only that row', async () => {
    const detail = (i: number, phone: string, extra: Record<string, string> = {}) => ({
      filemakerId: fmId('d', i),
      row: {
        owner_table: 'patients',
        owner_filemaker_id: fmId('p', 0),
        entry: { kind: 'phone', value: phone },
        field_data: { id: fmId('d', i).toUpperCase(), Phone: phone, ...extra },
      },
      state: 'imported' as const,
    });
    const rows = Array.from({ length: 8 }, (_, i) => detail(i, `0400 000 00${i}`));
    // A field named `__proto__` (an own key, as JSON.parse makes it) in a document that must be copied to be cleaned.
    rows[2] = detail(2, '0400\u0000 000 \ud800002', {
      'Phone\u0000 2': 'x\u0000',
      ...(JSON.parse('{"__proto__": "kept"}') as Record<string, string>),
    });
    // The database refuses exactly one row of the chunk, for a reason no cleaning can remove.
    await pool.query(
      `alter table contact_details add constraint test_refuses_one check (filemaker_id <> '${rows[5]!.filemakerId}')`,
    );
    try {
      const entries = await upsertTargetRows(pool, 'contact_details', 'run-a', rows);
      assert.deepEqual(
        entries.map((e) => [e.filemakerId, e.state, e.reasonCode]),
        rows.map((r, i) => [r.filemakerId, i === 5 ? 'failed' : 'imported', i === 5 ? 'CHECK_VIOLATION' : undefined]),
      );
      const refused = entries[5]!;
      assert.equal(refused.message, 'database refused the row: sqlstate 23514, constraint test_refuses_one');
      const stored = await pool.query<{ filemaker_id: string; entry: { value: string }; field_data: unknown }>(
        `select filemaker_id, entry, field_data from contact_details where filemaker_id like 'd%' order by filemaker_id`,
      );
      assert.deepEqual(
        stored.rows.map((r) => r.filemaker_id),
        rows.filter((_, i) => i !== 5).map((r) => r.filemakerId),
      );
      const cleaned = stored.rows.find((r) => r.filemaker_id === rows[2]!.filemakerId)!;
      assert.equal(cleaned.entry.value, '0400 000 \ufffd002');
      assert.deepEqual(cleaned.field_data, {
        id: rows[2].filemakerId.toUpperCase(),
        Phone: '0400 000 \ufffd002',
        'Phone 2': 'x',
        ...(JSON.parse('{"__proto__": "kept"}') as Record<string, string>),
      });
    } finally {
      await pool.query(`alter table contact_details drop constraint test_refuses_one`);
    }
  });

  test("a chunk's ledger entries land in the statement of their rows: none for a row the database refuses", async () => {
    await startRun(pool, 'run-along', 'run-along', {});
    const ledger = async (table: string) =>
      (
        await pool.query<{ record_id: string; state: string; target_table: string; target_id: string | null }>(
          `select record_id, state, target_table, target_id from import_ledger
            where run_id = 'run-along' and source_table = $1 order by record_id`,
          [table],
        )
      ).rows;
    const clinics = [40, 41, 42].map((i) => ({
      recordId: `r${i}`,
      filemakerId: fmId('c', i),
      row: clinicRow(i),
      state: 'imported' as const,
    }));
    await pool.query(`alter table clinics add constraint test_refuses_one check (filemaker_id <> '${fmId('c', 41)}')`);
    try {
      const entries = await upsertTargetRows(pool, 'clinics', 'run-along', clinics, 'API_Clinic_Name');
      assert.deepEqual(
        entries.map((e) => [e.recordId, e.state, e.recorded === true]),
        [
          ['r40', 'imported', true],
          ['r41', 'failed', false],
          ['r42', 'imported', true],
        ],
      );
    } finally {
      await pool.query(`alter table clinics drop constraint test_refuses_one`);
    }
    assert.deepEqual(await ledger('API_Clinic_Name'), [
      { record_id: 'r40', state: 'imported', target_table: 'clinics', target_id: clinicRow(40).id },
      { record_id: 'r42', state: 'imported', target_table: 'clinics', target_id: clinicRow(42).id },
    ]);

    const details = [0, 1].map((i) => ({
      recordId: `d${i}`,
      filemakerId: fmId('along', i),
      row: { owner_table: 'patients', owner_filemaker_id: fmId('p', 0), entry: {}, field_data: {} },
      state: 'imported' as const,
    }));
    const written = await upsertTargetRows(pool, 'contact_details', 'run-along', details, 'API_Contact_Details');
    assert.ok(written.every((e) => e.recorded === true));
    assert.deepEqual(await ledger('API_Contact_Details'), [
      { record_id: 'd0', state: 'imported', target_table: 'patients', target_id: null },
      { record_id: 'd1', state: 'imported', target_table: 'patients', target_id: null },
    ]);
  });

  test('only data errors are isolated per row: a deadlock or a lost connection fails the whole write', async () => {
    const refusedItems: number[] = [];
    const byCode = (code: string | undefined) => async (batch: readonly number[]) => {
      if (batch.includes(3)) throw Object.assign(new Error('refused'), { code });
    };
    await writeIsolatingRefusals([0, 1, 2, 3, 4, 5, 6], byCode('22P05'), (item, r) => {
      refusedItems.push(item);
      assert.deepEqual(r, { reason: 'DB_REJECTED', message: 'database refused the row: sqlstate 22P05' });
    });
    assert.deepEqual(refusedItems, [3]);
    for (const code of ['40P01', '40001', '57P01', '08006', undefined]) {
      await assert.rejects(
        writeIsolatingRefusals([0, 1, 2, 3], byCode(code), () => assert.fail(`${code} isolated per row`)),
        /refused/,
      );
    }
  });

  for (const strategy of ['json', 'unnest', 'values'] as UpsertStrategy[]) {
    test(`the ${strategy} statement lands the same rows and is idempotent`, async () => {
      const { pool: own } = await migratedDatabase();
      await upsertRows(own, 'clinics', [clinicRow(1)]);
      const rows = Array.from({ length: 1200 }, (_, i) => patientRow(i, i % 2 ? clinicRow(1).id : null));
      const a = await upsertRows(own, 'patients', rows, { strategy, batchSize: 500 });
      assert.equal(a.counts.inserted, 1200);
      const b = await upsertRows(own, 'patients', rows, { strategy, batchSize: 500 });
      assert.equal(b.counts.unchanged, 1200);
      const fp = await fingerprint(own, 'patients');
      assert.equal(fp.rows, 1200);
      // Every strategy must store exactly what the default one stores.
      const { pool: ref } = await migratedDatabase();
      await upsertRows(ref, 'clinics', [clinicRow(1)]);
      await upsertRows(ref, 'patients', rows);
      assert.deepEqual(await fingerprint(ref, 'patients'), fp);
      const bad = [
        ...rows.slice(0, 10),
        { ...rows[10]!, filemaker_id: fmId('z', 1), clinic_id: idFor('clinics', 'nope') },
      ];
      const c = await upsertRows(own, 'patients', bad, { strategy });
      assert.deepEqual(c.counts, { inserted: 0, updated: 0, unchanged: 10, failed: 1 });
    });
  }
});
