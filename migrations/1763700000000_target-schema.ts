/**
 * The Nexus-compatible target tables (docs/target-schema.md). Frozen once shipped: a change is a new migration,
 * because the engine's pre-flight compares the applied list with the one it was built with.
 *
 * Foreign keys are DEFERRABLE (INITIALLY IMMEDIATE) so a restore can load every table in one transaction in any
 * order with `SET CONSTRAINTS ALL DEFERRED`; normal writes still check them at once.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

// Every imported table: deterministic UUID key, the lowercase FileMaker id that makes a re-run an update, the raw
// source fields, and store-owned bookkeeping columns (left out of fingerprints).
const common = (table: string) => `
  id uuid primary key default gen_random_uuid(),
  filemaker_id text not null,
  filemaker_metadata jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  import_run_id text,
  constraint ${table}_filemaker_id_key unique (filemaker_id),
  constraint ${table}_filemaker_id_lower check (filemaker_id = lower(filemaker_id) and filemaker_id <> ''),
  constraint ${table}_filemaker_metadata_object check (jsonb_typeof(filemaker_metadata) = 'object')`;

const fk = (table: string, column: string, parent: string) =>
  `constraint ${table}_${column}_fkey foreign key (${column}) references ${parent} (id) deferrable initially immediate`;

const contactColumns = (table: string) => `
  contact_json jsonb not null default '{}',
  address_json jsonb not null default '[]',
  constraint ${table}_contact_json_object check (jsonb_typeof(contact_json) = 'object'),
  constraint ${table}_address_json_array check (jsonb_typeof(address_json) = 'array')`;

const sha256Check = (table: string) =>
  `constraint ${table}_sha256_hex check (sha256 is null or sha256 ~ '^[0-9a-f]{64}$')`;

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create table clinics (${common('clinics')},
  name text not null,
  sms_enabled boolean not null default false
);

create table companies (${common('companies')},
  name text not null,
  abn text,
  type text,${contactColumns('companies')}
);

create table referrers (${common('referrers')},
  title text,
  first_name text,
  last_name text,
  specialty text,
  practice text,
  is_active boolean not null default true,${contactColumns('referrers')}
);

create table patients (${common('patients')},
  first_name text,
  last_name text,
  middle_name text,
  title text,
  dob date,
  sex char(1) not null,
  health_number text,
  funding text,
  clinic_id uuid,
  ndis_plan_start date,
  ndis_plan_end date,
  ndis_coordinator_name text,
  ndis_coordinator_email text,${contactColumns('patients')},
  constraint patients_sex_check check (sex in ('M', 'F', 'O', 'U')),
  ${fk('patients', 'clinic_id', 'clinics')}
);
create index patients_clinic_id_idx on patients (clinic_id);

create table appointments (${common('appointments')},
  patient_id uuid,
  clinic_id uuid,
  clinician_filemaker_id text,
  start_at timestamptz,
  end_at timestamptz,
  all_day boolean not null default false,
  status text not null,
  type text,
  notes text,
  constraint appointments_status_check
    check (status in ('scheduled', 'checked_in', 'completed', 'cancelled', 'no_show')),
  ${fk('appointments', 'patient_id', 'patients')},
  ${fk('appointments', 'clinic_id', 'clinics')}
);
create index appointments_patient_id_idx on appointments (patient_id);
create index appointments_clinic_id_idx on appointments (clinic_id);

create table notes (${common('notes')},
  patient_id uuid,
  note_type text,
  content text not null,
  note_date timestamptz,
  author text,
  ${fk('notes', 'patient_id', 'patients')}
);
create index notes_patient_id_idx on notes (patient_id);

create table sms_messages (${common('sms_messages')},
  patient_id uuid,
  phone text,
  message text not null,
  status text,
  sent_at timestamptz,
  ${fk('sms_messages', 'patient_id', 'patients')}
);
create index sms_messages_patient_id_idx on sms_messages (patient_id);

create table patient_referrers (${common('patient_referrers')},
  patient_id uuid not null,
  referrer_id uuid not null,
  referral_date date,
  reason text,
  status text,
  ${fk('patient_referrers', 'patient_id', 'patients')},
  ${fk('patient_referrers', 'referrer_id', 'referrers')}
);
create index patient_referrers_patient_id_idx on patient_referrers (patient_id);
create index patient_referrers_referrer_id_idx on patient_referrers (referrer_id);

create table referrer_companies (${common('referrer_companies')},
  referrer_id uuid not null,
  company_id uuid not null,
  position text,
  is_primary boolean not null default false,
  ${fk('referrer_companies', 'referrer_id', 'referrers')},
  ${fk('referrer_companies', 'company_id', 'companies')}
);
create index referrer_companies_referrer_id_idx on referrer_companies (referrer_id);
create index referrer_companies_company_id_idx on referrer_companies (company_id);

-- Documents link to their owner the Nexus way (generic content_type + object_id), so there is no foreign key.
create table documents (${common('documents')},
  content_type text,
  object_id uuid,
  s3_bucket text,
  s3_key text,
  original_name text,
  mime_type text,
  file_size bigint,
  sha256 text,
  category text,
  document_date date,
  import_status text not null,
  import_error text,
  constraint documents_owner_check check (
    (content_type is null and object_id is null) or (content_type = 'patient' and object_id is not null)),
  constraint documents_import_status_check check (import_status in ('imported', 'unlinked', 'skipped', 'failed')),
  constraint documents_file_size_check check (file_size is null or file_size >= 0),
  ${sha256Check('documents')}
);
create index documents_owner_idx on documents (content_type, object_id);

-- filemaker_id here is the batch key {patient_id|unlinked}/{yyyy-mm-dd|undated}.
create table image_batches (${common('image_batches')},
  patient_id uuid,
  batch_date date,
  name text not null,
  ${fk('image_batches', 'patient_id', 'patients')}
);
create index image_batches_patient_id_idx on image_batches (patient_id);

create table images (${common('images')},
  batch_id uuid not null,
  s3_key text,
  thumbnail_key text,
  original_name text,
  mime_type text,
  file_size bigint,
  sha256 text,
  width integer,
  height integer,
  category text,
  caption text,
  date_taken date,
  source_field text,
  thumbnail_status text,
  constraint images_thumbnail_status_check
    check (thumbnail_status is null or thumbnail_status in ('created', 'unsupported_format', 'failed')),
  constraint images_file_size_check check (file_size is null or file_size >= 0),
  constraint images_dimensions_check check ((width is null or width > 0) and (height is null or height > 0)),
  ${sha256Check('images')},
  ${fk('images', 'batch_id', 'image_batches')}
);
create index images_batch_id_idx on images (batch_id);

-- The version the engine checks in pre-flight; pgmigrations stays the source of truth (see src/store/migrate.ts).
create table schema_info (
  singleton boolean primary key default true check (singleton),
  version text not null,
  updated_at timestamptz not null default now()
);
insert into schema_info (version) values ('1763700000000_target-schema');
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop table schema_info;
drop table images;
drop table image_batches;
drop table documents;
drop table referrer_companies;
drop table patient_referrers;
drop table sms_messages;
drop table notes;
drop table appointments;
drop table patients;
drop table referrers;
drop table companies;
drop table clinics;
`);
};
