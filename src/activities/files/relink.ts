/**
 * Step 2 of a file: an object an earlier run stored for the record at this version, when S3 still holds exactly it,
 * is relinked (no FileMaker request, no quota); and where a download writes when the record changed since.
 */
import { keyRevision } from '../../domain/keys';
import { parseContentDisposition } from '../../filemaker/content-disposition';
import { copyObject, headObject } from '../../s3';
import type { LedgerFile } from '../../store/ledger';
import type { FileContext, StoredFile } from './context';

/** `.../{id}.{ext}` → ext */
function extOfKey(key: string): string {
  const m = /\.([A-Za-z0-9%]{1,12})$/.exec(key);
  return m?.[1] ?? 'bin';
}

/** A file's key for an extension and a revision (see documentKey, imageKey). */
export type KeyFor = (ext: string, revision: string | undefined) => string;

/**
 * Where a download of a record at version `modId` writes, and whether it replaces a file, given the object the
 * tables refer to before the run (`referenced`: the last completed run's ledger entry; a rolled-back run's objects
 * are gone and its rows restored away). None: the plain key, as every first download had. Of another record version
 * (a replaced container): the record's modId as the key's revision, so the old object stays as it is for a rollback
 * and a retried batch writes the same key again. Of this version (its object went missing): that object's own key.
 */
export function downloadTarget(
  referenced: LedgerFile | undefined,
  modId: string | undefined,
): { replaces: boolean; revision: string | undefined } {
  if (referenced === undefined) return { replaces: false, revision: undefined };
  if (referenced.sourceModId === (modId ?? null)) return { replaces: false, revision: keyRevision(referenced.s3Key) };
  return { replaces: true, revision: modId };
}

/**
 * Step 2: the object recorded for this id by an earlier run, when S3 still holds exactly it. Moves it
 * (server-side copy) when the key it should have now differs; a replaced file's key keeps its revision.
 */
export async function relink(
  fc: FileContext,
  prior: LedgerFile | undefined,
  keyFor: KeyFor,
  field: string,
): Promise<StoredFile | undefined> {
  if (!prior || prior.bytes === null || prior.sha256 === null) return undefined;
  const { s3 } = fc.deps;
  const head = await headObject(s3, fc.bucket, prior.s3Key);
  if (!head || head.size !== prior.bytes || head.sha256 !== prior.sha256) return undefined;
  const key = keyFor(extOfKey(prior.s3Key), keyRevision(prior.s3Key));
  let etag = head.etag;
  if (key !== prior.s3Key) {
    const existing = await headObject(s3, fc.bucket, key);
    if (existing && existing.size === head.size && existing.sha256 === head.sha256) etag = existing.etag;
    else {
      await copyObject(s3, fc.bucket, prior.s3Key, key);
      const copied = await headObject(s3, fc.bucket, key);
      if (!copied || copied.size !== head.size || copied.sha256 !== head.sha256) return undefined;
      etag = copied.etag;
    }
  }
  return {
    key,
    size: head.size,
    sha256: head.sha256,
    contentType: head.contentType ?? 'application/octet-stream',
    filename: parseContentDisposition(head.contentDisposition).filename ?? null,
    downloaded: 0,
    etag,
    relinked: true,
    typeSource: 'declared',
    field,
  };
}
