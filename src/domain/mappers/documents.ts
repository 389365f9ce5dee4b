/**
 * Documents phase (API_Docs): the row fields that come from the record. The files phase adds `s3_bucket`, `s3_key`,
 * `original_name`, `mime_type`, `file_size`, `sha256` after streaming the container, and may turn the state into
 * failed with an import_error.
 */
import { normalizeFileMakerId } from '../ids';
import { cleanText, slugify } from '../normalize';
import { mapRecord } from '../record';
import { type BaseRow, type FmRecord, type MapContext, type MapOutcome } from '../types';

export type DocumentImportStatus = 'imported' | 'unlinked' | 'skipped' | 'failed';

export interface DocumentRow extends BaseRow {
  /** 'patient' when linked, null when unlinked (Nexus's generic owner link). */
  readonly content_type: 'patient' | null;
  readonly object_id: string | null;
  /** slugify(Type), 'other' when empty; also the `{type-slug}` of the S3 key. */
  readonly category: string;
  readonly document_date: string | null;
  readonly import_status: DocumentImportStatus;
  readonly import_error: string | null;
}

/** The `Doc` container URL, or null when the container is empty. Read it right before downloading: it expires. */
export function documentContainerUrl(record: FmRecord): string | null {
  const v = record.fieldData.Doc;
  if (typeof v !== 'string') return null;
  const s = cleanText(v).value;
  return s === '' ? null : s;
}

/** The field mapDocument resolves the document's patient from. */
const PATIENT_FIELD = 'id_Contact';

/** The patient ids (normalised) mapDocument may look up for this record: a batch loads only those patients. */
export function documentPatientRefs(record: FmRecord): string[] {
  const id = normalizeFileMakerId(record.fieldData[PATIENT_FIELD]);
  return id ? [id.value] : [];
}

/**
 * An empty container is skipped EMPTY_CONTAINER, but its row (import_status 'skipped') is still returned so the
 * document's metadata is kept and visible in the clinic's system.
 */
export function mapDocument(record: FmRecord, ctx: MapContext): MapOutcome<DocumentRow> {
  return mapRecord(record, 'API_Docs', ctx, (r): MapOutcome<DocumentRow> => {
    const { patient, unlinked } = r.patient(PATIENT_FIELD);
    const empty = documentContainerUrl(record) === null;
    const base = {
      ...r.base('documents'),
      content_type: patient ? ('patient' as const) : null,
      object_id: patient?.id ?? null,
      category: slugify(r.raw('Type')),
      document_date: r.date('Date'),
    };
    if (empty) {
      return {
        kind: 'skip',
        reason: 'EMPTY_CONTAINER',
        message: `${r.describe()} has an empty Doc container`,
        row: { ...base, import_status: 'skipped', import_error: 'EMPTY_CONTAINER' },
        findings: r.findings,
      };
    }
    return r.outcome<DocumentRow>(
      { ...base, import_status: unlinked ? 'unlinked' : 'imported', import_error: null },
      unlinked,
    );
  });
}
