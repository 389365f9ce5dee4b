/**
 * The kept contact details (`contact_details`): upserted row by row as the phase maps them, read per owner table, and
 * the folded result written onto the owners (patients, referrers, companies).
 */
import type { FmRecord } from '../domain/types';
import { namedStatement, type Pool } from './db';

export type ContactOwnerTable = 'patients' | 'referrers' | 'companies';

/** Every kept detail of `owner`'s rows, grouped by owner id (details in FileMaker id order). */
export async function contactDetailsByOwner(
  pool: Pool,
  owner: ContactOwnerTable,
): Promise<Map<string, FmRecord['fieldData'][]>> {
  const rows = await pool.query<{ owner: string; field_data: FmRecord['fieldData'] }>(
    `select owner_filemaker_id as owner, field_data from contact_details where owner_table = $1
      order by owner_filemaker_id, filemaker_id`,
    [owner],
  );
  const byOwner = new Map<string, FmRecord['fieldData'][]>();
  for (const r of rows.rows) {
    const list = byOwner.get(r.owner) ?? [];
    list.push(r.field_data);
    byOwner.set(r.owner, list);
  }
  return byOwner;
}

export interface OwnerContacts {
  filemaker_id: string;
  contact_json: unknown;
  address_json: unknown;
}

/** Sets the owners' contact and address JSON in one statement; returns how many owner rows were updated. */
export async function setOwnerContacts(
  pool: Pool,
  owner: ContactOwnerTable,
  updates: readonly OwnerContacts[],
): Promise<number> {
  if (updates.length === 0) return 0;
  const r = await pool.query(
    `update public.${owner} t set contact_json = u.contact_json, address_json = u.address_json
       from jsonb_to_recordset($1::jsonb) as u(filemaker_id text, contact_json jsonb, address_json jsonb)
      where t.filemaker_id = u.filemaker_id`,
    [JSON.stringify(updates)],
  );
  return r.rowCount ?? 0;
}

const UPSERT_CONTACT_DETAILS = `insert into contact_details (id, filemaker_id, owner_table, owner_filemaker_id, entry,
                                               field_data, import_run_id)
 select e.id, e.filemaker_id, e.owner_table, e.owner_filemaker_id, e.entry, e.field_data, $1
   from jsonb_to_recordset($2::jsonb) as e(id uuid, filemaker_id text, owner_table text, owner_filemaker_id text,
        entry jsonb, field_data jsonb)
 on conflict (filemaker_id) do update set id = excluded.id, owner_table = excluded.owner_table,
   owner_filemaker_id = excluded.owner_filemaker_id, entry = excluded.entry, field_data = excluded.field_data,
   import_run_id = excluded.import_run_id`;

/**
 * Upserts cleaned contact detail rows (the run marks them), in one statement; with `ledger` (ledgerJson's entries of
 * these rows and the ledger insert that writes them, LEDGER_ALONGSIDE or its keyed form), their ledger entries are
 * written in the same statement, so a refused statement takes them along.
 */
export async function upsertContactDetailRows(
  pool: Pool,
  runId: string,
  rows: readonly unknown[],
  ledger?: { sourceTable: string; entries: string; text: string },
): Promise<void> {
  if (!ledger) {
    await pool.query(UPSERT_CONTACT_DETAILS, [runId, JSON.stringify(rows)]);
    return;
  }
  await pool.query({
    ...namedStatement(`with alongside as (${ledger.text}) ${UPSERT_CONTACT_DETAILS}`),
    values: [runId, JSON.stringify(rows), runId, ledger.sourceTable, ledger.entries],
  });
}
