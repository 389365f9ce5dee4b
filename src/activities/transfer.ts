/**
 * The FileMaker transfer quota as the files phases spend it (table `transfer_log`, its yearly sum `transfer_totals`).
 * A download reserves the size FileMaker announced before its bytes flow, in one statement that holds the year's
 * total row lock, so concurrent batches on any number of workers can never together pass the budget; it is settled
 * with the bytes really received, also when it broke (migration 1763700004000 has the SQL functions).
 * A reservation that was never settled (a worker killed mid-download) keeps counting what it reserved: a quota is
 * better over-counted than over-spent.
 */
import { TransferQuotaError } from '../errors';
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

/**
 * Reserves `bytes` for one download, or throws TransferQuotaError when the year's use plus `bytes` would pass
 * `budgetBytes`. `usedOutsideBytes` is what the licence year used before fm-reimport counted (configuration).
 */
export async function reserveTransfer(
  pool: Pool,
  opts: {
    runId: string;
    table: string;
    filemakerId: string;
    field: string;
    bytes: number;
    budgetBytes: number;
    usedOutsideBytes: number;
  },
): Promise<Reservation> {
  const limit = opts.budgetBytes - opts.usedOutsideBytes;
  const r = await pool.query<{ id: string | null }>('select reserve_transfer($1, $2, $3, $4, $5, $6)::text as id', [
    opts.runId,
    opts.table,
    opts.filemakerId,
    opts.field,
    opts.bytes,
    Math.max(0, limit),
  ]);
  const id = r.rows[0]?.id ?? null;
  if (id === null) {
    const used = (await transferUsedThisYear(pool)) + opts.usedOutsideBytes;
    throw new TransferQuotaError(
      `transfer budget reached: ${used} of ${opts.budgetBytes} bytes used this year, the next file needs ${opts.bytes}`,
    );
  }
  return { id, bytes: opts.bytes };
}

export async function settleTransfer(pool: Pool, reservation: Reservation, bytes: number): Promise<void> {
  await pool.query('select settle_transfer($1::bigint, $2)', [reservation.id, bytes]);
}
