/**
 * Slow suite: a 1 GiB body generated on the fly streams into S3 with memory bounded by part size × queue size,
 * and its SHA-256 verifies by HEAD (our metadata and S3's own checksum) and by downloading it again.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { before, describe, test } from 'node:test';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { headObject, uploadStream } from '../../src/s3';
import { createTestBucket, s3ClientFor } from '../helpers/stack';

const GiB = 1024 ** 3;
const bucketP = createTestBucket();

/** Deterministic bytes: the same `total` bytes every time, produced 1 MiB at a time and never held together. */
function generated(total: number): Readable {
  const block = createHash('sha512').update('seed').digest();
  const chunk = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < chunk.length; i += block.length) block.copy(chunk, i);
  let sent = 0;
  let n = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const size = Math.min(chunk.length, total - sent);
      const out = Buffer.from(chunk.subarray(0, size));
      out.writeUInt32LE(n++, 0);
      sent += size;
      this.push(out);
    },
  });
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

describe('large streaming upload', () => {
  let s3: S3Client;
  let bucket: string;
  before(async () => {
    s3 = await s3ClientFor();
    bucket = await bucketP;
    // Warm-up: load and JIT the multipart path so the measurement below sees the upload, not module loading.
    await uploadStream(s3, { bucket, key: 'warm-up.bin', body: generated(40 * 1024 * 1024) });
  });

  test('a 1 GiB stream uploads with bounded memory and its SHA-256 verifies by HEAD and by download', async (t) => {
    const expected = await sha256Of(generated(GiB));
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let result;
    try {
      result = await uploadStream(s3, { bucket, key: 'large/one-gib.bin', body: generated(GiB), expectedSize: GiB });
    } finally {
      clearInterval(timer);
    }
    const growthMiB = (peak - base) / 2 ** 20;
    t.diagnostic(`rss growth ${growthMiB.toFixed(0)} MiB for 1 GiB`);
    // 8 MiB parts × 4 in flight = 32 MiB of parts; the rest is SDK and socket buffers and garbage not yet collected.
    assert.ok(growthMiB < 150, `RSS grew by ${growthMiB.toFixed(0)} MiB`);
    assert.equal(result.size, GiB);
    assert.equal(result.parts, 128);
    assert.equal(result.sha256, expected.sha256);

    const head = await headObject(s3, bucket, 'large/one-gib.bin');
    assert.equal(head?.size, GiB);
    assert.equal(head?.sha256, expected.sha256);
    if (head?.s3Sha256 !== undefined) assert.equal(head.s3Sha256, expected.sha256);

    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'large/one-gib.bin' }));
    assert.deepEqual(await sha256Of(got.Body as Readable), expected);
  });
});
