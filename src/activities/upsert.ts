/** Bulk upsert of mapped rows, turned into ledger entries (a row the database refuses is `failed` with its reason). */
import type { Pool } from '../store/db';
import { upsertRows, writeIsolatingRefusals } from '../store/upsert';
import { cleanDocument } from '../store/sanitize';
import { upsertContactDetailRows } from '../store/contact-details';
import { LEDGER_ALONGSIDE, LEDGER_ALONGSIDE_KEYED, ledgerJson } from '../store/ledger';
import type { TargetTable } from '../domain/tables';
import type { LedgerEntry } from './outcomes';
import { targetId } from '../domain/ids';

export interface MappedRow {
  /** The manifest's record the row was mapped from (its ledger entry names it, so none is looked up by id). */
  recordId?: string;
  filemakerId: string;
  row: Record<string, unknown>;
  state: 'imported' | 'unlinked';
  reason?: string;
  /** The record version the row was mapped from (an incremental run compares the next one with it). */
  sourceModId?: string;
}

/** The ledger entry of a row that lands (`target`'s own id for it, when the target keys rows by one). */
function landedEntry(r: MappedRow, targetTable: string, targetId?: string): LedgerEntry {
  return {
    recordId: r.recordId,
    filemakerId: r.filemakerId,
    state: r.state,
    reasonCode: r.state === 'unlinked' ? r.reason : undefined,
    targetTable,
    targetId,
    sourceModId: r.sourceModId,
  };
}

/**
 * Upserts the rows and returns their ledger entries. With `sourceTable`, the entry of every row that lands is written
 * in the same statement as the row (see upsertRows' `alongside`) and comes back `recorded`: one round trip per chunk
 * less, and a row the database refuses takes its entry along (its `failed` entry is left to the caller to write).
 */
export async function upsertTargetRows(
  pool: Pool,
  target: TargetTable | 'contact_details',
  runId: string,
  rows: readonly MappedRow[],
  sourceTable?: string,
): Promise<LedgerEntry[]> {
  if (rows.length === 0) return [];
  const ledger =
    sourceTable === undefined
      ? undefined
      : {
          sourceTable,
          // Entries that all name their manifest record skip the join that would find it (see ledgerInsert).
          text: rows.every((r) => r.recordId !== undefined) ? LEDGER_ALONGSIDE_KEYED : LEDGER_ALONGSIDE,
        };
  if (target === 'contact_details') return upsertContactDetails(pool, runId, rows, ledger);
  const result = await upsertRows(
    pool,
    target,
    rows.map((r) => r.row),
    {
      runId,
      alongside:
        ledger === undefined
          ? undefined
          : {
              text: ledger.text,
              values: (at) => [
                runId,
                ledger.sourceTable,
                ledgerJson(at.map((i) => landedEntry(rows[i]!, target, String(rows[i]!.row.id)))),
              ],
            },
    },
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
    return { ...landedEntry(src, target, o.id), recorded: ledger !== undefined };
  });
}

/**
 * Contact details are kept row by row (and folded into their owner's JSON when the owner's table is finished). Each
 * row is cleaned like a target row's JSON (NUL, lone surrogates), and a row the database still refuses is `failed`
 * with its reason while the others land.
 */
async function upsertContactDetails(
  pool: Pool,
  runId: string,
  rows: readonly MappedRow[],
  ledger?: { sourceTable: string; text: string },
): Promise<LedgerEntry[]> {
  const landed = (r: MappedRow): LedgerEntry => ({
    recordId: r.recordId,
    filemakerId: r.filemakerId,
    state: 'imported',
    targetTable: String(r.row.owner_table),
    sourceModId: r.sourceModId,
  });
  const outcomes: LedgerEntry[] = rows.map((r) => ({ ...landed(r), recorded: ledger !== undefined }));
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
        ledger && { ...ledger, entries: ledgerJson(batch.map((p) => landed(rows[p.at]!))) },
      );
    },
    (p, refusal) => fail(p.at, refusal.reason, refusal.message),
  );
  return outcomes;
}
