/**
 * The target tables as the store sees them: column names and types from docs/target-schema.md (the migrations are
 * the DDL; test/store/migrate.test.ts checks this catalogue against the migrated database, so the two cannot
 * drift). The upsert validates and casts rows with it; backup and delete walk the tables in its order.
 */
import { TARGET_TABLES, type TargetTable } from '../domain/tables';

export type ColumnType =
  'uuid' | 'text' | 'char1' | 'boolean' | 'date' | 'timestamptz' | 'integer' | 'bigint' | 'jsonb';

export interface ColumnSpec {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
  /** Value used when a row leaves the column out (mirrors the DDL default). */
  readonly default?: unknown;
  /** Allowed values (mirrors a check constraint), so a bad value is rejected with a reason before the database. */
  readonly oneOf?: readonly string[];
  /** Longest accepted text in characters (code points); longer values are rejected, never silently cut here. */
  readonly maxLength?: number;
}

export interface TableSpec {
  readonly name: TargetTableName;
  /** Columns a mapper row carries (id, filemaker_id, filemaker_metadata and the table's own). */
  readonly columns: readonly ColumnSpec[];
}

/** Target tables in creation order (parents first); deletes and restores walk it backwards / forwards. */
export const TARGET_TABLE_NAMES = TARGET_TABLES;
export type TargetTableName = TargetTable;

/** Columns the store owns: set by the database or by the upsert, excluded from fingerprints. */
export const STORE_OWNED_COLUMNS = ['created_at', 'updated_at', 'import_run_id'] as const;

// Limits stop hostile values, not real ones: the mappers cut names at 1,000 and clinical text at 10,000,000 code
// points (src/domain/normalize.ts); a FileMaker id is a UUID or a short batch key and must fit a btree entry.
export const FILEMAKER_ID_MAX = 200;
const SHORT = 10_000;
const LONG = 10_000_000;

const t = (name: string, maxLength = SHORT): ColumnSpec => ({ name, type: 'text', nullable: true, maxLength });
const tReq = (name: string, maxLength = SHORT): ColumnSpec => ({ name, type: 'text', nullable: false, maxLength });
const uuid = (name: string, nullable = true): ColumnSpec => ({ name, type: 'uuid', nullable });
const date = (name: string): ColumnSpec => ({ name, type: 'date', nullable: true });
const ts = (name: string): ColumnSpec => ({ name, type: 'timestamptz', nullable: true });
const bool = (name: string, dflt: boolean): ColumnSpec => ({ name, type: 'boolean', nullable: false, default: dflt });
const jsonObj = (name: string, dflt: unknown): ColumnSpec => ({ name, type: 'jsonb', nullable: false, default: dflt });
const big = (name: string): ColumnSpec => ({ name, type: 'bigint', nullable: true });
const int = (name: string): ColumnSpec => ({ name, type: 'integer', nullable: true });
const sha = (name: string): ColumnSpec => ({ name, type: 'text', nullable: true, maxLength: 64 });

const COMMON: readonly ColumnSpec[] = [
  uuid('id', false),
  { name: 'filemaker_id', type: 'text', nullable: false, maxLength: FILEMAKER_ID_MAX },
  { name: 'filemaker_metadata', type: 'jsonb', nullable: false },
];
const CONTACT: readonly ColumnSpec[] = [jsonObj('contact_json', {}), jsonObj('address_json', [])];

const table = (name: TargetTableName, columns: readonly ColumnSpec[]): TableSpec => ({
  name,
  columns: [...COMMON, ...columns],
});

export const TABLE_SPECS: Readonly<Record<TargetTableName, TableSpec>> = {
  clinics: table('clinics', [tReq('name'), bool('sms_enabled', false)]),
  companies: table('companies', [tReq('name'), t('abn'), t('type'), ...CONTACT]),
  referrers: table('referrers', [
    t('title'),
    t('first_name'),
    t('last_name'),
    t('specialty'),
    t('practice'),
    bool('is_active', true),
    ...CONTACT,
  ]),
  patients: table('patients', [
    t('first_name'),
    t('last_name'),
    t('middle_name'),
    t('title'),
    date('dob'),
    { name: 'sex', type: 'char1', nullable: false, oneOf: ['M', 'F', 'O', 'U'] },
    t('health_number'),
    t('funding'),
    uuid('clinic_id'),
    date('ndis_plan_start'),
    date('ndis_plan_end'),
    t('ndis_coordinator_name'),
    t('ndis_coordinator_email'),
    ...CONTACT,
  ]),
  appointments: table('appointments', [
    uuid('patient_id'),
    uuid('clinic_id'),
    t('clinician_filemaker_id'),
    ts('start_at'),
    ts('end_at'),
    bool('all_day', false),
    {
      name: 'status',
      type: 'text',
      nullable: false,
      oneOf: ['scheduled', 'checked_in', 'completed', 'cancelled', 'no_show'],
    },
    t('type'),
    t('notes', LONG),
  ]),
  notes: table('notes', [uuid('patient_id'), t('note_type'), tReq('content', LONG), ts('note_date'), t('author')]),
  sms_messages: table('sms_messages', [
    uuid('patient_id'),
    t('phone'),
    tReq('message', LONG),
    t('status'),
    ts('sent_at'),
  ]),
  patient_referrers: table('patient_referrers', [
    uuid('patient_id', false),
    uuid('referrer_id', false),
    date('referral_date'),
    t('reason'),
    t('status'),
  ]),
  referrer_companies: table('referrer_companies', [
    uuid('referrer_id', false),
    uuid('company_id', false),
    t('position'),
    bool('is_primary', false),
  ]),
  documents: table('documents', [
    { name: 'content_type', type: 'text', nullable: true, oneOf: ['patient'] },
    uuid('object_id'),
    t('s3_bucket'),
    t('s3_key'),
    t('original_name'),
    t('mime_type'),
    big('file_size'),
    sha('sha256'),
    t('category'),
    date('document_date'),
    { name: 'import_status', type: 'text', nullable: false, oneOf: ['imported', 'unlinked', 'skipped', 'failed'] },
    t('import_error'),
  ]),
  image_batches: table('image_batches', [uuid('patient_id'), date('batch_date'), tReq('name')]),
  images: table('images', [
    uuid('batch_id', false),
    t('s3_key'),
    t('thumbnail_key'),
    t('original_name'),
    t('mime_type'),
    big('file_size'),
    sha('sha256'),
    int('width'),
    int('height'),
    t('category'),
    t('caption'),
    date('date_taken'),
    t('source_field'),
    { name: 'thumbnail_status', type: 'text', nullable: true, oneOf: ['created', 'unsupported_format', 'failed'] },
  ]),
};

export function isTargetTable(name: string): name is TargetTableName {
  return (TARGET_TABLE_NAMES as readonly string[]).includes(name);
}

/** Quotes an identifier that comes from this catalogue (never from input). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
