/**
 * Step 2 of a file: an object an earlier run stored for the record at this version, when S3 still holds exactly it,
 * is relinked (no FileMaker request, no quota); and where a download writes when the record changed since.
 */
import { keyRevision } from '../../domain/keys';
import { parseContentDisposition } from '../../filemaker/content-disposition';
import { copyObject, headObject } from '../../s3';
import { rowsBefore } from '../../store/backup';
import type { LedgerFile } from '../../store/ledger';
import type { FileContext, ListedPrior, StoredFile } from './context';

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

/** A files table's row before the run, as far as a relink reads it. */
interface RowBefore {
  filemaker_id: string;
  s3_key: string | null;
  sha256: string | null;
  file_size: string | null;
  mime_type: string | null;
  original_name: string | null;
  source_field?: string | null;
  thumbnail_key?: string | null;
  thumbnail_status?: string | null;
  width?: number | null;
  height?: number | null;
}

/**
 * The relinks of a batch that need no HEAD, by id, among `priors` (a relink also needs the record's version to be
 * the one recorded: the batch checks that). An object is confirmed when a listing shows it under its key with the recorded size and with the ETag
 * the ledger recorded when its size and SHA-256 were confirmed (an upload S3 verified, or a HEAD): bytes written
 * there since would have another ETag, as the phases' reconciliation relies on too. What the listing does not give
 * (content type, name; an image's container and thumbnail) comes from the row before the run, taken only when it
 * recorded that same object. An image is confirmed only with nothing left to read: its thumbnail listed as the row
 * recorded it, or none possible. Every other prior (no ETag recorded, not listed, another size or ETag, a row that
 * differs, no backup) is HEADed by relink as before; one not found there is downloaded again.
 */
export async function confirmListed(
  fc: FileContext,
  priors: ReadonlyMap<string, LedgerFile>,
): Promise<Map<string, ListedPrior>> {
  const confirmed = new Map<string, ListedPrior>();
  const table = fc.input.table === 'API_Docs' ? 'documents' : 'images';
  const candidates = [...priors].filter(([, p]) => p.bytes !== null && p.sha256 !== null && p.objectEtag !== null);
  if (candidates.length === 0) return confirmed;
  const rows = await rowsBefore<RowBefore>(
    fc.deps.pool,
    fc.input.runId,
    table,
    candidates.map(([id]) => id),
  );
  const same = candidates.flatMap(([id, p]) => {
    const row = rows.get(id);
    const recorded =
      row !== undefined &&
      row.s3_key === p.s3Key &&
      row.sha256 === p.sha256 &&
      row.file_size !== null &&
      Number(row.file_size) === p.bytes &&
      row.mime_type !== null;
    return recorded ? [{ id, prior: p, row }] : [];
  });
  const keys = same.flatMap(({ prior, row }) => (row.thumbnail_key ? [prior.s3Key, row.thumbnail_key] : [prior.s3Key]));
  const listed = await fc.deps.files.listings.lookup(fc.deps.s3, fc.bucket, keys, fc.input.runId);
  for (const { id, prior, row } of same) {
    const o = listed.get(prior.s3Key);
    if (!o || o.size !== prior.bytes || o.etag === undefined || o.etag !== prior.objectEtag) continue;
    const entry: ListedPrior = { etag: o.etag, contentType: row.mime_type!, filename: row.original_name };
    if (table === 'images') {
      const thumb = row.thumbnail_key ? listed.get(row.thumbnail_key) : undefined;
      const { width, height } = row;
      if (row.thumbnail_status === 'created' && thumb && thumb.size > 0 && width && height) {
        entry.thumbnail = { key: row.thumbnail_key!, width, height };
      } else if (row.thumbnail_status !== 'unsupported_format') continue;
      entry.sourceField = row.source_field ?? null;
    }
    confirmed.set(id, entry);
  }
  return confirmed;
}

/**
 * Step 2: the object recorded for this id by an earlier run, when S3 still holds exactly it (`listed`: as a listing
 * confirmed it, see confirmListed; else a HEAD shows it). Moves it (server-side copy) when the key it should have now
 * differs; a replaced file's key keeps its revision.
 */
export async function relink(
  fc: FileContext,
  prior: LedgerFile | undefined,
  keyFor: KeyFor,
  field: string,
  listed?: ListedPrior,
): Promise<StoredFile | undefined> {
  if (!prior || prior.bytes === null || prior.sha256 === null) return undefined;
  if (listed && keyFor(extOfKey(prior.s3Key), keyRevision(prior.s3Key)) === prior.s3Key) {
    return {
      key: prior.s3Key,
      size: prior.bytes,
      sha256: prior.sha256,
      contentType: listed.contentType,
      filename: listed.filename,
      downloaded: 0,
      etag: listed.etag,
      relinked: true,
      typeSource: 'declared',
      field,
      listed,
    };
  }
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
