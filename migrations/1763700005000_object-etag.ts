/**
 * `import_ledger.object_etag`: the ETag S3 reported for the row's object when its size and SHA-256 were confirmed
 * (the upload's checksum echo or a HEAD, or the HEAD of a relink). The files phase's reconciliation lists the bucket
 * and takes an object still there with that size and ETag as the one confirmed; any other object is HEADed again.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
alter table import_ledger add column object_etag text;
update schema_info set version = '1763700005000_object-etag', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
alter table import_ledger drop column object_etag;
update schema_info set version = '1763700004000_transfer-totals', updated_at = now();
`);
};
