/**
 * Object-level operations: HEAD with our SHA-256, reads, small puts, server-side copies, batch delete, listings and
 * inventory by prefix. (Which objects existed before a run is recorded by src/store/inventory.ts.)
 */
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type GetObjectCommandOutput,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { S3Wire, unquoteEtag, type WirePut } from './wire';

export interface ObjectInfo {
  size: number;
  /**
   * The object's full-object SHA-256 (hex): S3's own checksum of the bytes when it has one (our `x-amz-meta-sha256`
   * must then agree with it, else undefined: bytes replaced under our metadata), otherwise our metadata.
   */
  sha256: string | undefined;
  /** S3's own full-object SHA-256 (hex) when it has one (single PutObject, or recomputed on copy). */
  s3Sha256: string | undefined;
  contentType: string | undefined;
  contentDisposition: string | undefined;
  /** The ETag without its quotes (changes whenever the object is written again with other bytes). */
  etag: string | undefined;
}

function s3Sha256Of(checksum: string | undefined): string | undefined {
  // A single PutObject's checksum is over the whole object; a multipart one ends in "-N" and is not.
  return checksum && !checksum.includes('-') ? Buffer.from(checksum, 'base64').toString('hex') : undefined;
}

/** Size and SHA-256 of an object, or undefined when there is none at `key`. */
export async function headObject(s3: S3Client, bucket: string, key: string): Promise<ObjectInfo | undefined> {
  const h = await S3Wire.for(s3).head(bucket, key);
  if (!h) return undefined;
  const s3Sha256 = s3Sha256Of(h.checksumSha256);
  const m = h.metadata['sha256'];
  const meta = m && /^[0-9a-f]{64}$/.test(m) ? m : undefined;
  // S3's checksum of the bytes wins; metadata that disagrees with it means the bytes were replaced under it.
  const disowned = s3Sha256 !== undefined && meta !== undefined && meta !== s3Sha256;
  return {
    size: h.size,
    sha256: disowned ? undefined : (s3Sha256 ?? meta),
    s3Sha256,
    contentType: h.contentType,
    contentDisposition: h.contentDisposition,
    etag: h.etag,
  };
}

/** An object's `x-amz-meta-*` (names lower-case), or undefined when there is none at `key`. */
export async function objectMetadata(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<Record<string, string> | undefined> {
  return (await S3Wire.for(s3).head(bucket, key))?.metadata;
}

/**
 * One PutObject of a body in memory with its SHA-256 as the checksum S3 verifies. `confirmed`: S3 echoed it (a store
 * that does not needs a HEAD to confirm).
 */
export function putChecked(s3: S3Client, p: WirePut): Promise<{ confirmed: boolean; etag: string | undefined }> {
  return S3Wire.for(s3).put(p);
}

/** GetObject; with `ifMatch`, only while the object still has that ETag (else S3 answers 412). */
export function getObject(
  s3: S3Client,
  bucket: string,
  key: string,
  opts: { ifMatch?: string } = {},
): Promise<GetObjectCommandOutput> {
  return s3.send(
    new GetObjectCommand({
      Bucket: bucket,
      Key: key,
      ...(opts.ifMatch ? { IfMatch: opts.ifMatch } : {}),
    }),
  );
}

/** What a copy writes instead of the source's type, disposition and metadata. */
export interface CopyReplacing {
  contentType: string | undefined;
  contentDisposition: string | undefined;
  metadata: Record<string, string>;
}

/**
 * A server-side copy of `from` to `to` in the same bucket (CopyObject: up to 5 GB), with the source's metadata or,
 * given `replacing`, with that instead (`from` = `to` rewrites an object's metadata in place).
 */
export async function copyObject(
  s3: S3Client,
  bucket: string,
  from: string,
  to: string,
  replacing?: CopyReplacing,
): Promise<void> {
  await s3.send(
    new CopyObjectCommand({
      Bucket: bucket,
      Key: to,
      CopySource: `${bucket}/${encodeURIComponent(from).replace(/%2F/g, '/')}`,
      ...(replacing
        ? {
            MetadataDirective: 'REPLACE',
            ContentType: replacing.contentType,
            ContentDisposition: replacing.contentDisposition,
            Metadata: replacing.metadata,
          }
        : { MetadataDirective: 'COPY' }),
    }),
  );
}

/** One page (up to 1,000 keys) of the objects under `prefix`; with `delimiter`, deeper keys come as CommonPrefixes. */
export function listObjectsPage(
  s3: S3Client,
  bucket: string,
  prefix: string,
  opts: { delimiter?: string; token?: string } = {},
): Promise<ListObjectsV2CommandOutput> {
  return s3.send(
    new ListObjectsV2Command({
      Bucket: bucket,
      Prefix: prefix,
      Delimiter: opts.delimiter,
      ContinuationToken: opts.token,
      MaxKeys: 1000,
    }),
  );
}

/** Writes a small object (a report, a probe) in one PutObject. */
export async function putObject(
  s3: S3Client,
  bucket: string,
  key: string,
  body: string,
  contentType?: string,
): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
}

export async function deleteObject(s3: S3Client, bucket: string, key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

export interface DeleteResult {
  deleted: number;
  /** Keys S3 refused to delete, with its error code (never silently dropped). */
  errors: { key: string; code: string }[];
}

/** Deletes keys in batches of 1,000 (the DeleteObjects limit). Missing keys count as deleted (S3 semantics). */
export async function deleteObjects(s3: S3Client, bucket: string, keys: readonly string[]): Promise<DeleteResult> {
  const result: DeleteResult = { deleted: 0, errors: [] };
  const unique = [...new Set(keys)];
  for (let i = 0; i < unique.length; i += 1000) {
    const batch = unique.slice(i, i + 1000);
    const r = await s3.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
    );
    const errs = (r.Errors ?? []).map((e) => ({ key: e.Key ?? '', code: e.Code ?? 'unknown' }));
    result.errors.push(...errs);
    result.deleted += batch.length - errs.length;
  }
  return result;
}

export interface InventoryItem {
  key: string;
  size: number;
  /** The ETag without its quotes, when the listing gives one. */
  etag?: string;
}

/** Every object under `prefix`, page by page (1,000 per request), in key order. */
export async function* inventory(s3: S3Client, bucket: string, prefix = ''): AsyncGenerator<InventoryItem> {
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }),
    );
    for (const o of page.Contents ?? []) {
      if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, etag: unquoteEtag(o.ETag) };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}
