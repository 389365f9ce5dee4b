/**
 * The reimport's backup, restore, rollback of objects and delete phase (src/activities/runs.ts over
 * src/store/backup.ts and src/store/inventory.ts) on PostgreSQL and MinIO.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type pg from 'pg';
import type { ActivityDeps } from '../../src/activities/deps';
import { runBookkeeping } from '../../src/activities/runs';
import { KEY_PREFIX } from '../../src/domain/keys';
import { SchemaVersionError } from '../../src/errors';
import { inventory } from '../../src/s3';
import { backupSchemaName, fingerprint, fingerprintAll } from '../../src/store/backup';
import { startRun } from '../../src/store/runs';
import { upsertRows } from '../../src/store/upsert';
import { createTestBucket, s3ClientFor } from '../helpers/stack';
import { clinicRow, count, migratedDatabase, noteRow, patientRow } from './fixtures';

const database = migratedDatabase();
const bucketP = createTestBucket();

async function seed(pool: pg.Pool): Promise<void> {
  await upsertRows(pool, 'clinics', [clinicRow(1), clinicRow(2)], { runId: 'seed' });
  const patients = Array.from({ length: 300 }, (_, i) => patientRow(i, clinicRow(1 + (i % 2)).id));
  await upsertRows(pool, 'patients', patients, { runId: 'seed' });
  await upsertRows(
    pool,
    'notes',
    Array.from({ length: 600 }, (_, i) => noteRow(i, patients[i % 300]!.id)),
    { runId: 'seed' },
  );
  await pool.query(
    `insert into contact_details (filemaker_id, owner_table, owner_filemaker_id, entry, field_data)
     select 'cd' || i, 'patients', $1, jsonb_build_object('phone', i::text), '{}' from generate_series(1, 40) i`,
    [patients[0]!.filemaker_id],
  );
}

/** Delete, update and insert across parents and children, contact details included. */
async function damage(pool: pg.Pool): Promise<void> {
  await pool.query(
    `delete from notes where filemaker_id in (select filemaker_id from notes order by filemaker_id limit 50)`,
  );
  await pool.query(
    `update patients set last_name = 'Damaged', contact_json = '{"phones":[]}' where filemaker_id like 'a000001%'`,
  );
  await upsertRows(pool, 'patients', [patientRow(9999)]);
  await pool.query(`delete from notes where patient_id = (select id from patients order by filemaker_id limit 1)`);
  await pool.query(
    `delete from patients where filemaker_id = (select filemaker_id from patients order by filemaker_id limit 1)`,
  );
  await pool.query(`update contact_details set entry = '{"phone":"0"}' where filemaker_id = 'cd7'`);
}

