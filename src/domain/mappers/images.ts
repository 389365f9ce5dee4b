/**
 * Images phase (API_Images): the container waterfall, the category table, and the per-patient-per-day batch each
 * image belongs to. The files phase adds s3_key, thumbnail_key, mime_type, file_size, sha256, width, height,
 * source_field and thumbnail_status after the download.
 */
import { normalizeFileMakerId, targetId } from '../ids';
import { cleanFilename } from '../keys';
import { cleanText } from '../normalize';
import { mapRecord, type RecordReader } from '../record';
import { type ReasonCode } from '../reasons';
import { IMAGE_CONTAINER_FIELDS, type ImageContainerField } from '../tables';
import { type BaseRow, type FmRecord, type MapContext, type MapOutcome, type PatientRef } from '../types';

export interface ImageCandidate {
  readonly field: ImageContainerField;
  readonly url: string;
}

/**
 * The waterfall: non-empty containers in the order image_Full → image_Ex_large → image_large → image_medium →
 * image_small. The files phase downloads the first and falls back to the next when a download is broken.
 */
export function imageCandidates(record: FmRecord): ImageCandidate[] {
  const out: ImageCandidate[] = [];
  for (const field of IMAGE_CONTAINER_FIELDS) {
    const v = record.fieldData[field];
    const url = typeof v === 'string' ? cleanText(v).value : '';
    if (url !== '') out.push({ field, url });
  }
  return out;
}

const VIEWS = ['dorsal', 'plantar', 'medial', 'lateral', 'anterior', 'posterior'] as const;
type View = (typeof VIEWS)[number];
type Side = 'left' | 'right' | 'bilateral';

/** Every category an image can get. `other` is the fallback. */
export const IMAGE_CATEGORIES = [
  ...VIEWS.flatMap((v) => [`left_${v}`, `right_${v}`, `bilateral_${v}`, v] as const),
  'brannock_left',
  'brannock_right',
  'brannock',
  'gait',
  'footwear',
  'orthotic',
  'scan',
  'xray',
  'other',
] as const;
export type ImageCategory = (typeof IMAGE_CATEGORIES)[number];

const SIDE_TOKENS: Record<string, Side> = {
  left: 'left',
  l: 'left',
  lt: 'left',
  lft: 'left',
  right: 'right',
  r: 'right',
  rt: 'right',
  rgt: 'right',
  both: 'bilateral',
  bilateral: 'bilateral',
  bilat: 'bilateral',
};
const VIEW_TOKENS: Record<string, View> = {
  dorsal: 'dorsal',
  dorsum: 'dorsal',
  top: 'dorsal',
  plantar: 'plantar',
  sole: 'plantar',
  medial: 'medial',
  lateral: 'lateral',
  anterior: 'anterior',
  front: 'anterior',
  posterior: 'posterior',
  back: 'posterior',
  rear: 'posterior',
};
type Subject = 'brannock' | 'gait' | 'footwear' | 'orthotic' | 'scan' | 'xray' | 'other';
const SUBJECT_TOKENS: Record<string, Subject> = {
  brannock: 'brannock',
  gait: 'gait',
  footwear: 'footwear',
  shoe: 'footwear',
  shoes: 'footwear',
  orthotic: 'orthotic',
  orthotics: 'orthotic',
  insole: 'orthotic',
  insoles: 'orthotic',
  scan: 'scan',
  xray: 'xray',
  other: 'other',
};
/** Words that say nothing about the category. */
const FILLER = new Set(['view', 'foot', 'feet', 'photo', 'image', 'picture', 'pic', 'of', 'the', 'side']);

/**
 * FileMaker `Type` → category. The text is split into words (any non-letter/digit separates; `x-ray` is one word),
 * case-insensitive, order-free: a side (left/l/lt, right/r/rt, both/bilateral) plus a view (dorsal, plantar,
 * medial, lateral, anterior, posterior) → `{side}_{view}` (`Left Dorsal` → `left_dorsal`); a view alone → the view;
 * Brannock with a side → `brannock_{side}` (`L-Brannock` → `brannock_left`); gait, footwear, orthotic, scan, xray as
 * named. Empty → `other`. Anything else, or a contradictory mix → `other` with `known: false` (UNKNOWN_IMAGE_TYPE).
 */
export function imageCategory(type: unknown): { category: ImageCategory; known: boolean } {
  const words = cleanText(type)
    .value.toLowerCase()
    .replace(/x-ray/g, 'xray')
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== '' && !FILLER.has(w));
  if (words.length === 0) return { category: 'other', known: true };
  const sides = new Set<Side>();
  const views = new Set<View>();
  const subjects = new Set<Subject>();
  for (const w of words) {
    const side = SIDE_TOKENS[w];
    const view = VIEW_TOKENS[w];
    const subject = SUBJECT_TOKENS[w];
    if (side) sides.add(side);
    else if (view) views.add(view);
    else if (subject) subjects.add(subject);
    else return { category: 'other', known: false };
  }
  // "Left ... Right" together means both feet.
  const side: Side | undefined =
    sides.size === 0 ? undefined : sides.has('bilateral') || sides.size > 1 ? 'bilateral' : [...sides][0];
  if (subjects.size > 1 || (subjects.size === 1 && views.size > 0) || views.size > 1) {
    return { category: 'other', known: false };
  }
  const subject = [...subjects][0];
  const view = [...views][0];
  if (subject === 'brannock') {
    return { category: side === 'left' || side === 'right' ? `brannock_${side}` : 'brannock', known: true };
  }
  // A side on a subject without sides ("Left Orthotic") adds nothing the category can hold; the caption keeps it.
  if (subject !== undefined) return { category: subject, known: true };
  if (view !== undefined) return { category: side ? `${side}_${view}` : view, known: true };
  return { category: 'other', known: false };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** `2024-06-20` → `20 Jun 2024 (FileMaker Import)`; no date → `Undated (FileMaker Import)`. Day is two digits. */
