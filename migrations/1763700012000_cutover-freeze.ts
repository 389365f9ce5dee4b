/**
 * What a cut-over read of the source to prove it frozen: per source table the record id (ROWID) and record version
 * (ROWMODID) of every record, with a digest over them, under the cut-over's id. Ids and versions only, never a field
 * value; later reads are compared with it (src/activities/cutover.ts). Not a run's manifest: no run owns it.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create table cutover_freeze_tables (
  cutover_id text not null,
  source_table text not null,
  records integer not null,
  digest text not null,
  read_at timestamptz not null default now(),
  primary key (cutover_id, source_table)
);
create table cutover_freeze_records (
  cutover_id text not null,
  source_table text not null,
  record_id text not null,
  mod_id text not null,
  primary key (cutover_id, source_table, record_id),
  foreign key (cutover_id, source_table) references cutover_freeze_tables (cutover_id, source_table) on delete cascade
);
update schema_info set version = '1763700012000_cutover-freeze', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop table cutover_freeze_records;
drop table cutover_freeze_tables;
update schema_info set version = '1763700011000_incremental', updated_at = now();
`);
};
