/**
 * The images phase from the clinic's FileMaker Pro bulk export (`{recid}.{ext}` files and the BOM-prefixed
 * metadata CSV, in a folder or under an S3 prefix) instead of container downloads: no Data API call, no transfer
 * quota. The manifest still comes from FileMaker over OData (ids with their `recid`), so every image record that
 * exists is accounted for: one the export has no file for ends `skipped` EXPORT_FILE_MISSING (a later run over the
 * Data API downloads exactly those, and relinks the rest), a CSV row that cannot be read `failed`
 * EXPORT_ROW_MALFORMED. Images land with the same keys, rows and thumbnails as over the Data API.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { effectiveContentType, imageKey } from '../../domain/keys';
import { imagePatientRefs, mapImage, type MappedImage } from '../../domain/mappers/images';
import { SOURCE_TABLES } from '../../domain/tables';
import type { FmRecord } from '../../domain/types';
import { openExportSource, type ExportLocation, type ExportRow, type ExportSource } from '../../export';
import { uploadStream } from '../../s3';
import { ledgerLookup } from '../../store/ledger';
import { manifestSourceKeys } from '../../store/manifest';
import type { ActivityDeps } from '../deps';
import { emptyChunkResult, type LedgerEntry } from '../outcomes';
import { loadMapContext } from '../records';
import type { ChunkInput, ChunkResult } from '../types';
import { beginBatch, settleFile } from './batch';
import { addFinding, uploadedFile, type FileContext, type StoredFile } from './context';
import { peek } from './download';
import { finishImage } from './images';
import { downloadTarget, relink, type KeyFor } from './relink';

/** What `images.source_field` says for an image that came from the export. */
export const EXPORT_SOURCE_FIELD = 'filemaker_pro_export';

export interface OpenExport {
  source: ExportSource;
  byRecid: Map<string, ExportRow>;
}

/** Exports opened by this worker process (deps.files.exports): one listing and one CSV pass each, shared by its batches. */
export type ExportCache = Map<string, Promise<OpenExport>>;

async function openExport(opened: ExportCache, location: ExportLocation, s3: S3Client): Promise<OpenExport> {
  const key = JSON.stringify(location);
  let p = opened.get(key);
  if (!p) {
    p = (async () => {
      const source = await openExportSource(location, { s3 });
      const byRecid = new Map<string, ExportRow>();
      for await (const row of source.rows()) if (!byRecid.has(row.recid)) byRecid.set(row.recid, row);
      return { source, byRecid };
    })();
    opened.set(key, p);
    p.catch(() => opened.delete(key));
  }
  return p;
}

/** The record the mappers read, from the CSV row: fields the export does not carry are empty. */
function recordFromRow(id: string, row: ExportRow): FmRecord {
  const fieldData: Record<string, string> = {};
  for (const f of SOURCE_TABLES.API_Images.requiredFields) fieldData[f] = '';
  Object.assign(fieldData, {
    id,
    recid: row.fields.recid,
    id_Contact: row.fields.id_Contact,
    date: row.fields.date,
    Type: row.fields.Type,
    'Name of file': row.file?.name ?? '',
    // Marks the one container the export holds, so the waterfall sees a file.
    image_Full: row.file ? EXPORT_SOURCE_FIELD : '',
  });
  return { recordId: row.recid, modId: '0', fieldData };
}

async function uploadFromExport(
  fc: FileContext,
  exp: OpenExport,
  row: ExportRow,
  keyFor: (ext: string) => string,
): Promise<StoredFile> {
  const file = row.file!;
  const body = await exp.source.open(file);
  const { head, stream } = await peek(body, 4096);
  const contentType = effectiveContentType(undefined, head);
  const key = keyFor(file.ext);
  const up = await uploadStream(fc.deps.s3, {
    bucket: fc.bucket,
    key,
    body: stream,
    contentType,
    filename: file.name,
    expectedSize: file.size,
    logger: fc.deps.logger,
  });
  return uploadedFile(up, {
    contentType,
    filename: file.name,
    downloaded: 0,
    // An exported file declares no type: its bytes decide, as they always did there, without a finding.
    typeSource: 'declared',
    field: EXPORT_SOURCE_FIELD,
  });
}

