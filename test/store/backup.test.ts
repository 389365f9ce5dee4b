import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { IntegrityError } from '../../src/errors';
import {
  backupSchemaName,
  deleteImportedData,
  dropBackup,
  exportBackupToS3,
  fingerprint,
  fingerprintAll,
  importBackupFromS3,
  restore,
  snapshot,
} from '../../src/store/backup';
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
}

/** Delete, update and insert across parents and children. */
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
}

describe('backup and restore', () => {
  let pool: pg.Pool;
  let s3: S3Client;
  let bucket: string;
  before(async () => {
    ({ pool } = await database);
    bucket = await bucketP;
    s3 = await s3ClientFor();
    await seed(pool);
  });

  test('snapshot → damage → restore gives every table its snapshot fingerprint back', async () => {
    const before = await fingerprintAll(pool);
    const snap = await snapshot(pool, 'run-restore');
    assert.equal(snap.created, true);
    assert.deepEqual(snap.fingerprints, before);
    assert.equal(snap.fingerprints.patients.rows, 300);
    assert.equal(snap.fingerprints.notes.rows, 600);
    const again = await snapshot(pool, 'run-restore');
    assert.equal(again.created, false);

    await damage(pool);
    const damaged = await fingerprintAll(pool);
    assert.notEqual(damaged.patients.sha256, before.patients.sha256);
    assert.notEqual(damaged.notes.sha256, before.notes.sha256);

    const restored = await restore(pool, 'run-restore');
    assert.deepEqual(restored, before);
    assert.deepEqual(await fingerprintAll(pool), before);
    // Exactly, store-owned columns included.
    const diff = await pool.query(
      `(select * from patients except select * from ${backupSchemaName('run-restore')}.patients)
       union all (select * from ${backupSchemaName('run-restore')}.patients except select * from patients)`,
    );
    assert.equal(diff.rowCount, 0);
    assert.equal(await dropBackup(pool, 'run-restore'), true);
  });

  test('the fingerprint ignores created_at, updated_at and import_run_id but sees every data column', async () => {
    const a = await fingerprint(pool, 'public.clinics');
    await pool.query(`update clinics set updated_at = now() + interval '1 day', import_run_id = 'other'`);
    assert.deepEqual(await fingerprint(pool, 'clinics'), a);
    await pool.query(
      `update clinics set filemaker_metadata = filemaker_metadata || '{"extra":1}' where filemaker_id = $1`,
      [clinicRow(1).filemaker_id],
    );
    assert.notEqual((await fingerprint(pool, 'clinics')).sha256, a.sha256);
  });

  test('a backup exported to S3 survives losing its schema and restores exactly', async () => {
    const snap = await snapshot(pool, 'run-s3');
    const manifest = await exportBackupToS3(pool, s3, bucket, 'run-s3');
    assert.equal(manifest.objects.notes.rows, snap.fingerprints.notes.rows);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'backups/run-s3/' }));
    assert.equal(listed.Contents?.length, 13);

    await dropBackup(pool, 'run-s3');
    await damage(pool);
    await assert.rejects(restore(pool, 'run-s3'), IntegrityError);
    const imported = await importBackupFromS3(pool, s3, bucket, 'run-s3');
    assert.deepEqual(imported, snap.fingerprints);
    assert.deepEqual(await restore(pool, 'run-s3'), snap.fingerprints);
    assert.deepEqual(await fingerprintAll(pool), snap.fingerprints);
  });

  test('the delete phase removes imported rows children first and reports counts', async () => {
    const notes = await count(pool, 'notes');
    const patients = await count(pool, 'patients');
    const counts = await deleteImportedData(pool);
    assert.equal(counts.notes, notes);
    assert.equal(counts.patients, patients);
    assert.equal(counts.clinics, 2);
    for (const t of ['notes', 'patients', 'clinics']) assert.equal(await count(pool, t), 0);
  });
});
