/** Bulk upsert of mapped rows, turned into ledger entries (a row the database refuses is `failed` with its reason). */
import type { Pool } from '../store/db';
import { upsertRows, writeIsolatingRefusals } from '../store/upsert';
import { cleanDocument } from '../store/sanitize';
import type { TargetTable } from '../domain/tables';
import type { LedgerEntry } from './ledger';
import { targetId } from '../domain/ids';

export interface MappedRow {
  filemakerId: string;
  row: Record<string, unknown>;
  state: 'imported' | 'unlinked';
  reason?: string;
}

export async function upsertTargetRows(
  pool: Pool,
  target: TargetTable | 'contact_details',
  runId: string,
  rows: readonly MappedRow[],
): Promise<LedgerEntry[]> {
  if (rows.length === 0) return [];
  if (target === 'contact_details') return upsertContactDetails(pool, runId, rows);
  const result = await upsertRows(
    pool,
    target,
    rows.map((r) => r.row),
    { runId },
  );
  return result.outcomes.map((o, i) => {
    const src = rows[i]!;
    if (o.status === 'failed') {
      return { filemakerId: src.filemakerId, state: 'failed', reasonCode: o.reason, message: o.message };
    }
    return {
      filemakerId: src.filemakerId,
      state: src.state,
      reasonCode: src.state === 'unlinked' ? src.reason : undefined,
      targetTable: target,
      targetId: o.id,
    };
  });
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
 * Contact details are kept row by row (and folded into their owner's JSON when the owner's table is finished). Each
 * row is cleaned like a target row's JSON (NUL, lone surrogates), and a row the database still refuses is `failed`
 * with its reason while the others land.
 */
async function upsertContactDetails(pool: Pool, runId: string, rows: readonly MappedRow[]): Promise<LedgerEntry[]> {
  const outcomes: LedgerEntry[] = rows.map((r) => ({
    filemakerId: r.filemakerId,
    state: 'imported',
    targetTable: String(r.row.owner_table),
  }));
  const fail = (at: number, reason: string, message: string) => {
    outcomes[at] = { filemakerId: rows[at]!.filemakerId, state: 'failed', reasonCode: reason, message };
  };
  const payload: { at: number; row: unknown }[] = [];
  rows.forEach((r, at) => {
    const cleaned = cleanDocument(
      {
        // A stable key (like the target tables'): a re-run updates the same row, and the snapshot fingerprint holds.
        id: targetId('contact_details', r.filemakerId),
        filemaker_id: r.filemakerId,
        owner_table: r.row.owner_table,
        owner_filemaker_id: r.row.owner_filemaker_id,
        entry: r.row.entry,
        field_data: r.row.field_data ?? {},
      },
      'contact_details',
    );
    if (cleaned.ok) payload.push({ at, row: cleaned.value });
    else fail(at, cleaned.reason, cleaned.message);
  });
  await writeIsolatingRefusals(
    payload,
    async (batch) => {
      await pool.query(UPSERT_CONTACT_DETAILS, [runId, JSON.stringify(batch.map((p) => p.row))]);
    },
    (p, refusal) => fail(p.at, refusal.reason, refusal.message),
  );
  return outcomes;
}
