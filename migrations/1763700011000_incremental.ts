/**
 * Incremental runs: a run that re-reads only what changed since the last completed run.
 * - `source_manifest.work_pos`: in an incremental run, the record's place in the run's work list (the records its
 *   chunks fetch), numbered from 0 in record id order; null for a record carried over unchanged, and in a full run
 *   (whose chunks are positions in the whole manifest).
 * - `import_ledger.carried_from`: for a record an incremental run left unchanged, the run whose import its rows are
 *   (its ledger entry is that run's, carried over); null for a record the run itself imported or failed.
 * - `reimport_runs.schema_version`: the schema a run wrote with; an incremental run needs the same as its base run's.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
alter table source_manifest add column work_pos integer;
create index source_manifest_work_idx on source_manifest (run_id, source_table, work_pos) where work_pos is not null;
alter table import_ledger add column carried_from text;
alter table reimport_runs add column schema_version text;
update schema_info set version = '1763700011000_incremental', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
alter table reimport_runs drop column schema_version;
alter table import_ledger drop column carried_from;
drop index source_manifest_work_idx;
alter table source_manifest drop column work_pos;
update schema_info set version = '1763700010000_manifest-slice-order', updated_at = now();
`);
};
