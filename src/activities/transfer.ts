/**
 * The FileMaker transfer quota as the files phases spend it (table `transfer_log`, its yearly sum `transfer_totals`).
 * A download reserves the size FileMaker announced before it reads more than its read-ahead (which its batch
 * reserved for it, see reserveReadAhead), in one statement that holds the year's total row lock, so concurrent
 * batches on any number of workers can never together pass the budget; it is settled with the bytes really received,
 * also when it broke (migration 1763700004000 has the SQL functions).
 * A reservation that was never settled (a worker killed mid-download) keeps counting what it reserved: a quota is
 * better over-counted than over-spent.
 */
import type { Pool } from '../store/db';

/** What the quota counts of `transfer_log` rows: the bytes of settled ones, at least the reservation of open ones. */
const USED = `coalesce(sum(case when settled then bytes else greatest(bytes, reserved_bytes) end), 0)::text as b`;

/** Bytes downloaded from FileMaker this calendar year by fm-reimport (settled, plus open reservations). */
export async function transferUsedThisYear(pool: Pool): Promise<number> {
  const r = await pool.query<{ b: string }>(`select ${USED} from transfer_log where at >= date_trunc('year', now())`);
  return Number(r.rows[0]?.b ?? 0);
}

/** What one run spent of the quota on one table, counted as the quota counts it (also attempts that broke off). */
export async function transferUsedByRun(pool: Pool, runId: string, table: string): Promise<number> {
  const r = await pool.query<{ b: string }>(
    `select ${USED} from transfer_log where run_id = $1 and source_table = $2`,
    [runId, table],
  );
  return Number(r.rows[0]?.b ?? 0);
}

export interface Reservation {
  readonly id: string;
  readonly bytes: number;
}

/** Reservation and settlement are group-committed with the other files in flight: see ./file-writes.ts. */
