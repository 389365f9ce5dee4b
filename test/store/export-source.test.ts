import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { containerSha256 } from '../../sim/containers';
import { Dataset } from '../../sim/dataset';
import { exportImages } from '../../sim/export';
import { IMAGE_CONTAINERS } from '../../sim/schema';
import { ExportSourceError, openExportSource, type ExportRow, type ExportSource } from '../../src/export';
import { createTestBucket, s3ClientFor } from '../helpers/stack';

const bucketP = createTestBucket();
const PREFIX = 'exports/clinic-1';

async function allRows(source: ExportSource): Promise<ExportRow[]> {
  const out: ExportRow[] = [];
  for await (const r of source.rows()) out.push(r);
  return out;
}

async function sha256Of(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest('hex');
}

describe('export source: the simulator export in a folder and in S3', () => {
  const ds = new Dataset({ preset: 'tiny', scale: 1, seed: 20240620, sizeScale: 0.02 });
  let dir: string;
  let s3: S3Client;
  let bucket: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fm-export-store-'));
    await exportImages(ds, dir);
    s3 = await s3ClientFor();
    bucket = await bucketP;
    for (const name of await readdir(dir)) {
      const body = await readFile(join(dir, name));
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}/${name}`, Body: body }));
    }
    // Neighbours that must not be read: a sibling prefix sharing the first characters, and a "subfolder".
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'exports/clinic-10/10000.jpg', Body: 'sibling' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'exports/clinic-10/meta.csv', Body: 'x' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}/old/10001.jpg`, Body: 'nested' }));
  });
  after(async () => {
    s3?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('both sources list the same rows, files and orphans, and match the data set', async () => {
    const folder = await openExportSource({ kind: 'folder', path: dir });
    // No trailing slash on purpose: `exports/clinic-10/` must not be read as part of `exports/clinic-1`.
    const inS3 = await openExportSource({ kind: 's3', bucket, prefix: PREFIX }, { s3 });
    const folderRows = await allRows(folder);
    const s3Rows = await allRows(inS3);
    assert.deepEqual(s3Rows, folderRows, 'the same rows from S3 as from the folder');
    assert.deepEqual(inS3.orphans(), folder.orphans(), 'the same orphans');
    assert.deepEqual(folder.orphans(), [], 'the simulator writes no stray files');
    assert.deepEqual(inS3.stats, folder.stats, 'the same counts');
    assert.deepEqual(inS3.csv, folder.csv, 'the same CSV');
    assert.equal(folder.csv.name, 'images_metadata.csv');

    const records = ds.table('API_Images')!.records;
    assert.equal(folderRows.length, records.length, 'one row per API_Images record');
    let withFile = 0;
    records.forEach((rec, i) => {
      const row = folderRows[i]!;
      assert.equal(row.malformed, undefined, `row ${i} is well-formed`);
      assert.equal(row.line, i + 2, `row ${i} is on line ${i + 2}`);
      assert.equal(row.recid, String(rec.fields.recid), `row ${i} recid`);
      assert.deepEqual(
        row.fields,
        {
          recid: String(rec.fields.recid),
          id_Contact: String(rec.fields.id_Contact),
          date: String(rec.fields.date),
          Type: String(rec.fields.Type),
        },
        `row ${i} fields are the record's, unchanged`,
      );
      assert.deepEqual(row.findings, [], `row ${i} has no findings`);
      const best = IMAGE_CONTAINERS.find((c) => rec.containers[c]?.state === 'ok');
      if (!best) {
        assert.equal(row.file, undefined, `row ${i}: no usable container, no file`);
        return;
      }
      withFile++;
      const info = rec.containers[best]!;
      assert.deepEqual(
        row.file,
        { name: `${row.recid}.${info.kind}`, ext: info.kind, size: info.size },
        `row ${i} file`,
      );
    });
    assert.ok(withFile > 0 && withFile < records.length, 'the tiny set has rows with and without a file');
    assert.equal(folder.stats.rowsWithFile, withFile, 'stats count the rows with a file');
  });

  test('the bytes read back from either source have the ground-truth SHA-256 of the best container', async () => {
    const folder = await openExportSource({ kind: 'folder', path: dir });
    const inS3 = await openExportSource({ kind: 's3', bucket, prefix: `${PREFIX}/` }, { s3 });
    const records = ds.table('API_Images')!.records;
    let checked = 0;
    for await (const row of folder.rows()) {
      if (!row.file) continue;
      const rec = records.find((r) => String(r.fields.recid) === row.recid)!;
      const field = IMAGE_CONTAINERS.find((c) => rec.containers[c]?.state === 'ok')!;
      const expected = containerSha256(
        { seed: ds.opts.seed, table: 'API_Images', recordIndex: rec.index, field },
        rec.containers[field]!,
      );
      assert.equal(await sha256Of(await folder.open(row.file)), expected, `${row.file.name} from the folder`);
      assert.equal(await sha256Of(await inS3.open(row.file)), expected, `${row.file.name} from S3`);
      checked++;
    }
    assert.ok(checked >= 30, `most of the tiny set's 40 images were checked (${checked})`);
  });

  test('an object overwritten after the listing is refused (If-Match on the listed ETag)', async () => {
    const prefix = 'exports/changing/';
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${prefix}m.csv`,
        Body: 'recid,id_Contact,date,Type\r\n1,C,d,T\r\n',
      }),
    );
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}1.jpg`, Body: 'original' }));
    const source = await openExportSource({ kind: 's3', bucket, prefix }, { s3 });
    const [row] = await allRows(source);
    assert.ok(row?.file, 'row 1 has its file');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}1.jpg`, Body: 'replaced' }));
    await assert.rejects(
      source.open(row.file),
      (e: unknown) => e instanceof ExportSourceError && e.problem === 'SOURCE_CHANGED',
      'the replaced object is not read',
    );
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${prefix}m.csv`, Body: 'recid,id_Contact,date,Type\r\n' }),
    );
    await assert.rejects(
      allRows(source),
      (e: unknown) => e instanceof ExportSourceError && e.problem === 'SOURCE_CHANGED',
      'a replaced CSV is not read again',
    );
  });

  test('an S3 prefix without a CSV, or a bucket that does not exist, is a clear error', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'exports/no-csv/1.jpg', Body: 'x' }));
    await assert.rejects(
      openExportSource({ kind: 's3', bucket, prefix: 'exports/no-csv' }, { s3 }),
      (e: unknown) =>
        e instanceof ExportSourceError &&
        e.problem === 'CSV_MISSING' &&
        e.message.includes(`s3://${bucket}/exports/no-csv/`),
      'no CSV under the prefix',
    );
    await assert.rejects(
      openExportSource({ kind: 's3', bucket: `${bucket}-missing`, prefix: '' }, { s3 }),
      (e: unknown) => e instanceof ExportSourceError && e.problem === 'LOCATION_NOT_FOUND',
      'a missing bucket',
    );
  });
});