export function imageBatchName(dateISO: string | null): string {
  if (dateISO === null) return 'Undated (FileMaker Import)';
  const [y, m, d] = dateISO.split('-');
  return `${d ?? ''} ${MONTHS[Number(m) - 1] ?? ''} ${y ?? ''} (FileMaker Import)`;
}

/** The batch key stored as the batch's filemaker_id: `{patient_id|unlinked}/{yyyy-mm-dd|undated}`. */
export function imageBatchKey(patientId: string | null, dateISO: string | null): string {
  return `${patientId ?? 'unlinked'}/${dateISO ?? 'undated'}`;
}

export interface ImageBatchRow extends BaseRow {
  readonly patient_id: string | null;
  readonly batch_date: string | null;
  readonly name: string;
}

/** The batch row for a patient and day (generated, so its filemaker_metadata only records the key). */
export function imageBatch(patientId: string | null, dateISO: string | null): ImageBatchRow {
  const key = imageBatchKey(patientId, dateISO);
  return {
    id: targetId('image_batches', key),
    filemaker_id: key,
    filemaker_metadata: { batch_key: key },
    patient_id: patientId,
    batch_date: dateISO,
    name: imageBatchName(dateISO),
  };
}

export interface ImageRow extends BaseRow {
  readonly batch_id: string;
  readonly original_name: string | null;
  readonly category: ImageCategory;
  /** The `Type` text as the clinic wrote it (the category loses detail for `other`). */
  readonly caption: string | null;
  readonly date_taken: string | null;
}

export interface MappedImage {
  readonly image: ImageRow;
  readonly batch: ImageBatchRow;
  /** Not columns: what the files phase downloads, in waterfall order. */
  readonly candidates: readonly ImageCandidate[];
}

/** Where resolveImagePatient looks for the image's patient, in order. */
const PATIENT_FIELD = 'id_Contact';
/** Older records carry the patient only here. */
const ALT_PATIENT_FIELD = 'ID.KEY';

/** The patient ids (normalised) mapImage may look up for this record: a batch loads only those patients. */
export function imagePatientRefs(record: FmRecord): string[] {
  return [PATIENT_FIELD, ALT_PATIENT_FIELD].flatMap((f) => normalizeFileMakerId(record.fieldData[f])?.value ?? []);
}

function resolveImagePatient(r: RecordReader): { patient?: PatientRef; unlinked?: ReasonCode } {
  const primary = r.fk(PATIENT_FIELD);
  const primaryPatient = primary === null ? undefined : r.ctx.patientId(primary);
  if (primaryPatient) return { patient: primaryPatient };
  const alt = r.fk(ALT_PATIENT_FIELD);
  const altPatient = alt === null ? undefined : r.ctx.patientId(alt);
  if (altPatient) {
    r.flag('PATIENT_FROM_ALT_KEY', ALT_PATIENT_FIELD);
    return { patient: altPatient };
  }
  return { unlinked: primary === null && alt === null ? 'NO_PATIENT' : 'PATIENT_NOT_FOUND' };
}

export function mapImage(record: FmRecord, ctx: MapContext): MapOutcome<MappedImage> {
  return mapRecord(record, 'API_Images', ctx, (r) => {
    const candidates = imageCandidates(record);
    if (candidates.length === 0) {
      const notFound = cleanText(r.raw('result')).value.toLowerCase() === 'not found';
      return notFound
        ? {
            kind: 'skip',
            reason: 'NOT_FOUND_IMAGE',
            message: `${r.describe()} is marked Not found and has no container`,
          }
        : { kind: 'skip', reason: 'EMPTY_CONTAINER', message: `${r.describe()} has no non-empty image container` };
    }
    const { patient, unlinked } = resolveImagePatient(r);
    const dateTaken = r.date('date');
    const { category, known } = imageCategory(r.raw('Type'));
    if (!known) r.flag('UNKNOWN_IMAGE_TYPE', 'Type');
    const batch = imageBatch(patient?.id ?? null, dateTaken);
    const image: ImageRow = {
      ...r.base('images'),
      batch_id: batch.id,
      original_name: cleanFilename(r.text('Name of file')) || null,
      category,
      caption: r.optText('Type'),
      date_taken: dateTaken,
    };
    const row: MappedImage = { image, batch, candidates };
    return r.outcome(row, unlinked);
  });
}
