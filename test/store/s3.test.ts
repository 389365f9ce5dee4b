import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { before, describe, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { contentDisposition, deleteObjects, headObject, inventory, uploadStream } from '../../src/s3';
import { keysCreatedByRun, recordInventory } from '../../src/store/inventory';
import { startRun } from '../../src/store/runs';
import { S3RequestError } from '../../src/errors';
import { S3Wire } from '../../src/s3/wire';
import { createTestBucket, s3ClientFor, stackEnv } from '../helpers/stack';
import { migratedDatabase } from './fixtures';

const database = migratedDatabase();
const bucketP = createTestBucket();
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function download(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** A body in uneven chunks, as a network download delivers it. */
function chunked(data: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let i = 0, n = 1; i < data.length; i += n, n = (n * 7 + 13) % 300_000 || 1) parts.push(data.subarray(i, i + n));
  return Readable.from(parts);
}

describe('S3 layer', () => {
  let s3: S3Client;
  let bucket: string;
  let pool: pg.Pool;
  before(async () => {
    s3 = await s3ClientFor();
    bucket = await bucketP;
    ({ pool } = await database);
  });

  test('a small file is stored in one request with its SHA-256, verified by HEAD and by downloading', async () => {
    const data = randomBytes(300_000);
    const key = 'patients/filemaker-import/documents/unlinked/referral/doc-1.pdf';
    const r = await uploadStream(s3, {
      bucket,
      key,
      body: chunked(data),
      contentType: 'application/pdf',
      filename: 'Referral.pdf',
      expectedSize: data.length,
    });
    const { etag, ...rest } = r;
    assert.deepEqual(rest, { bucket, key, skipped: false, size: data.length, sha256: sha256(data), parts: 1 });
    const head = await headObject(s3, bucket, key);
    assert.ok(etag !== undefined && etag === head?.etag, 'the ETag of the confirmed object');
    assert.equal(head?.size, data.length);
    assert.equal(head?.sha256, sha256(data));
    assert.equal(head?.s3Sha256, sha256(data), "S3's own full-object checksum agrees");
    assert.equal(head?.contentType, 'application/pdf');
    assert.equal(head?.contentDisposition, 'attachment; filename="Referral.pdf"');
    assert.equal(sha256(await download(s3, bucket, key)), sha256(data));
  });

  test('a multipart file has its full SHA-256 in metadata and downloads identical', async () => {
    const data = randomBytes(19 * 1024 * 1024 + 123);
    const key = 'patients/filemaker-import/images/unlinked/2024-06-20/img-1.jpg';
    const r = await uploadStream(s3, {
      bucket,
      key,
      body: chunked(data),
      contentType: 'image/jpeg',
      filename: 'photo.jpg',
    });
    assert.equal(r.parts, 3);
    assert.equal(r.sha256, sha256(data));
    const raw = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    assert.equal(r.etag, raw.ETag?.replace(/"/g, ''), 'the ETag of the object as it stands after the metadata copy');
    assert.equal(raw.Metadata?.sha256, sha256(data));
    assert.equal(raw.ContentLength, data.length);
    assert.equal(raw.ContentType, 'image/jpeg');
    assert.equal(sha256(await download(s3, bucket, key)), sha256(data));
  });

  test('an identical object is not written again; a different one is', async () => {
    const data = randomBytes(50_000);
    const key = 'skip/one.bin';
    await uploadStream(s3, { bucket, key, body: Readable.from([data]) });
    const before = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    // Known size and hash: the body is never read.
    let read = false;
    const untouched = new Readable({
      read() {
        read = true;
        this.push(null);
      },
    });
    const known = await uploadStream(s3, {
      bucket,
      key,
      body: untouched,
      expectedSize: data.length,
      expectedSha256: sha256(data),
    });
    assert.equal(known.skipped, true);
    assert.equal(read, false);
    // Unknown hash: read, hashed, found identical, not written.
    const again = await uploadStream(s3, { bucket, key, body: Readable.from([data]) });
    assert.equal(again.skipped, true);
    const after = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    assert.equal(after.ETag, before.ETag);
    assert.equal(after.LastModified?.getTime(), before.LastModified?.getTime());
    const other = randomBytes(50_000);
    const changed = await uploadStream(s3, { bucket, key, body: Readable.from([other]) });
    assert.equal(changed.skipped, false);
    assert.equal((await headObject(s3, bucket, key))?.sha256, sha256(other));
  });

  test('a body shorter than expected fails and leaves no object behind', async () => {
    const data = randomBytes(10 * 1024 * 1024);
    await assert.rejects(
      uploadStream(s3, { bucket, key: 'short/big.bin', body: Readable.from([data]), expectedSize: data.length + 1 }),
      /expected/,
    );
    await assert.rejects(
      uploadStream(s3, {
        bucket,
        key: 'short/small.bin',
        body: Readable.from([data.subarray(0, 10)]),
        expectedSize: 11,
      }),
      /expected/,
    );
    assert.equal(await headObject(s3, bucket, 'short/big.bin'), undefined);
    assert.equal(await headObject(s3, bucket, 'short/small.bin'), undefined);
  });

  test('non-ASCII and hostile filenames give a safe Content-Disposition with the real name in filename*', async () => {
    assert.equal(contentDisposition('report.pdf'), 'attachment; filename="report.pdf"');
    assert.equal(
      contentDisposition('Überweisung Müller.pdf'),
      `attachment; filename="Uberweisung Muller.pdf"; filename*=UTF-8''%C3%9Cberweisung%20M%C3%BCller.pdf`,
    );
    assert.equal(
      contentDisposition('照片.jpg'),
      `attachment; filename="__.jpg"; filename*=UTF-8''%E7%85%A7%E7%89%87.jpg`,
    );
    const hostile = 'a"b\r\nX-Injected: yes\\..\\..\\etc/passwd%00;.pdf';
    const cd = contentDisposition(hostile);
    assert.ok(!/[\r\n]/.test(cd));
    const fallback = /filename="([^"]*)"/.exec(cd)?.[1] ?? '';
    assert.ok(!/["\\/%]/.test(fallback), fallback);
    assert.match(cd, /filename\*=UTF-8''[A-Za-z0-9!#$&+\-.^_`|~%]+$/);
    assert.equal(contentDisposition('\r\n'), 'attachment; filename="file"');

    const key = 'names/hostile.pdf';
    await uploadStream(s3, { bucket, key, body: Readable.from([Buffer.from('x')]), filename: hostile });
    const head = await headObject(s3, bucket, key);
    assert.equal(head?.contentDisposition, cd);
    const encoded = /filename\*=UTF-8''(.+)$/.exec(cd)?.[1] ?? '';
    // A name, not a path: only the part after the last separator is offered.
    assert.equal(decodeURIComponent(encoded), 'passwd%00;.pdf');
  });

  test('inventory lists a prefix across pages, is recorded per run, and batch delete removes exactly the new objects', async () => {
    const keys = Array.from({ length: 1203 }, (_, i) => `inv/pre/${String(i).padStart(5, '0')}.txt`);
    for (let i = 0; i < keys.length; i += 100) {
      await Promise.all(
        keys.slice(i, i + 100).map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }))),
      );
    }
    const listed: string[] = [];
    for await (const o of inventory(s3, bucket, 'inv/')) listed.push(o.key);
    assert.deepEqual(listed, keys);

    await startRun(pool, 'run-inv', 'run-inv', {});
    assert.equal(await recordInventory(pool, 'run-inv', inventory(s3, bucket, 'inv/')), 1203);
    const stored = await pool.query<{ n: number; bytes: string }>(
      `select count(*)::int as n, sum(size) as bytes from s3_inventory where run_id = 'run-inv'`,
    );
    assert.equal(stored.rows[0]?.n, 1203);
    assert.equal(
      Number(stored.rows[0]?.bytes),
      keys.reduce((n, k) => n + k.length, 0),
    );

    const created = ['inv/new/a.txt', 'inv/new/b.txt'];
    for (const Key of created) await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'new' }));
    const toRemove = await keysCreatedByRun(pool, 'run-inv', inventory(s3, bucket, 'inv/'));
    assert.deepEqual(toRemove, created);

    const del = await deleteObjects(s3, bucket, [...toRemove, ...keys.slice(0, 1100)]);
    assert.deepEqual(del, { deleted: 1102, errors: [] });
    const left: string[] = [];
    for await (const o of inventory(s3, bucket, 'inv/')) left.push(o.key);
    assert.deepEqual(left, keys.slice(1100));
  });
  test('the direct PUT and HEAD (src/s3/wire.ts) keep hostile keys, metadata and checksums exactly as the SDK reads them', async () => {
    const wire = S3Wire.for(s3);
    const keys = [
      "patients/x/images/O'Brien (2) [scan] *final*!.jpg",
      'patients/x/documents/Müller Ärztebrief 100%+rest ~ #1 & co.pdf',
      'patients/x/semi;colon=eq:colon,comma@at$dollar +plus ?query#hash.bin',
    ];
    for (const key of keys) {
      const body = randomBytes(10_000);
      const put = await wire.put({
        bucket,
        key,
        body,
        sha256: sha256(body),
        contentType: 'image/jpeg',
        contentDisposition: contentDisposition('Müller "x".jpg'),
        metadata: { sha256: sha256(body), 'source-width': '640' },
      });
      assert.ok(put.confirmed, 'S3 echoes the checksum it verified');
      const sdk = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
      assert.equal(sdk.ContentLength, body.length, key);
      assert.deepEqual(sdk.Metadata, { sha256: sha256(body), 'source-width': '640' });
      assert.equal(sdk.ContentDisposition, contentDisposition('Müller "x".jpg'));
      assert.equal(sha256(await download(s3, bucket, key)), sha256(body), key);
      const h = await headObject(s3, bucket, key);
      assert.equal(h?.size, body.length);
      assert.equal(h?.sha256, sha256(body));
      assert.equal(h?.s3Sha256, sha256(body));
    }
    assert.equal(await headObject(s3, bucket, 'patients/x/never-written.pdf'), undefined);
  });

  test('the direct PUT refuses a body that does not match its SHA-256, and a wrong secret, with S3 codes and no object', async () => {
    const body = randomBytes(5_000);
    const key = 'patients/x/corrupt.bin';
    const wrong = sha256(Buffer.concat([body, Buffer.from('x')]));
    await assert.rejects(
      S3Wire.for(s3).put({ bucket, key, body, sha256: wrong, contentType: 'application/octet-stream' }),
      (err: unknown) => err instanceof S3RequestError && err.httpStatus === 400 && /Mismatch|BadDigest/.test(err.code),
    );
    assert.equal(await headObject(s3, bucket, key), undefined);

    const env = await stackEnv();
    const impostor = new S3Client({
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION ?? 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: 'not-the-secret' },
    });
    await assert.rejects(
      S3Wire.for(impostor).put({ bucket, key, body, sha256: sha256(body), contentType: 'application/octet-stream' }),
      (err: unknown) =>
        err instanceof S3RequestError &&
        err.code === 'SignatureDoesNotMatch' &&
        !err.retryable &&
        !err.message.includes('not-the-secret'),
    );
    assert.equal(await headObject(s3, bucket, key), undefined);

    const nowhere = new S3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      forcePathStyle: true,
      maxAttempts: 2,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    await assert.rejects(
      S3Wire.for(nowhere).head(bucket, key),
      (err: unknown) => err instanceof S3RequestError && err.code === 'S3_UNREACHABLE' && err.retryable,
    );
  });

  test('HEADs reuse their connection to S3 (a reconciliation of thousands of objects does not open one per object)', async () => {
    const env = await stackEnv();
    const target = new URL(env.S3_ENDPOINT!);
    // A TCP relay in front of MinIO that counts the connections the wire opens.
    let connections = 0;
    const relay = createServer((client) => {
      connections++;
      const upstream = connect(Number(target.port), target.hostname);
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const viaRelay = new S3Client({
        endpoint: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
        region: env.S3_REGION ?? 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: env.S3_SECRET_ACCESS_KEY! },
      });
      const body = randomBytes(1_000);
      const key = 'patients/x/reused.bin';
      await S3Wire.for(viaRelay).put({ bucket, key, body, sha256: sha256(body), contentType: 'image/jpeg' });
      // The pool may open a second connection while the first is being handed back; from then on, none.
      assert.equal((await headObject(viaRelay, bucket, key))?.size, body.length);
      const opened = connections;
      for (let i = 0; i < 30; i++) {
        const h = await headObject(viaRelay, bucket, i % 2 === 0 ? key : 'patients/x/absent.bin');
        assert.equal(h?.size, i % 2 === 0 ? body.length : undefined);
      }
      assert.equal(connections, opened, `30 HEADs one after another opened ${connections - opened} connections`);
    } finally {
      relay.close();
    }
  });
});
