/** The documents phase's rule for one record (API_Docs `Doc`): its row is kept also when its file is not. */
import { documentKey } from '../../domain/keys';
import { mapDocument } from '../../domain/mappers/documents';
import type { FmRecord } from '../../domain/types';
import type { LedgerEntry } from '../outcomes';
import { addFinding, countStored, reasonOf, type FileContext, type FileJob } from './context';
import { obtainFile } from './download';
import type { KeyFor } from './relink';

export async function importDocument(fc: FileContext, job: FileJob): Promise<LedgerEntry> {
  const { id, record, ctx } = job;
  const outcome = mapDocument(record as unknown as FmRecord, ctx);
  const sourceModId = record.modId;
  if (outcome.kind === 'error') {
    return { filemakerId: id, state: 'failed', reasonCode: outcome.reason, message: outcome.message, sourceModId };
  }
  for (const f of outcome.findings ?? []) addFinding(fc.result, f.code);
  // The row and its ledger entry land in one statement; a refused row comes back failed, its entry unwritten.
  const upsert = async (row: Record<string, unknown>, entry: LedgerEntry): Promise<LedgerEntry> => {
    // Under the manifest record it was read as: the ledger write then needs no look-up by id.
    const recorded: LedgerEntry = {
      ...entry,
      recordId: record.recordId,
      targetTable: 'documents',
      targetId: row.id as string,
    };
    const o = await fc.writes.upsert('documents', row, fc.input.runId, {
      sourceTable: fc.input.table,
      entry: recorded,
    });
    if (o.status === 'failed') return { filemakerId: id, state: 'failed', reasonCode: o.reason, message: o.message };
    return { ...recorded, recorded: true };
  };
  if (outcome.kind === 'skip') {
    const entry: LedgerEntry = { filemakerId: id, state: 'skipped', reasonCode: outcome.reason, sourceModId };
    // The document's metadata is kept (import_status 'skipped') so the clinic still sees it.
    return outcome.row ? upsert(outcome.row as unknown as Record<string, unknown>, entry) : entry;
  }
  const base = outcome.row;
  const keyFor: KeyFor = (ext, revision) => documentKey(base.object_id, base.category, id, ext, revision);
  const { stored, error } = await obtainFile(fc, job, keyFor, 'Doc', ['Doc']);
  if (error !== undefined) {
    const row = { ...base, import_status: 'failed', import_error: 'DOWNLOAD_FAILED' };
    return upsert(row, {
      filemakerId: id,
      state: 'failed',
      reasonCode: 'DOWNLOAD_FAILED',
      message: `${fc.input.table} ${id}: ${reasonOf(error)}`,
      sourceModId,
    });
  }
  if (!stored) {
    const row = { ...base, import_status: 'skipped', import_error: 'EMPTY_CONTAINER' };
    return upsert(row, { filemakerId: id, state: 'skipped', reasonCode: 'EMPTY_CONTAINER', sourceModId });
  }
  countStored(fc, stored, job.replaces);
  const row = {
    ...base,
    s3_bucket: fc.bucket,
    s3_key: stored.key,
    original_name: stored.filename,
    mime_type: stored.contentType,
    file_size: stored.size,
    sha256: stored.sha256,
  };
  const entry = await upsert(row, {
    filemakerId: id,
    state: outcome.state,
    reasonCode: outcome.state === 'unlinked' ? outcome.reason : undefined,
    s3Key: stored.key,
    bytes: stored.size,
    sha256: stored.sha256,
    objectEtag: stored.etag,
    sourceModId,
  });
  return entry;
}
