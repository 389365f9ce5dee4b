/**
 * Streaming upload with a SHA-256 computed on the way.
 *
 * - Small files (≤ one part, the vast majority: documents average ~0.5 MB) are buffered (at most one part), hashed,
 *   and sent with one PutObject carrying `x-amz-checksum-sha256`, so S3 verifies the whole object on arrival.
 * - Larger files go through @aws-sdk/lib-storage `Upload` (multipart, 8 MiB parts, 2 in flight), which sends a
 *   SHA-256 per part that S3 verifies; the object's own checksum is then "composite" (a hash of part hashes), so we
 *   check it against the part hashes we computed, and store our full-object SHA-256 as `x-amz-meta-sha256`.
 *   Metadata is fixed when a multipart upload starts, before the hash is known, so it is set afterwards by copying
 *   the object onto itself; a crash in between leaves an object without the metadata, which the skip check treats
 *   as "not identical" and uploads again: wasteful, never wrong.
 * Memory per upload stays near partSize × queueSize whatever the file's size: nothing holds more than that.
 * Every upload is confirmed: a single PutObject by the SHA-256 S3 verified and echoed (a HEAD when a store does not
 * echo it), a multipart one by a HEAD that must show the size and SHA-256 we computed (IntegrityError otherwise).
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { IntegrityError } from '../errors';
import type { Logger } from '../logger';
import { contentDisposition } from './content-disposition';
import { copyObject, deleteObjects, headObject } from './objects';
import { S3Wire } from './wire';

export const PART_SIZE = 8 * 1024 * 1024;
export const QUEUE_SIZE = 2;
// CopyObject in one request is limited to 5 GB; clinic files are far below (images are a few MB).
const MAX_SELF_COPY = 5 * 1024 ** 3;

export interface UploadStreamOptions {
  bucket: string;
  key: string;
  body: Readable;
  contentType?: string;
  /** The original filename for Content-Disposition (hostile names are cleaned). */
  filename?: string;
  /** Bytes the source said it would send; a different count fails the upload and removes the object. */
  expectedSize?: number;
  /** SHA-256 (hex) the caller already knows (from the ledger); with expectedSize, lets an identical object be
   *  recognised by HEAD alone, without reading the body. */
  expectedSha256?: string;
  logger?: Logger;
  /**
   * Look for an identical object (HEAD) before writing a small one, and skip the write when it is there. Default
   * true; callers that know no such object should exist (a file about to be stored for the first time) save the
   * request — overwriting an identical object is harmless.
   */
  skipIfIdentical?: boolean;
  /** Hand back the bytes of a single-part upload (already in memory) so the caller can use them without a GET. */
  keepBody?: boolean;
  /** Overrides for tests and the benchmark. */
  partSize?: number;
  queueSize?: number;
}

export interface UploadStreamResult {
  bucket: string;
  key: string;
  /** True when an object with the same size and SHA-256 was already there; nothing was written. */
  skipped: boolean;
  size: number;
  sha256: string;
  /** 1 for a single PutObject. */
  parts: number;
  /** The object's ETag as S3 reported it once the upload was confirmed (the phase's reconciliation lists by it). */
  etag: string | undefined;
  /** The bytes written, for a single-part upload with `keepBody`. */
  body?: Buffer;
}

/**
 * A full collection, when the process runs with `--expose-gc` (the production worker does), once per part of a
 * multipart upload (files above 8 MiB: rare at the clinic's sizes). A large file streams through as chunks whose
 * bytes live outside the JS heap: V8 sees little heap pressure from them and lets them pile up to its external-memory
 * trigger, tens of MB above what the stream holds. Measured on the 1 GiB slow test under Node 24, peak worker RSS:
 * 270–283 MiB without (once 291 with undici 7), 266–269 with a young-generation collection per part, 257–259 with a
 * full one; the test's wall time stayed at 40–48 s.
 */
function collectPassedChunks(): void {
  const gc = (globalThis as { gc?: (o?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void }).gc;
  gc?.({ type: 'major' });
}

/** Hashes the whole stream and each `partSize` slice of it (to check S3's composite checksum). */
class HashingStream extends Transform {
  readonly full = createHash('sha256');
  readonly partDigests: Buffer[] = [];
  bytes = 0;
  private part: Hash = createHash('sha256');
  private partBytes = 0;

  constructor(private readonly partSize: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.full.update(chunk);
    this.bytes += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(this.partSize - this.partBytes, chunk.length - offset);
      this.part.update(chunk.subarray(offset, offset + take));
      this.partBytes += take;
      offset += take;
      if (this.partBytes === this.partSize) this.endPart();
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.partBytes > 0) this.endPart();
    cb();
  }

  private endPart(): void {
    collectPassedChunks();
    this.partDigests.push(this.part.digest());
    this.part = createHash('sha256');
    this.partBytes = 0;
  }

  compositeBase64(): string {
    return `${createHash('sha256').update(Buffer.concat(this.partDigests)).digest('base64')}-${this.partDigests.length}`;
  }
}

/** Reads up to `limit` + 1 bytes; `ended` says whether the whole body fit. */
async function readHead(body: Readable, limit: number): Promise<{ chunks: Buffer[]; bytes: number; ended: boolean }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for (;;) {
    if (bytes > limit) return { chunks, bytes, ended: false };
    const chunk = await nextChunk(body);
    if (chunk === null) return { chunks, bytes, ended: true };
    chunks.push(chunk);
    bytes += chunk.length;
  }
}