describe('backup and restore', () => {
  let pool: pg.Pool;
  let s3: S3Client;
  let bucket: string;
  let runs: ReturnType<typeof runBookkeeping>;
  // A refused restore is expected here: only errors the tests do not expect are worth printing.
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  const activity = <T>(fn: () => Promise<T>) => env.run<[], T, () => Promise<T>>(fn);

  before(async () => {
    ({ pool } = await database);
    bucket = await bucketP;
    s3 = await s3ClientFor();
    runs = runBookkeeping({ pool, s3, config: { s3: { bucket } } } as unknown as ActivityDeps);
    await seed(pool);
  });

  test('backup → damage → restore gives every table, contact details included, its backup back exactly', async () => {
    const before = await fingerprintAll(pool);
    const backup = await activity(() => runs.backup('run-restore'));
    assert.deepEqual(backup.tables, before);
    assert.equal(backup.tables.patients.rows, 300);
    assert.equal(backup.tables.notes.rows, 600);
    assert.equal(backup.tables.contact_details.rows, 40);

    await damage(pool);
    const damaged = await fingerprintAll(pool);
    for (const t of ['patients', 'notes', 'contact_details'] as const) {
      assert.notEqual(damaged[t].fingerprint, before[t].fingerprint, t);
    }

    const restored = await activity(() => runs.restore('run-restore'));
    assert.deepEqual(restored, { tables: before, verified: true });
    assert.deepEqual(await fingerprintAll(pool), before);
    // Exactly, store-owned columns included.
    for (const t of ['patients', 'contact_details']) {
      const diff = await pool.query(
        `(select * from ${t} except select * from ${backupSchemaName('run-restore')}.${t})
         union all (select * from ${backupSchemaName('run-restore')}.${t} except select * from ${t})`,
      );
      assert.equal(diff.rowCount, 0, t);
    }
  });

  test('the fingerprint ignores created_at, updated_at and import_run_id but sees every data column', async () => {
    const a = await fingerprint(pool, 'public.clinics');
    await pool.query(`update clinics set updated_at = now() + interval '1 day', import_run_id = 'other'`);
    assert.deepEqual(await fingerprint(pool, 'clinics'), a);
    await pool.query(
      `update clinics set filemaker_metadata = filemaker_metadata || '{"extra":1}' where filemaker_id = $1`,
      [clinicRow(1).filemaker_id],
    );
    assert.notEqual((await fingerprint(pool, 'clinics')).fingerprint, a.fingerprint);
  });

  test('a backup taken with other columns is refused and the restore changes nothing', async () => {
    await activity(() => runs.backup('run-columns'));
    await damage(pool);
    const damaged = await fingerprintAll(pool);
    await pool.query(`alter table ${backupSchemaName('run-columns')}.notes drop column author`);
    await assert.rejects(
      activity(() => runs.restore('run-columns')),
      (err) => err instanceof SchemaVersionError,
    );
    assert.deepEqual(await fingerprintAll(pool), damaged);
  });

  test('a restore whose tables do not come out as the backup has them is rolled back and reported unverified', async () => {
    await activity(() => runs.backup('run-unverified'));
    await damage(pool);
    const damaged = await fingerprintAll(pool);
    // Something that changes rows as they are written back (here a trigger) makes the restored tables differ.
    await pool.query(`
      create function restyle_notes() returns trigger language plpgsql as $$
      begin new.author := 'someone else'; return new; end $$;
      create trigger restyle_notes before insert on notes for each row execute function restyle_notes();`);
    try {
      const restored = await activity(() => runs.restore('run-unverified'));
      assert.equal(restored.verified, false);
      assert.notEqual(restored.tables.notes?.fingerprint, damaged.notes.fingerprint);
    } finally {
      await pool.query('drop trigger restyle_notes on notes; drop function restyle_notes()');
    }
    assert.deepEqual(await fingerprintAll(pool), damaged, 'nothing of the unverified restore was committed');
  });

  test('rolling back objects deletes exactly the ones the run created under the import prefix', async () => {
    const put = (Key: string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }));
    const older = Array.from({ length: 1005 }, (_, i) => `${KEY_PREFIX}/documents/old/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < older.length; i += 100) await Promise.all(older.slice(i, i + 100).map(put));
    await startRun(pool, 'run-objects', 'run-objects', {});
    const backup = await activity(() => runs.backup('run-objects'));
    assert.equal(backup.objectsBefore, older.length);

    const created = [`${KEY_PREFIX}/documents/new/a.pdf`, `${KEY_PREFIX}/images/new/b.jpg`];
    for (const k of [...created, 'reports/elsewhere.json']) await put(k);
    assert.deepEqual(await runs.deleteRunObjects('run-objects'), { deleted: created.length });
    const left: string[] = [];
    for await (const o of inventory(s3, bucket)) left.push(o.key);
    assert.deepEqual(left, [...older, 'reports/elsewhere.json']);
  });

  test('the delete phase removes imported rows children first and reports counts', async () => {
    const notes = await count(pool, 'notes');
    const patients = await count(pool, 'patients');
    const counts = await activity(() => runs.deleteImported());
    assert.equal(counts.notes, notes);
    assert.equal(counts.patients, patients);
    assert.equal(counts.clinics, 2);
    assert.equal(counts.contact_details, 40);
    for (const t of ['notes', 'patients', 'clinics', 'contact_details']) assert.equal(await count(pool, t), 0);
  });
});
