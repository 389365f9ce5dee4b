/**
 * Thumbnails (≤ 300×300 WebP) and the original's width and height, made with sharp (libvips) from the object
 * already in S3: reading our own bucket costs no FileMaker transfer quota, and the download itself stays a pure
 * stream. HEIC/HEIF cannot be decoded by the prebuilt libvips (no HEVC decoder): recorded as `unsupported_format`,
 * never as a failed image. Undecodable bytes are `failed` for the thumbnail only; the image itself stays imported.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import sharp from 'sharp';
import { mediaType } from '../domain/keys';
import { Semaphore } from '../filemaker/semaphore';
import { getObject, headObject, objectMetadata, putChecked } from '../s3';

// One libvips thread per image and no operation cache. A JPEG shrinks on load; other formats are decoded whole, so
// those above BIG_DECODE_PIXELS (4 MP: 16 MB of RGBA) are decoded two at a time per worker: memory stays bounded
// whatever the batch window and the photo sizes, and small images are not held up.
sharp.cache(false);
sharp.concurrency(1);
const BIG_DECODE_PIXELS = 4_000_000;
const DECODES = new Semaphore(2);

export const THUMBNAIL_MAX = 300;
/** Larger sources are not decoded (sharp holds a streamed input in memory); the image is imported without one. */
export const THUMBNAIL_SOURCE_LIMIT = 64 * 1024 * 1024;

const DECODABLE = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/bmp']);

export type ThumbnailStatus = 'created' | 'unsupported_format' | 'failed';

export interface ThumbnailResult {
  status: ThumbnailStatus;
  width: number | null;
  height: number | null;
  /** Set when status is `created`. */
  key: string | null;
}

async function readCapped(body: Readable, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      body.destroy();
      return undefined;
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, n);
}

/**
 * The thumbnail of the object at `sourceKey`, stored at `thumbKey`. An existing thumbnail that records the
 * original's dimensions is reused (a relinked image needs no decoding).
 */
export async function ensureThumbnail(
  s3: S3Client,
  bucket: string,
  sourceKey: string,
  thumbKey: string,
  contentType: string,
  size: number,
  /**
   * `source`: the image's bytes when still in memory (no GET). `fresh`: the image was just stored, so a thumbnail
   * from an earlier run is not looked for (it is written again; same key, same content).
   */
  opts: { source?: Buffer; fresh?: boolean } = {},
): Promise<ThumbnailResult> {
  // HEIC/HEIF and anything else libvips cannot decode here (PDF scans stored as images, TIFF variants …).
  if (!DECODABLE.has(mediaType(contentType)))
    return { status: 'unsupported_format', width: null, height: null, key: null };
  if (size > THUMBNAIL_SOURCE_LIMIT) return { status: 'failed', width: null, height: null, key: null };

  if (!opts.fresh) {
    const existing = await objectMetadata(s3, bucket, thumbKey).catch(() => undefined);
    const w = Number(existing?.['source-width']);
    const h = Number(existing?.['source-height']);
    if (existing && Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0) {
      return { status: 'created', width: w, height: h, key: thumbKey };
    }
  }

  const bytes =
    opts.source ??
    (await readCapped((await getObject(s3, bucket, sourceKey)).Body as Readable, THUMBNAIL_SOURCE_LIMIT));
  if (!bytes) return { status: 'failed', width: null, height: null, key: null };
  let thumb: Buffer;
  let width: number;
  let height: number;
  let release: (() => void) | undefined;
  try {
    // The header only: cheap, and tells how much a decode will take. The same instance then renders the thumbnail
    // (sharp's documented pattern): one set of options to build and hand to libvips instead of two.
    const image = sharp(bytes, { failOn: 'error' });
    const meta = await image.metadata();
    if (!meta.width || !meta.height) return { status: 'failed', width: null, height: null, key: null };
    if (meta.width * meta.height > BIG_DECODE_PIXELS && meta.format !== 'jpeg') release = await DECODES.acquire();
    // Orientation 5-8 turns the picture on its side: report the size as it is shown.
    const turned = (meta.orientation ?? 1) >= 5;
    width = turned ? meta.height : meta.width;
    height = turned ? meta.width : meta.height;
    thumb = await image
      .rotate()
      .resize(THUMBNAIL_MAX, THUMBNAIL_MAX, { fit: 'inside', withoutEnlargement: true })
      // Effort 2 of 6: on a 1024×768 JPEG 14 ms of CPU per thumbnail against 19 at the default 4, same size (~20 KB).
      .webp({ quality: 80, effort: 2 })
      .toBuffer();
  } catch {
    return { status: 'failed', width: null, height: null, key: null };
  } finally {
    release?.();
  }
  const sha256 = createHash('sha256').update(thumb).digest('hex');
  const put = await putChecked(s3, {
    bucket,
    key: thumbKey,
    body: thumb,
    sha256,
    contentType: 'image/webp',
    metadata: { sha256, 'source-width': String(width), 'source-height': String(height) },
  });
  // S3 verified the SHA-256 we sent and echoes it; a store that does not gets a HEAD.
  if (!put.confirmed) {
    const check = await headObject(s3, bucket, thumbKey);
    if (!check || check.size !== thumb.length) return { status: 'failed', width, height, key: null };
  }
  return { status: 'created', width, height, key: thumbKey };
}
