/**
 * Nothing vanishes unnoticed: a record the previous completed run imported and FileMaker no longer lists is kept here
 * — its last row as JSON and its file's key — never in the live tables. One row per record and the run it was first
 * missing from; a rollback of that run removes its rows again.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create table archived_records (
  source_table text not null,
  record_id text not null,
  filemaker_id text,
  target_table text,
  target_id uuid,
  row jsonb,
  s3_key text,
  last_imported_run_id text not null,
  missing_since_run_id text not null references reimport_runs (run_id) on delete cascade,
  archived_at timestamptz not null default now(),
  primary key (source_table, record_id, missing_since_run_id)
);
create index archived_records_filemaker_id_idx on archived_records (source_table, filemaker_id);
update schema_info set version = '1763700009000_archived-records', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop table archived_records;
update schema_info set version = '1763700008000_run-delta', updated_at = now();
`);
};
