/**
 * The transfer quota in one round trip and constant time per download.
 *
 * `transfer_totals`: per licence year, the bytes `transfer_log` counts (settled rows their bytes, unsettled ones the
 * larger of bytes and reservation). Kept by the two functions below in the same transaction as the log row, so it
 * always equals the sum over the log; it is seeded from the log the first time a year is touched.
 *
 * `reserve_transfer`: reserves a download's announced size if the year's total stays within the limit. The row lock
 * of the year's total serializes reservations (an UPDATE re-checks its condition on the newest row after waiting),
 * replacing the advisory lock and the sum over the whole year's log that every reservation used to run. Returns the
 * log row's id, or null when the limit would be passed.
 *
 * `settle_transfer`: records the bytes actually received (also of a broken download) and moves the total by the
 * difference to the reservation. Settling twice changes nothing.
 */
import type { MigrationBuilder } from 'node-pg-migrate/dist/bundle/index';

export const up = (pgm: MigrationBuilder): void => {
  pgm.sql(`
create table transfer_totals (
  year int primary key,
  bytes bigint not null,
  constraint transfer_totals_bytes_check check (bytes >= 0)
);

-- Seeds a year's total from the log, once: the sum runs only when the row is missing.
create function transfer_year_total(p_year int) returns void language plpgsql as $$
begin
  if not exists (select 1 from transfer_totals where year = p_year) then
    insert into transfer_totals (year, bytes)
    select p_year, coalesce(sum(case when settled then bytes else greatest(bytes, reserved_bytes) end), 0)
      from transfer_log where extract(year from at)::int = p_year
    on conflict (year) do nothing;
  end if;
end $$;

create function reserve_transfer(p_run text, p_table text, p_id text, p_field text, p_bytes bigint, p_limit bigint)
returns bigint language plpgsql as $$
declare
  y int := extract(year from now())::int;
  rid bigint;
begin
  perform transfer_year_total(y);
  update transfer_totals set bytes = bytes + p_bytes where year = y and bytes + p_bytes <= p_limit;
  if not found then
    return null;
  end if;
  insert into transfer_log (run_id, source_table, filemaker_id, field, reserved_bytes, bytes)
  values (p_run, p_table, p_id, p_field, p_bytes, 0)
  returning id into rid;
  return rid;
end $$;

create function settle_transfer(p_id bigint, p_bytes bigint) returns void language plpgsql as $$
declare
  reserved bigint;
  y int;
begin
  update transfer_log set bytes = p_bytes, settled = true
   where id = p_id and not settled
  returning reserved_bytes, extract(year from at)::int into reserved, y;
  if found then
    perform transfer_year_total(y);
    update transfer_totals set bytes = bytes + p_bytes - reserved where year = y;
  end if;
end $$;

update schema_info set version = '1763700004000_transfer-totals', updated_at = now();
`);
};

export const down = (pgm: MigrationBuilder): void => {
  pgm.sql(`
drop function settle_transfer(bigint, bigint);
drop function reserve_transfer(text, text, text, text, bigint, bigint);
drop function transfer_year_total(int);
drop table transfer_totals;
update schema_info set version = '1763700003000_files-phases', updated_at = now();
`);
};
