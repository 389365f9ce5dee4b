/**
 * Shapes shared by the mappers: the FileMaker record as the Data API returns it, the lookups a mapper may use, and
 * the outcome every mapper returns. A mapper never throws for bad data: it returns an `error` outcome, so one bad
 * record in a batch of 1,000 costs that record, not the batch.
 */
import { type ReasonCode } from './reasons';

/** A field value as the Data API gives it: text, a JSON number, `""` for empty (OData's null is read as `""`). */
export type FmFieldValue = string | number;

export interface FmRecord {
  readonly recordId: string;
  readonly modId: string;
  readonly fieldData: Readonly<Record<string, FmFieldValue>>;
  readonly portalData?: Readonly<Record<string, readonly unknown[]>>;
}

/** A patient as other mappers see it: its target id and its clinic's target id. */
export interface PatientRef {
  readonly id: string;
  readonly clinicId: string | null;
}

/**
 * Lookups from a normalised FileMaker id (lower-case, trimmed; see `normalizeFileMakerId`) to a target id. Each
 * answers only for rows that exist (or will exist in this run), so "not found" means the source points nowhere.
 * `createMapContext` builds one from id sets.
 */
export interface MapContext {
  /** IANA zone of the clinic's wall clock (Australia/Sydney). */
  readonly timeZone: string;
  /** Read ambiguous dates day-first instead of FileMaker's US default (still flagged DATE_AMBIGUOUS). */
  readonly preferDayFirst?: boolean;
  patientId(fmId: string): PatientRef | undefined;
  clinicId(fmId: string): string | undefined;
  referrerId(fmId: string): string | undefined;
  companyId(fmId: string): string | undefined;
  /** Optional fallback for patients whose `id_Clinic` is empty but `Clinic_Name` is set (matched case-insensitively). */
  clinicIdByName?(name: string): string | undefined;
  /** Contact details (API_Contact_Details records) whose `id.key` is this owner; folded into contact/address JSON. */
  contactDetailsFor?(ownerFmId: string): readonly FmRecord[];
}

/** A data-quality note on a row that was still produced. `field` is a field NAME, never a value. */
export interface Finding {
  readonly code: ReasonCode;
  readonly field?: string;
}

/** Columns every imported row has (`created_at`, `updated_at`, `import_run_id` are the store's). */
export interface BaseRow {
  /** Deterministic UUIDv5 (`targetId`). */
  readonly id: string;
  /** Lower-case FileMaker id. */
  readonly filemaker_id: string;
  /** The source fieldData after NUL/UTF-8 sanitising; container URLs replaced by a marker (they expire). */
  readonly filemaker_metadata: Readonly<Record<string, FmFieldValue>>;
}

export type RowState = 'imported' | 'unlinked';

export type MapOutcome<Row> =
  | {
      readonly kind: 'row';
      readonly row: Row;
      readonly state: RowState;
      /** Set when `state` is `unlinked` (NO_PATIENT, PATIENT_NOT_FOUND, CLINIC_NOT_FOUND). */
      readonly reason?: ReasonCode;
      readonly findings: readonly Finding[];
    }
  | {
      readonly kind: 'skip';
      readonly reason: ReasonCode;
      /** Ids and field names only, never values. */
      readonly message: string;
      /** Documents keep a row for skipped records (import_status 'skipped'); other tables leave this unset. */
      readonly row?: Row;
      readonly findings?: readonly Finding[];
    }
  | { readonly kind: 'error'; readonly reason: ReasonCode; readonly message: string };

/** The JSON kept in `contact_json`. */
export interface ContactJson {
  phones: { label: string; number: string; kind: 'mobile' | 'phone' }[];
  emails: { label: string; address: string }[];
}

/** One entry of `address_json`. */
export interface AddressEntry {
  label: string;
  line1: string;
  line2: string;
  suburb: string;
  state: string;
  postcode: string;
  country: string;
}
