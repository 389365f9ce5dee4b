/**
 * Thumbnails on real MinIO: the stored WebP fits 300×300 and keeps the picture's proportions, the original's size is reported as shown (EXIF orientation applied), an existing thumbnail
 * is reused without decoding, undecodable bytes fail the thumbnail only, HEIC is recorded as unsupported, and many
 * images at once each get their own answer.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { ensureThumbnail } from '../../src/activities/files/thumbnails';
import { createTestBucket, s3ClientFor } from '../helpers/stack';

const bucketP = createTestBucket();

async function picture(width: number, height: number, format: 'png' | 'jpeg', orientation?: number): Promise<Buffer> {
  const img = sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 90 } } });
  const encoded = format === 'png' ? img.png() : img.jpeg();
  return (orientation ? encoded.withMetadata({ orientation }) : encoded).toBuffer();
}

describe('thumbnails', () => {
  let s3: S3Client;
  let bucket: string;
  before(async () => {
    s3 = await s3ClientFor();
    bucket = await bucketP;
  });

  const keys = () => ({ source: `images/${randomUUID()}.bin`, thumb: `thumbnails/${randomUUID()}.webp` });

  async function stored(key: string): Promise<{ width: number; height: number; format: string } | undefined> {
    try {
      const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const meta = await sharp(Buffer.from(await o.Body!.transformToByteArray())).metadata();
      return { width: meta.width, height: meta.height, format: meta.format };
    } catch {
      return undefined;
    }
  }

  test('a PNG gets a WebP thumbnail within 300×300 with its proportions, and its own size recorded', async () => {
    const bytes = await picture(1200, 800, 'png');
    const k = keys();
    const r = await ensureThumbnail(s3, bucket, k.source, k.thumb, 'image/png', bytes.length, {
      source: bytes,
      fresh: true,
    });
    assert.deepEqual(r, { status: 'created', width: 1200, height: 800, key: k.thumb });
    assert.deepEqual(await stored(k.thumb), { width: 300, height: 200, format: 'webp' }, 'the stored thumbnail');
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: k.thumb }));
    assert.equal(head.Metadata?.['source-width'], '1200', 'the original width travels with the thumbnail');
  });

  test('a JPEG turned on its side by EXIF is reported and thumbnailed as shown', async () => {
    const bytes = await picture(640, 480, 'jpeg', 6);
    const k = keys();
    const r = await ensureThumbnail(s3, bucket, k.source, k.thumb, 'image/jpeg', bytes.length, {
      source: bytes,
      fresh: true,
    });
    assert.equal(r.status, 'created');
    assert.deepEqual([r.width, r.height], [480, 640], 'width and height as the picture is shown');
    assert.deepEqual(await stored(k.thumb), { width: 225, height: 300, format: 'webp' });
  });

  test('an existing thumbnail with recorded dimensions is reused without the source', async () => {
    const bytes = await picture(500, 500, 'png');
    const k = keys();
    await ensureThumbnail(s3, bucket, k.source, k.thumb, 'image/png', bytes.length, { source: bytes, fresh: true });
    // No source bytes and no object at the source key: only the existing thumbnail can answer.
    const again = await ensureThumbnail(s3, bucket, k.source, k.thumb, 'image/png', bytes.length);
    assert.deepEqual(again, { status: 'created', width: 500, height: 500, key: k.thumb });
  });

  test('undecodable bytes fail the thumbnail and store nothing; HEIC is unsupported, not failed', async () => {
    const k = keys();
    const broken = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2000, 7)]);
    const r = await ensureThumbnail(s3, bucket, k.source, k.thumb, 'image/jpeg', broken.length, {
      source: broken,
      fresh: true,
    });
    assert.deepEqual(r, { status: 'failed', width: null, height: null, key: null });
    assert.equal(await stored(k.thumb), undefined, 'no thumbnail object');
    const heic = await ensureThumbnail(s3, bucket, k.source, k.thumb, 'image/heic', 10, {
      source: Buffer.alloc(10),
      fresh: true,
    });
    assert.equal(heic.status, 'unsupported_format');
  });

  test('many images at once: each answer is its own image', async () => {
    const sizes = Array.from({ length: 24 }, (_, i) => [200 + 37 * i, 900 - 23 * i] as const);
    const results = await Promise.all(
      sizes.map(async ([w, h]) => {
        const bytes = await picture(w, h, 'png');
        const k = keys();
        return ensureThumbnail(s3, bucket, k.source, k.thumb, 'image/png', bytes.length, {
          source: bytes,
          fresh: true,
        });
      }),
    );
    assert.deepEqual(
      results.map((r) => [r.width, r.height]),
      sizes.map(([w, h]) => [w, h]),
    );
  });
});