export async function importExportBatch(
  deps: ActivityDeps,
  input: ChunkInput & { exportSource: ExportLocation },
): Promise<ChunkResult> {
  const result = emptyChunkResult();
  const batch = await beginBatch(deps, input, result);
  if (!batch) return result;
  const { fc, todo } = batch;
  const exp = await openExport(deps.files.exports, input.exportSource, deps.s3);
  const keys = await manifestSourceKeys(deps.pool, input.runId, input.table, todo);
  const recidOf = new Map(keys.map((r) => [r.filemaker_id, r.source_key]));
  // The record version the manifest read: what an exported file is taken to correspond to.
  const modIdOf = new Map(keys.map((r) => [r.filemaker_id, r.mod_id ?? undefined]));
  const rowOf = (id: string) => {
    const recid = recidOf.get(id) ?? null;
    return recid === null ? undefined : exp.byRecid.get(recid);
  };
  const ctx = await loadMapContext(deps, input.runId, input.table, {
    patients: todo.flatMap((id) => {
      const row = rowOf(id);
      return row && !row.malformed ? imagePatientRefs(recordFromRow(id, row)) : [];
    }),
  });
  const priors = await ledgerLookup(deps.pool, input.table, todo);
  const referenced = await ledgerLookup(deps.pool, input.table, todo, { completedOnly: true });

  for (const id of todo) {
    const recid = recidOf.get(id) ?? null;
    const row = rowOf(id);
    const missing = (why: string): LedgerEntry => ({
      filemakerId: id,
      state: 'skipped',
      reasonCode: 'EXPORT_FILE_MISSING',
      message: `${input.table} ${id}: ${why}`,
    });
    let entry: LedgerEntry;
    if (!row) {
      entry = missing(recid === null ? 'the record has no recid' : `recid ${recid} is not in the export`);
    } else if (row.malformed) {
      entry = {
        filemakerId: id,
        state: 'failed',
        reasonCode: 'EXPORT_ROW_MALFORMED',
        message: `export CSV line ${row.line}: ${row.malformed.reason}`,
      };
    } else if (!row.file || row.file.size === 0) {
      entry = missing(`no file for recid ${recid ?? ''}`);
    } else {
      for (const f of row.findings) addFinding(fc.result, f.code);
      const outcome = mapImage(recordFromRow(id, row), ctx);
      if (outcome.kind !== 'row') {
        entry = {
          filemakerId: id,
          state: outcome.kind === 'skip' ? 'skipped' : 'failed',
          reasonCode: outcome.reason,
          message: outcome.message,
        };
      } else {
        for (const f of outcome.findings) addFinding(fc.result, f.code);
        const mapped: MappedImage = outcome.row;
        const keyFor: KeyFor = (ext, revision) =>
          imageKey(mapped.batch.patient_id, mapped.batch.batch_date, id, ext, revision);
        // An object stored at another record version is replaced from the export (which costs no quota), under a
        // key of its own (see downloadTarget).
        const sourceModId = modIdOf.get(id);
        const prior = priors.get(id);
        const unchanged = prior !== undefined && prior.sourceModId === (sourceModId ?? null);
        const target = downloadTarget(referenced.get(id), sourceModId);
        const stored =
          (unchanged ? await relink(fc, prior, keyFor, EXPORT_SOURCE_FIELD) : undefined) ??
          (await uploadFromExport(fc, exp, row, (ext) => keyFor(ext, target.revision)));
        entry = await finishImage(fc, id, mapped, stored, {
          state: outcome.state,
          reason: outcome.state === 'unlinked' ? outcome.reason : undefined,
          sourceModId,
          replaces: target.replaces,
          recordId: batch.recordIdOf.get(id),
        });
      }
    }
    await settleFile(batch, entry);
  }
  return result;
}
