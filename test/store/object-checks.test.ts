/**
 * The files phases' object checks on real PostgreSQL and MinIO. A file's ledger entry keeps the ETag S3 gave its
 * object when the upload was confirmed; the phase's reconciliation takes an object listed with that size and ETag as
 * confirmed and HEADs every other one, so an object written again or deleted since, or recorded without an ETag, is
 * still checked against the ledger's size and SHA-256. The validation phase checks every object the same way, from a
 * listing of its own taken at its end.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { before, describe, test } from 'node:test';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { documentKey } from '../../src/domain/keys';
import { createLogger } from '../../src/logger';
import { uploadStream } from '../../src/s3';
import { startRun } from '../../src/store/runs';
import { emptyChunkResult, recordLedger, type LedgerEntry } from '../../src/activities/outcomes';
import { commonPrefixes, listingPrefixes, reconcileObjects, type ObjectCheckDeps } from '../../src/activities/verify';
import { ObjectListings } from '../../src/activities/files/listing';
import type { ActivityDeps } from '../../src/activities/deps';
import { reconcileTable } from '../../src/activities/reconcile';
import type { TableReconciliation } from '../../src/activities/types';
import { createTestBucket, s3ClientFor } from '../helpers/stack';
import { migratedDatabase } from './fixtures';

const database = migratedDatabase();
const bucketP = createTestBucket();
const TABLE = 'API_Docs';

describe('object checks of the files phases', () => {
  let s3: S3Client;
  let pool: pg.Pool;
  let deps: ObjectCheckDeps;
  before(async () => {
    s3 = await s3ClientFor();
    ({ pool } = await database);
    deps = { pool, s3, logger: createLogger({ level: 'silent' }), config: { s3: { bucket: await bucketP } } };
  });

  /** A run with `n` documents stored and recorded as imported, with the ETag of the confirmed upload, as a batch does. */
  async function storedRun(n: number): Promise<{ runId: string; entries: LedgerEntry[] }> {
    const runId = `run-${randomUUID()}`;
    await startRun(pool, runId, runId, {});
    const entries: LedgerEntry[] = [];
    for (let i = 0; i < n; i++) {
      const id = `doc-${runId}-${i}`;
      const data = randomBytes(1000 + i);
      const up = await uploadStream(s3, {
        bucket: deps.config.s3.bucket,
        key: documentKey(null, 'referral', id, 'pdf'),
        body: Readable.from([data]),
        contentType: 'application/pdf',
        expectedSize: data.length,
      });
      assert.ok(up.etag && /^[0-9a-f]{32}$/.test(up.etag), 'the upload reports the ETag of the object it confirmed');
      entries.push({
        recordId: id,
        filemakerId: id,
        state: 'imported',
        s3Key: up.key,
        bytes: up.size,
        sha256: up.sha256,
        objectEtag: up.etag,
      });
    }
    await recordLedger(pool, runId, TABLE, entries, emptyChunkResult());
    return { runId, entries };
  }

  /** Other bytes of the same size under the key, carrying our recorded SHA-256 as metadata. */
  async function replace(e: LedgerEntry): Promise<void> {
    const other = randomBytes(e.bytes!);
    await s3.send(
      new PutObjectCommand({
        Bucket: deps.config.s3.bucket,
        Key: e.s3Key!,
        Body: other,
        Metadata: { sha256: e.sha256! },
        ChecksumAlgorithm: 'SHA256',
      }),
    );
    assert.notEqual(createHash('sha256').update(other).digest('hex'), e.sha256, 'other bytes');
  }

  test('objects listed with the size and ETag of their confirmed upload need no HEAD', async () => {
    const { runId } = await storedRun(5);
    assert.deepEqual(await reconcileObjects(deps, runId, TABLE), { checked: 5, mismatches: [], headed: 0 });
  });

  test('an object written again or deleted after it was stored fails the reconciliation', async () => {
    const { runId, entries } = await storedRun(4);
    await replace(entries[1]!);
    await s3.send(new DeleteObjectCommand({ Bucket: deps.config.s3.bucket, Key: entries[3]!.s3Key! }));
    const mismatches = [entries[1]!.filemakerId, entries[3]!.filemakerId].sort();
    assert.deepEqual(await reconcileObjects(deps, runId, TABLE), { checked: 4, mismatches, headed: 2 });
  });

  /** The validation's reconciliation of the run's documents (FileMaker lists no arrivals). */
  const validate = (runId: string): Promise<TableReconciliation> => {
    const fm = { manifest: async function* () {} };
    const run = () => reconcileTable({ ...deps, fm } as unknown as ActivityDeps, runId, TABLE, 'validation');
    return new MockActivityEnvironment().run(run);
  };

  test('validation confirms untouched objects from its listing, and fails a run whose objects were replaced or deleted after their phase', async () => {
    const { runId, entries } = await storedRun(5);
    const clean = await validate(runId);
    assert.deepEqual(
      [clean.ok, clean.objectsChecked, clean.objectsHeaded, clean.objectMismatches],
      [true, 5, 0, []],
      'every object listed as recorded: no HEAD',
    );
    // After the files phase (its reconciliation passed), before validation: bytes replaced under one key (another
    // ETag, our SHA-256 metadata kept), another object deleted.
    await replace(entries[0]!);
    await s3.send(new DeleteObjectCommand({ Bucket: deps.config.s3.bucket, Key: entries[4]!.s3Key! }));
    const rec = await validate(runId);
    assert.equal(rec.ok, false, 'validation fails');
    assert.deepEqual(rec.objectMismatches, [entries[0]!.filemakerId, entries[4]!.filemakerId].sort());
    assert.deepEqual(
      [rec.objectsChecked, rec.objectsHeaded],
      [5, 2],
      'only the two the listing did not confirm HEADed',
    );
  });

  test("a phase's check HEADs the objects of the records read again and leaves carried-over ones to validation", async () => {
    const { runId, entries } = await storedRun(24);
    // An incremental run: all but two entries carried over from an earlier run (their records were not read).
    const readAgain = [entries[5]!, entries[17]!];
    await pool.query(
      `update import_ledger set carried_from = 'base-run'
        where run_id = $1 and source_table = $2 and not (filemaker_id = any($3::text[]))`,
      [runId, TABLE, readAgain.map((e) => e.filemakerId)],
    );
    await replace(readAgain[1]!);
    await replace(entries[0]!);
    const phase = () => reconcileTable({ ...deps, fm: {} } as unknown as ActivityDeps, runId, TABLE, 'phase');
    const rec: TableReconciliation = await new MockActivityEnvironment().run(phase);
    assert.deepEqual(
      [rec.objectsChecked, rec.objectsHeaded, rec.objectMismatches],
      [2, 2, [readAgain[1]!.filemakerId]],
      'the two read again, each HEADed; the carried-over object replaced is not looked at',
    );
    const all = await validate(runId);
    assert.deepEqual(
      [all.objectsChecked, all.objectsHeaded, all.objectMismatches],
      [24, 2, [entries[0]!.filemakerId, readAgain[1]!.filemakerId].sort()],
      'validation lists them all and finds both',
    );
  });

  test('objects recorded without an ETag are HEADed against the ledger', async () => {
    const { runId, entries } = await storedRun(3);
    // Recorded again without the ETag (as an older engine did): the entry no longer vouches for its object.
    await recordLedger(
      pool,
      runId,
      TABLE,
      entries.slice(1).map((e) => ({ ...e, objectEtag: undefined })),
      emptyChunkResult(),
    );
    await replace(entries[2]!);
    assert.deepEqual(await reconcileObjects(deps, runId, TABLE), {
      checked: 3,
      mismatches: [entries[2]!.filemakerId],
      headed: 2,
    });
  });

  test('a ledger entry whose size differs from the listed object is HEADed and fails', async () => {
    const { runId, entries } = await storedRun(2);
    await recordLedger(pool, runId, TABLE, [{ ...entries[0]!, bytes: entries[0]!.bytes! + 1 }], emptyChunkResult());
    assert.deepEqual(await reconcileObjects(deps, runId, TABLE), {
      checked: 2,
      mismatches: [entries[0]!.filemakerId],
      headed: 1,
    });
  });

  test('the listing covers the files folders under the import prefix and any other key by its folder', () => {
    assert.deepEqual(
      commonPrefixes([
        documentKey('p1', 'referral', 'd1', 'pdf'),
        documentKey(null, 'letter', 'd2', 'pdf'),
        'patients/filemaker-import/images/p1/2020-01-01/i1.jpg',
        'elsewhere/x/y.pdf',
        'top.pdf',
      ]),
      ['', 'elsewhere/x/', 'patients/filemaker-import/documents/', 'patients/filemaker-import/images/'],
    );
  });

  test('the folders are listed in slices by the character after them, each key in exactly one slice', () => {
    const keys = [
      documentKey('p1', 'referral', 'd1', 'pdf'),
      documentKey('q2', 'letter', 'd2', 'pdf'),
      documentKey(null, 'letter', 'd3', 'pdf'),
      'patients/filemaker-import/images/p1/2020-01-01/i1.jpg',
      'texts/a.pdf',
      'top.pdf',
      'scans/\u{1F4C4}.pdf',
    ];
    const slices = listingPrefixes(keys);
    assert.deepEqual(slices, [
      'patients/filemaker-import/documents/p',
      'patients/filemaker-import/documents/q',
      'patients/filemaker-import/documents/u',
      'patients/filemaker-import/images/p',
      'scans/\u{1F4C4}',
      't',
    ]);
    for (const k of keys) assert.equal(slices.filter((p) => k.startsWith(p)).length, 1, `${k} in one slice`);
  });

  test('a listing answers the batches of one run for a while; another run, or a later moment, lists again', async () => {
    const bucket = deps.config.s3.bucket;
    const { entries } = await storedRun(3);
    const keys = entries.map((e) => e.s3Key!);
    const never = documentKey(null, 'referral', `doc-${randomUUID()}`, 'pdf');
    let now = 1_000_000;
    const listings = new ObjectListings(30_000, () => now);
    const listed = async (runId: string) =>
      [...(await listings.lookup(s3, bucket, [...keys, never], runId))].map(([k, o]) => [k, o.size, o.etag]);
    const all = entries.map((e) => [e.s3Key, e.bytes, e.objectEtag]);
    assert.deepEqual(await listed('run-a'), all, 'each stored object with its size and the ETag of its upload');

    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys[0] }));
    now += 10_000;
    assert.deepEqual(await listed('run-a'), all, 'the same run within 30 s: the listing it took');
    assert.deepEqual(await listed('run-b'), all.slice(1), 'another run lists again: the deleted object is gone');
    now += 21_000;
    assert.deepEqual(await listed('run-a'), all.slice(1), 'after 30 s the run lists again');
  });
});
