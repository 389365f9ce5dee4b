/**
 * The run ledger as the activities count it: a chunk's counts, the entries of records whose id cannot key a row, and
 * ledger writes counted into a chunk (the statements are in src/store/ledger.ts). Keyed by FileMaker's record id: see
 * src/domain/manifest.ts.
 */
import type { Pool } from '../store/db';
import { writeLedger, type LedgerEntry } from '../store/ledger';
import type { SliceEntry } from '../store/manifest';
import type { ChunkResult } from './types';

export type { LedgerEntry } from '../store/ledger';

/**
 * Failed ids a chunk's result carries per reason: the result is an event of the workflow's history, so it stays
 * small. The phase merges them into its report, which keeps more per reason (FAILED_IDS_PER_REASON in
 * src/workflows/progress.ts); the ledger holds them all.
 */
const FAILED_IDS_PER_CHUNK = 5;

export { emptyChunkResult } from './types';

/** Records named in one message at most; the rest are counted. */
const SHARING_NAMED = 10;

/**
 * Splits a slice: the ledger entries of records whose id cannot key a row (failed with their reason, nothing
 * fetched), and the others with their ids, each id naming one record.
 */
export function splitIdIssues(
  table: string,
  slice: readonly SliceEntry[],
): { failed: LedgerEntry[]; keyed: { recordId: string; id: string }[] } {
  const failed: LedgerEntry[] = [];
  const keyed: { recordId: string; id: string }[] = [];
  for (const e of slice) {
    if (e.idIssue === 'MISSING_ID') {
      failed.push({
        recordId: e.recordId,
        filemakerId: null,
        state: 'failed',
        reasonCode: 'MISSING_ID',
        message: `${table} record ${e.recordId} has an empty id`,
      });
    } else if (e.idIssue === 'DUPLICATE_ID') {
      const all = e.sharing ?? [e.recordId];
      const named = all.slice(0, SHARING_NAMED).join(', ');
      const more = all.length > SHARING_NAMED ? ` and ${all.length - SHARING_NAMED} more` : '';
      failed.push({
        recordId: e.recordId,
        filemakerId: e.filemakerId,
        state: 'failed',
        reasonCode: 'DUPLICATE_ID',
        message: `${table} records ${named}${more} share one id; none of them is imported`,
      });
    } else if (e.filemakerId !== null) keyed.push({ recordId: e.recordId, id: e.filemakerId });
  }
  return { failed, keyed };
}

/**
 * Writes every entry's terminal state (attempts counted) but those already `recorded` along their row, and adds them
 * all to the chunk's counts.
 */
export async function recordLedger(
  pool: Pool,
  runId: string,
  table: string,
  entries: readonly LedgerEntry[],
  into: ChunkResult,
): Promise<void> {
  const unwritten = entries.filter((e) => e.recorded !== true);
  if (unwritten.length > 0) await writeLedger(pool, runId, table, unwritten);
  countLedger(entries, into);
}

/** Adds entries' states, reasons and failed ids to a chunk's counts (without writing them). */
export function countLedger(entries: readonly LedgerEntry[], into: ChunkResult): void {
  for (const e of entries) {
    into.byState[e.state]++;
    if (e.reasonCode && e.state !== 'imported') {
      into.byReason[e.reasonCode] = (into.byReason[e.reasonCode] ?? 0) + 1;
      if (e.state === 'failed') {
        const list = (into.failedIds[e.reasonCode] ??= []);
        if (list.length < FAILED_IDS_PER_CHUNK) list.push(e.filemakerId ?? `record ${e.recordId ?? '?'}`);
      }
    }
  }
}
