/**
 * Contact details kept row by row: each API_Contact_Details record with its owner, so a detail is accounted for
 * on its own (ledger) and the owners' contact_json/address_json can be folded again from them on every run.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create table contact_details (
  id uuid primary key default gen_random_uuid(),
  filemaker_id text not null unique,
  owner_table text not null,
  owner_filemaker_id text not null,
  entry jsonb not null,
  field_data jsonb not null default '{}',
  import_run_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint contact_details_filemaker_id_lower check (filemaker_id = lower(filemaker_id)),
  constraint contact_details_owner_table_check check (owner_table in ('patients', 'referrers', 'companies'))
);
create index contact_details_owner_idx on contact_details (owner_table, owner_filemaker_id);
update schema_info set version = '1763700002000_contact-details', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop table contact_details;
update schema_info set version = '1763700001000_run-ledger', updated_at = now();
`);
};
