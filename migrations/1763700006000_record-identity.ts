/**
 * Identity by FileMaker's record id. A run's manifest and ledger hold one row per source *record* — its Data API
 * `recordId`, which is OData's `ROWID` — and the `id` field becomes data about it: null when the record has none, and
 * shared by several records when the clinic's file has the same id twice. `source_manifest.id_issue` says why a
 * record's id cannot key a row (`MISSING_ID`, `DUPLICATE_ID`); among the others an id names exactly one record.
 *
 * Rows written before this migration have no record id when their server gave none; they keep `id:` and their id.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
update source_manifest set record_id = 'id:' || filemaker_id where record_id is null;
alter table source_manifest drop constraint source_manifest_pkey;
alter table source_manifest
  add column id_issue text,
  alter column record_id set not null,
  alter column filemaker_id drop not null,
  add primary key (run_id, source_table, record_id),
  drop constraint source_manifest_filemaker_id_lower,
  add constraint source_manifest_filemaker_id_lower
    check (filemaker_id is null or (filemaker_id = lower(filemaker_id) and filemaker_id <> '')),
  add constraint source_manifest_id_issue_check check (
    case id_issue
      when 'MISSING_ID' then filemaker_id is null
      when 'DUPLICATE_ID' then filemaker_id is not null
      else id_issue is null and filemaker_id is not null
    end);
create unique index source_manifest_id_idx on source_manifest (run_id, source_table, filemaker_id)
  where id_issue is null;
create index source_manifest_duplicates_idx on source_manifest (run_id, source_table, filemaker_id)
  where id_issue = 'DUPLICATE_ID';

alter table import_ledger add column record_id text;
update import_ledger l set record_id = m.record_id
  from source_manifest m
 where m.run_id = l.run_id and m.source_table = l.source_table and m.filemaker_id = l.filemaker_id;
update import_ledger set record_id = 'id:' || filemaker_id where record_id is null;
alter table import_ledger drop constraint import_ledger_pkey;
alter table import_ledger
  alter column record_id set not null,
  alter column filemaker_id drop not null,
  add primary key (run_id, source_table, record_id),
  drop constraint import_ledger_filemaker_id_lower,
  add constraint import_ledger_filemaker_id_lower
    check (filemaker_id is null or (filemaker_id = lower(filemaker_id) and filemaker_id <> ''));
update schema_info set version = '1763700006000_record-identity', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
delete from import_ledger where filemaker_id is null;
delete from import_ledger l where exists (
  select 1 from source_manifest m where m.run_id = l.run_id and m.source_table = l.source_table
     and m.record_id = l.record_id and m.id_issue = 'DUPLICATE_ID');
alter table import_ledger drop constraint import_ledger_pkey;
alter table import_ledger
  drop column record_id,
  alter column filemaker_id set not null,
  add primary key (run_id, source_table, filemaker_id),
  drop constraint import_ledger_filemaker_id_lower,
  add constraint import_ledger_filemaker_id_lower check (filemaker_id = lower(filemaker_id) and filemaker_id <> '');
delete from source_manifest where id_issue is not null;
drop index source_manifest_id_idx;
drop index source_manifest_duplicates_idx;
alter table source_manifest drop constraint source_manifest_pkey;
alter table source_manifest
  drop constraint source_manifest_id_issue_check,
  drop column id_issue,
  alter column filemaker_id set not null,
  alter column record_id drop not null,
  add primary key (run_id, source_table, filemaker_id),
  drop constraint source_manifest_filemaker_id_lower,
  add constraint source_manifest_filemaker_id_lower check (filemaker_id = lower(filemaker_id) and filemaker_id <> '');
update schema_info set version = '1763700005000_object-etag', updated_at = now();
`);
};
