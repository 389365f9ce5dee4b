/** Bulk upsert of mapped rows, turned into ledger entries (a row the database refuses is `failed` with its reason). */
import type { Pool } from '../store/db';
import { upsertRows, writeIsolatingRefusals } from '../store/upsert';
import { cleanDocument } from '../store/sanitize';
import { upsertContactDetailRows } from '../store/contact-details';
import type { TargetTable } from '../domain/tables';
import type { LedgerEntry } from './ledger';
import { targetId } from '../domain/ids';

export interface MappedRow {
  /** The manifest's record the row was mapped from (its ledger entry names it, so none is looked up by id). */
  recordId?: string;
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
      return {
        recordId: src.recordId,
        filemakerId: src.filemakerId,
        state: 'failed',
        reasonCode: o.reason,
        message: o.message,
      };
    }
    return {
      recordId: src.recordId,
      filemakerId: src.filemakerId,
      state: src.state,
      reasonCode: src.state === 'unlinked' ? src.reason : undefined,
      targetTable: target,
      targetId: o.id,
    };
  });
}

/**
 * Contact details are kept row by row (and folded into their owner's JSON when the owner's table is finished). Each
 * row is cleaned like a target row's JSON (NUL, lone surrogates), and a row the database still refuses is `failed`
 * with its reason while the others land.
 */
async function upsertContactDetails(pool: Pool, runId: string, rows: readonly MappedRow[]): Promise<LedgerEntry[]> {
  const outcomes: LedgerEntry[] = rows.map((r) => ({
    recordId: r.recordId,
    filemakerId: r.filemakerId,
    state: 'imported',
    targetTable: String(r.row.owner_table),
  }));
  const fail = (at: number, reason: string, message: string) => {
    outcomes[at] = {
      recordId: rows[at]!.recordId,
      filemakerId: rows[at]!.filemakerId,
      state: 'failed',
      reasonCode: reason,
      message,
    };
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
      await upsertContactDetailRows(
        pool,
        runId,
        batch.map((p) => p.row),
      );
    },
    (p, refusal) => fail(p.at, refusal.reason, refusal.message),
  );
  return outcomes;
}
