/**
 * What the files phases keep.
 *
 * `source_manifest.source_key`: a second key of a manifest entry when another source names records by it (the
 * FileMaker Pro image export names files `{recid}.{ext}`).
 *
 * `transfer_log`: the FileMaker transfer quota, counted where it is spent: one row per container download, reserved before the
 * bytes flow (with the size FileMaker announced) and settled with the bytes actually received — also when the
 * download broke half-way, because those bytes count against the licence too. Relinked files add nothing.
 * Rows are facts about the licence year: they outlive the run they belong to (no cascade).
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
alter table source_manifest add column source_key text;

create table transfer_log (
  id bigserial primary key,
  run_id text not null,
  source_table text not null,
  filemaker_id text not null,
  field text not null,
  reserved_bytes bigint not null,
  bytes bigint not null,
  settled boolean not null default false,
  at timestamptz not null default now(),
  constraint transfer_log_bytes_check check (bytes >= 0 and reserved_bytes >= 0)
);
create index transfer_log_at_idx on transfer_log (at);
create index transfer_log_run_idx on transfer_log (run_id);
update schema_info set version = '1763700003000_files-phases', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop table transfer_log;
alter table source_manifest drop column source_key;
update schema_info set version = '1763700002000_contact-details', updated_at = now();
`);
};
