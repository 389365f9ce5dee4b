/**
 * The images phase's rule for one record (API_Images): the container waterfall (the first container that downloads
 * wins), then the thumbnail, the batch row and the image row.
 */
import { imageKey, keyRevision, thumbnailKey } from '../../domain/keys';
import { mapImage, type MappedImage } from '../../domain/mappers/images';
import type { FmRecord } from '../../domain/types';
import { latestImageMessage } from '../../store/ledger';
import type { LedgerEntry } from '../outcomes';
import { ensureThumbnail, type ThumbnailResult } from './thumbnails';
import { addFinding, countStored, reasonOf, type FileContext, type FileJob, type StoredFile } from './context';
import { obtainFile } from './download';
import type { KeyFor } from './relink';

export async function importImage(fc: FileContext, job: FileJob): Promise<LedgerEntry> {
  const { id, record, ctx } = job;
  const outcome = mapImage(record as unknown as FmRecord, ctx);
  const sourceModId = record.modId;
  if (outcome.kind !== 'row') {
    return {
      filemakerId: id,
      state: outcome.kind === 'skip' ? 'skipped' : 'failed',
      reasonCode: outcome.reason,
      message: outcome.message,
      sourceModId,
    };
  }
  for (const f of outcome.findings) addFinding(fc.result, f.code);
  const { batch, candidates } = outcome.row;
  const keyFor: KeyFor = (ext, revision) => imageKey(batch.patient_id, batch.batch_date, id, ext, revision);

  // The waterfall: the first container that downloads wins; a broken one falls back to the next.
  const { stored, error, fellBack } = await obtainFile(
    fc,
    job,
    keyFor,
    '',
    candidates.map((c) => c.field),
  );
  if (!stored) {
    if (error === undefined) {
      // Every container was emptied between the find and the download, or holds 0 bytes.
      return { filemakerId: id, state: 'skipped', reasonCode: 'EMPTY_CONTAINER', sourceModId };
    }
    return {
      filemakerId: id,
      state: 'failed',
      reasonCode: 'DOWNLOAD_FAILED',
      message: `${fc.input.table} ${id}: every image container broke (${reasonOf(error)})`,
      sourceModId,
    };
  }
  if (fellBack) addFinding(fc.result, 'IMAGE_FALLBACK');
  try {
    return await finishImage(fc, id, outcome.row, stored, {
      state: outcome.state,
      reason: outcome.state === 'unlinked' ? outcome.reason : undefined,
      sourceModId,
      replaces: job.replaces,
      recordId: record.recordId,
    });
  } finally {
    stored.release?.();
  }
}

/** Thumbnail, batch and image rows for an image whose file is stored; the ledger entry to write. */
export async function finishImage(
  fc: FileContext,
  id: string,
  mapped: MappedImage,
  stored: StoredFile,
  outcome: {
    state: 'imported' | 'unlinked';
    reason?: string;
    sourceModId?: string;
    replaces?: boolean;
    /** The manifest record the entry is for, when known: its ledger write then needs no look-up by id. */
    recordId?: string;
  },
): Promise<LedgerEntry> {
  const { image, batch } = mapped;
  const sourceModId = outcome.sourceModId;
  countStored(fc, stored, outcome.replaces ?? false);

  const thumbKey = thumbnailKey(batch.patient_id, batch.batch_date, id, keyRevision(stored.key));
  // A relink a listing confirmed knows its thumbnail (listed, with the dimensions the row recorded) without a HEAD.
  const known = stored.listed?.thumbnail;
  const thumb: ThumbnailResult =
    known?.key === thumbKey
      ? { status: 'created', width: known.width, height: known.height, key: thumbKey }
      : await ensureThumbnail(fc.deps.s3, fc.bucket, stored.key, thumbKey, stored.contentType, stored.size, {
          source: stored.body,
          fresh: !stored.relinked,
          decodes: fc.deps.files.decodes,
        });
  if (thumb.status === 'unsupported_format') addFinding(fc.result, 'THUMBNAIL_UNSUPPORTED');
  if (thumb.status === 'failed') addFinding(fc.result, 'THUMBNAIL_FAILED');

  const bo = await fc.writes.upsert('image_batches', batch as unknown as Record<string, unknown>, fc.input.runId);
  if (bo.status === 'failed') return { filemakerId: id, state: 'failed', reasonCode: bo.reason, message: bo.message };
  const sourceField = !stored.relinked ? stored.field : (stored.listed?.sourceField ?? (await recordedField(fc, id)));
  const row = {
    ...image,
    s3_key: stored.key,
    thumbnail_key: thumb.key,
    mime_type: stored.contentType,
    file_size: stored.size,
    sha256: stored.sha256,
    width: thumb.width,
    height: thumb.height,
    source_field: sourceField,
    thumbnail_status: thumb.status,
  };
  const entry: LedgerEntry = {
    recordId: outcome.recordId,
    filemakerId: id,
    state: outcome.state,
    reasonCode: outcome.reason,
    targetTable: 'images',
    targetId: image.id,
    message: sourceField === null ? undefined : `${FIELD_NOTE}${sourceField}`,
    s3Key: stored.key,
    bytes: stored.size,
    sha256: stored.sha256,
    objectEtag: stored.etag,
    sourceModId,
  };
  // The row and its ledger entry land in one statement; a refused row comes back failed, its entry unwritten.
  const o = await fc.writes.upsert('images', row, fc.input.runId, { sourceTable: fc.input.table, entry });
  if (o.status === 'failed') return { filemakerId: id, state: 'failed', reasonCode: o.reason, message: o.message };
  return { ...entry, recorded: true };
}

/** An imported image's ledger message names the container it came from, so a relink can keep `source_field`. */
const FIELD_NOTE = 'source field: ';

/** The container field an earlier run imported this image from (the delete phase removed the row). */
async function recordedField(fc: FileContext, id: string): Promise<string | null> {
  const m = await latestImageMessage(fc.deps.pool, id, FIELD_NOTE);
  return m ? m.slice(FIELD_NOTE.length) : null;
}
