/**
 * Backups kept by a policy: who signed a run off and when (`signed_off_by`, `signed_off_at`, both or neither), and
 * when the retention policy dropped the run's backup (`backup_dropped_at`; a run without its backup cannot be rolled
 * back, and its S3 inventory goes with it).
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
alter table reimport_runs
  add column signed_off_by text,
  add column signed_off_at timestamptz,
  add column backup_dropped_at timestamptz,
  add constraint reimport_runs_signoff_check check ((signed_off_by is null) = (signed_off_at is null));
update schema_info set version = '1763700007000_backup-retention', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
alter table reimport_runs
  drop constraint reimport_runs_signoff_check,
  drop column signed_off_by,
  drop column signed_off_at,
  drop column backup_dropped_at;
update schema_info set version = '1763700006000_record-identity', updated_at = now();
`);
};
