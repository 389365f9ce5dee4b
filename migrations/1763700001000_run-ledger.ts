/**
 * Run bookkeeping (docs/target-schema.md, "Run bookkeeping"): the runs, the manifest of source ids that existed
 * when a phase began, the per-record ledger that proves what happened to each of them, and the S3 objects that
 * existed before a run (so a rollback removes exactly the ones the run created). Frozen once shipped.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create table reimport_runs (
  run_id text primary key,
  workflow_id text,
  options jsonb not null default '{}',
  status text not null default 'running',
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  summary jsonb,
  constraint reimport_runs_run_id_check check (run_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$'),
  constraint reimport_runs_status_check
    check (status in ('running', 'completed', 'failed', 'rolled_back', 'cancelled')),
  constraint reimport_runs_finished_check check ((status = 'running') = (finished_at is null))
);

create table source_manifest (
  run_id text not null references reimport_runs (run_id) on delete cascade,
  source_table text not null,
  filemaker_id text not null,
  record_id text,
  mod_id text,
  primary key (run_id, source_table, filemaker_id),
  constraint source_manifest_filemaker_id_lower check (filemaker_id = lower(filemaker_id) and filemaker_id <> '')
);

create table import_ledger (
  run_id text not null references reimport_runs (run_id) on delete cascade,
  source_table text not null,
  filemaker_id text not null,
  state text not null,
  reason_code text,
  message text,
  attempts integer not null default 1,
  target_table text,
  target_id uuid,
  s3_key text,
  bytes bigint,
  sha256 text,
  source_mod_id text,
  updated_at timestamptz not null default now(),
  primary key (run_id, source_table, filemaker_id),
  constraint import_ledger_filemaker_id_lower check (filemaker_id = lower(filemaker_id) and filemaker_id <> ''),
  constraint import_ledger_state_check check (state in ('pending', 'imported', 'unlinked', 'skipped', 'failed')),
  -- A record that did not simply land must say why, in a code reports can group by; a landed one has no reason.
  constraint import_ledger_reason_check check (
    case state
      when 'imported' then reason_code is null
      when 'pending' then reason_code is null or reason_code ~ '^[A-Z][A-Z0-9_]*$'
      else reason_code is not null and reason_code ~ '^[A-Z][A-Z0-9_]*$'
    end),
  constraint import_ledger_attempts_check check (attempts >= 0),
  constraint import_ledger_bytes_check check (bytes is null or bytes >= 0),
  constraint import_ledger_sha256_hex check (sha256 is null or sha256 ~ '^[0-9a-f]{64}$')
);
-- "Never download twice": the last recorded file of a FileMaker id across runs.
create index import_ledger_lookup_idx on import_ledger (source_table, filemaker_id, updated_at desc);
create index import_ledger_state_idx on import_ledger (run_id, source_table, state);

create table s3_inventory (
  run_id text not null references reimport_runs (run_id) on delete cascade,
  key text not null,
  size bigint not null,
  sha256 text,
  primary key (run_id, key),
  constraint s3_inventory_sha256_hex check (sha256 is null or sha256 ~ '^[0-9a-f]{64}$')
);

update schema_info set version = '1763700001000_run-ledger', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop table s3_inventory;
drop table import_ledger;
drop table source_manifest;
drop table reimport_runs;
update schema_info set version = '1763700000000_target-schema', updated_at = now();
`);
};
