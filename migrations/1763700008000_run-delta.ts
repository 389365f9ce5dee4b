/**
 * What changed since the last run, per source table: `run_delta_tables` holds the counts (added, changed, unchanged,
 * vanished) against the previous completed run that read the table, `run_delta` the records behind the counts other
 * than unchanged ones, by record id. Ids stay here, never in the workflow's payloads.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create table run_delta_tables (
  run_id text not null references reimport_runs (run_id) on delete cascade,
  source_table text not null,
  previous_run_id text,
  added integer not null,
  changed integer not null,
  unchanged integer not null,
  vanished integer not null,
  primary key (run_id, source_table),
  constraint run_delta_tables_counts_check check (least(added, changed, unchanged, vanished) >= 0)
);
create table run_delta (
  run_id text not null references reimport_runs (run_id) on delete cascade,
  source_table text not null,
  record_id text not null,
  filemaker_id text,
  change text not null,
  primary key (run_id, source_table, record_id),
  constraint run_delta_change_check check (change in ('added', 'changed', 'vanished'))
);
update schema_info set version = '1763700008000_run-delta', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop table run_delta;
drop table run_delta_tables;
update schema_info set version = '1763700007000_backup-retention', updated_at = now();
`);
};
