/**
 * The closed set of reason codes the domain layer emits. The ledger stores them in `import_ledger.reason_code`
 * (checked against `^[A-Z][A-Z0-9_]*$`), reports group failures by them, and findings (data-quality notes on rows
 * that were still imported) use the same catalogue so an operator has one list to read.
 */
export const REASON_CODES = {
  // Errors: the record could not be mapped at all (ledger state `failed`).
  MISSING_ID: 'The record has no usable `id` (empty or blank), so it cannot be keyed or imported.',
  DUPLICATE_ID:
    'Two or more records of the table share this `id` (after normalisation); none of them is imported, the message names their record ids.',
  INVALID_RECORD: 'The record is not a FileMaker record shape or a field holds a value of the wrong type.',
  MISSING_FIELD: 'A field the mapper reads is absent from the record (layout drift), so values would be lost silently.',
  DOWNLOAD_FAILED: 'A container download still failed after the bounded retries (and every waterfall fallback).',
  EXPORT_ROW_MALFORMED: 'A row of the FileMaker Pro export CSV that cannot be read (bad recid, wrong column count).',
  EXPORT_RECORD_UNKNOWN: 'An export CSV row whose recid matches no API_Images record in FileMaker.',

  // Skips: accounted for by a documented rule (ledger state `skipped`).
  EMPTY_NOTE: 'A note whose text is empty after cleaning; there is nothing to import.',
  EMPTY_MESSAGE: 'An SMS whose body is empty after cleaning; there is nothing to import.',
  EMPTY_CONTAINER: 'A document or image record whose container fields are all empty.',
  EXPORT_FILE_MISSING: 'An export CSV row with no `{recid}.{ext}` file; FileMaker Pro exported no bytes for it.',
  NOT_FOUND_IMAGE: 'An image record FileMaker marks `result = "Not found"` and that has no container.',
  MISSING_PATIENT: 'A patient-referrer link whose patient is empty or does not exist (the link needs both ends).',
  MISSING_REFERRER: 'A link whose referrer is empty or does not exist (the link needs both ends).',
  MISSING_COMPANY: 'A referrer-company link whose company is empty or does not exist (the link needs both ends).',
  EMPTY_CONTACT_DETAIL: 'A contact detail with no phone, email or address value.',
  NO_OWNER: 'A contact detail whose `id.key` is empty, so it belongs to nobody.',
  OWNER_NOT_FOUND: 'A contact detail whose `id.key` matches no patient, referrer or company.',
  SOURCE_DELETED:
    'A record in the manifest whose record id FileMaker says is missing when fetched (deleted during the run).',
  SOURCE_ID_CHANGED:
    'A record whose `id` was edited after the manifest was read; the next run imports it under its new id.',

  // Unlinked: the row is imported but a link could not be made (ledger state `unlinked`).
  NO_PATIENT: 'The patient foreign key is empty; the row is imported without a patient.',
  PATIENT_NOT_FOUND: 'The patient foreign key matches no patient; the row is imported without a patient.',
  CLINIC_NOT_FOUND: 'The clinic foreign key matches no clinic and there is no fallback; imported without a clinic.',

  // Findings: the row is imported, something about a value is worth reporting.
  NON_UUID_ID: 'An id or foreign key is not UUID-shaped; it is kept lower-cased and trimmed.',
  TEXT_SANITIZED: 'NUL/control characters were removed or lone surrogates replaced with U+FFFD.',
  TEXT_TRUNCATED: 'A text value was longer than its limit and was cut (the full value stays in filemaker_metadata).',
  METADATA_TRUNCATED: 'A raw value was longer than the filemaker_metadata limit and was cut there.',
  DATE_AMBIGUOUS: 'A date read either way (for example 05/06/2020); the US reading was taken.',
  DATE_IMPOSSIBLE: 'A date that is no calendar date (for example 02/30/2019) or outside 1800-2199; stored as null.',
  DATE_UNPARSEABLE: 'A date or timestamp in no known format; stored as null.',
  TIME_INVALID: 'A time in no known format; the timestamp it belongs to is stored as null.',
  START_TIME_MISSING: 'An appointment with a start date but no start time (and not all-day); start_at is null.',
  END_BEFORE_START: 'An appointment whose end is before its start; both are kept as the source has them.',
  INVALID_BOOLEAN: 'A flag field holding something other than a yes/no value; read as false.',
  UNKNOWN_STATUS: 'An appointment status outside the known list; mapped to scheduled.',
  UNKNOWN_GENDER: 'A gender value outside the known list; mapped to U.',
  UNKNOWN_ACTIVE_INDICATOR: 'A RECORD_ACTIVE_INDICATOR other than Active/Archived/empty; treated as active.',
  UNKNOWN_IMAGE_TYPE: 'An image `Type` the category table does not know; category `other`.',
  UNKNOWN_DETAIL_TYPE: 'A contact detail `type` outside Mobile/Phone/Email/Address; classified from its value.',
  NO_CLINIC: 'A patient or appointment with no clinic at all.',
  CLINIC_FROM_PATIENT: "An appointment's own clinic key was empty or unknown; the patient's clinic was used.",
  PATIENT_FROM_ALT_KEY: 'An image with an empty `id_Contact`; the patient was taken from `ID.KEY`.',
  NOTE_DATE_FROM_CREATION: 'A note without a usable `Date`; note_date is its creationTimestamp.',
  NO_NOTE_DATE: 'A note with neither a usable `Date` nor a creationTimestamp; note_date is null.',
  EMPTY_NAME: 'A required name is empty; stored as an empty string.',
  EXPORT_FILE_AMBIGUOUS: 'The export holds several files for one recid; one was chosen (image type, then size).',
  EXPORT_FILE_EMPTY: 'The export file for a recid is empty (0 bytes).',
  EXPORT_RECID_DUPLICATE: 'The export CSV lists the same recid more than once; the first row was used.',
  IMAGE_FALLBACK: 'A larger image container was broken; the next one in the waterfall was imported instead.',
  THUMBNAIL_UNSUPPORTED: 'The image format cannot be thumbnailed here (HEIC); the image is imported without one.',
  THUMBNAIL_FAILED: 'The image bytes could not be decoded for a thumbnail; the image is imported without one.',
  CONTENT_TYPE_SNIFFED: 'FileMaker sent a generic content type; the type was detected from the file bytes.',
  ZERO_BYTE_CONTAINER:
    'A container holds a file of 0 bytes: counted as empty, nothing stored (an image tries the next container).',
  CONTENT_TYPE_CORRECTED:
    'FileMaker declared a content type the file bytes contradict (a PDF as image/jpeg); the bytes decided the type.',
  WRITE_BACK_FAILED:
    'The file is stored, but writing NexusExportDate back to FileMaker failed (reported, not retried).',
} as const;

export type ReasonCode = keyof typeof REASON_CODES;

/** Every code, for checks and for reports that list zero counts too. */
export const REASON_CODE_LIST = Object.keys(REASON_CODES) as ReasonCode[];

export function isReasonCode(value: string): value is ReasonCode {
  return Object.prototype.hasOwnProperty.call(REASON_CODES, value);
}