function nextChunk(body: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const read = () => {
      const c = body.read() as Buffer | string | null;
      if (c !== null) {
        cleanup();
        resolve(typeof c === 'string' ? Buffer.from(c) : c);
      }
    };
    const onEnd = () => (cleanup(), resolve(null));
    const onError = (err: Error) => (cleanup(), reject(err));
    const cleanup = () => {
      body.off('readable', read);
      body.off('end', onEnd);
      body.off('error', onError);
    };
    if (body.readableEnded) return resolve(null);
    if (body.errored) return reject(body.errored);
    body.on('readable', read);
    body.once('end', onEnd);
    body.once('error', onError);
    read();
  });
}

export async function uploadStream(s3: S3Client, opts: UploadStreamOptions): Promise<UploadStreamResult> {
  const { bucket, key, body } = opts;
  const partSize = opts.partSize ?? PART_SIZE;
  const queueSize = opts.queueSize ?? QUEUE_SIZE;
  const contentType = opts.contentType ?? 'application/octet-stream';
  const disposition = opts.filename !== undefined ? contentDisposition(opts.filename) : undefined;
  const log = opts.logger;

  // Known size and hash: an identical object already there means the body need not be read at all.
  if (opts.expectedSize !== undefined && opts.expectedSha256 !== undefined) {
    const existing = await headObject(s3, bucket, key);
    if (existing && existing.size === opts.expectedSize && existing.sha256 === opts.expectedSha256) {
      body.destroy();
      log?.debug({ key, size: existing.size }, 'identical object exists; upload skipped');
      return {
        bucket,
        key,
        skipped: true,
        size: existing.size,
        sha256: existing.sha256,
        parts: 0,
        etag: existing.etag,
      };
    }
  }

  const head = await readHead(body, partSize);
  const checkSize = (size: number) => {
    if (opts.expectedSize !== undefined && size !== opts.expectedSize) {
      throw new IntegrityError(`upload ${key}: source sent ${size} bytes, expected ${opts.expectedSize}`);
    }
  };

  if (head.ended) {
    const data = Buffer.concat(head.chunks, head.bytes);
    checkSize(data.length);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const kept = opts.keepBody ? { body: data } : {};
    if (opts.skipIfIdentical ?? true) {
      const existing = await headObject(s3, bucket, key);
      if (existing && existing.size === data.length && existing.sha256 === sha256) {
        log?.debug({ key, size: data.length }, 'identical object exists; upload skipped');
        return { bucket, key, skipped: true, size: data.length, sha256, parts: 0, etag: existing.etag, ...kept };
      }
    }
    const put = await S3Wire.for(s3).put({
      bucket,
      key,
      body: data,
      sha256,
      contentType,
      contentDisposition: disposition,
      metadata: { sha256 },
    });
    // S3 checked the body against the SHA-256 we sent and echoes it: that is the confirmation. A store that does
    // not echo it gets the HEAD.
    const etag = put.confirmed ? put.etag : await confirm(s3, bucket, key, data.length, sha256);
    log?.debug({ key, size: data.length, parts: 1 }, 'object uploaded');
    return { bucket, key, skipped: false, size: data.length, sha256, parts: 1, etag, ...kept };
  }

  // Multipart: replay what was read, then the rest of the body, through the hasher into Upload.
  const hasher = new HashingStream(partSize);
  const source = new PassThrough({ highWaterMark: 1024 * 1024 });
  for (const c of head.chunks) source.write(c);
  body.on('error', (err) => source.destroy(err));
  body.pipe(source);
  source.pipe(hasher);
  source.on('error', (err) => hasher.destroy(err));

  const upload = new Upload({
    client: s3,
    partSize,
    queueSize,
    leavePartsOnError: false,
    params: {
      Bucket: bucket,
      Key: key,
      Body: hasher,
      ContentType: contentType,
      ContentDisposition: disposition,
      ChecksumAlgorithm: 'SHA256',
    },
  });
  const done = await upload.done();
  const size = hasher.bytes;
  const sha256 = hasher.full.digest('hex');
  const parts = hasher.partDigests.length;
  let etag: string | undefined;
  try {
    checkSize(size);
    if (size > MAX_SELF_COPY) throw new IntegrityError(`upload ${key}: ${size} bytes is above the 5 GB copy limit`);
    const returned = 'ChecksumSHA256' in done ? done.ChecksumSHA256 : undefined;
    if (returned !== undefined && returned !== hasher.compositeBase64()) {
      throw new IntegrityError(`upload ${key}: S3's composite SHA-256 does not match the parts we sent`);
    }
    await copyObject(s3, bucket, key, key, { contentType, contentDisposition: disposition, metadata: { sha256 } });
    etag = await confirm(s3, bucket, key, size, sha256);
  } catch (err) {
    // A wrong object must not stay where a later run would find it.
    await deleteObjects(s3, bucket, [key]).catch(() => undefined);
    throw err;
  }
  log?.debug({ key, size, parts }, 'object uploaded');
  return { bucket, key, skipped: false, size, sha256, parts, etag };
}

/** HEADs an object just written: its size and SHA-256 must be the ones sent. Returns its ETag. */
async function confirm(
  s3: S3Client,
  bucket: string,
  key: string,
  size: number,
  sha256: string,
): Promise<string | undefined> {
  const h = await headObject(s3, bucket, key);
  // S3's own full-object checksum, when it keeps one, is a second, independent witness.
  if (!h || h.size !== size || h.sha256 !== sha256 || (h.s3Sha256 !== undefined && h.s3Sha256 !== sha256)) {
    throw new IntegrityError(`upload ${key}: HEAD does not show the size and SHA-256 that were sent`);
  }
  return h.etag;
}
