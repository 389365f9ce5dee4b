/**
 * A chunk reads its slice of the run's manifest in record id order (shortest first, then by text: FileMaker's ROWIDs
 * in numeric order). Without an index in that order every chunk sorted the table's whole manifest (15,000 records for
 * appointments) to return its 500; with it, the slice is read from the index.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create index source_manifest_slice_idx on source_manifest (run_id, source_table, length(record_id), record_id);
update schema_info set version = '1763700010000_manifest-slice-order', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop index source_manifest_slice_idx;
update schema_info set version = '1763700009000_archived-records', updated_at = now();
`);
};
