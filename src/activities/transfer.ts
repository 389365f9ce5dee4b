/**
 * The FileMaker transfer quota as the files phases spend it (table `transfer_log`, its yearly sum `transfer_totals`).
 * A download reserves the size FileMaker announced before its bytes flow, in one statement that holds the year's
 * total row lock, so concurrent batches on any number of workers can never together pass the budget; it is settled
 * with the bytes really received, also when it broke (migration 1763700004000 has the SQL functions).
 * A reservation that was never settled (a worker killed mid-download) keeps counting what it reserved: a quota is
 * better over-counted than over-spent.
 */
import type { Pool } from '../store/db';

const USED_SQL = `select coalesce(sum(case when settled then bytes else greatest(bytes, reserved_bytes) end), 0)::text as b
                    from transfer_log where at >= date_trunc('year', now())`;

/** Bytes downloaded from FileMaker this calendar year by fm-reimport (settled, plus open reservations). */
export async function transferUsedThisYear(pool: Pool): Promise<number> {
  const r = await pool.query<{ b: string }>(USED_SQL);
  return Number(r.rows[0]?.b ?? 0);
}

export interface Reservation {
  readonly id: string;
  readonly bytes: number;
}

/** Reservation and settlement are group-committed with the other files in flight: see ./file-writes.ts. */
