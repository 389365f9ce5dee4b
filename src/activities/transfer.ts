/**
 * The FileMaker transfer quota as the files phases spend it (table `transfer_log`). A download reserves the size
 * FileMaker announced before its bytes flow, under one advisory lock, so concurrent batches on any number of
 * workers can never together pass the budget; it is settled with the bytes really received, also when it broke.
 * A reservation that was never settled (a worker killed mid-download) keeps counting what it reserved: a quota is
 * better over-counted than over-spent.
 */
import { TransferQuotaError } from '../errors';
import type { Pool } from '../store/db';

/** Any constant works: it only has to be the same for every worker of every run. */
const QUOTA_LOCK = 0x666d_7271; // "fmrq"

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
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [QUOTA_LOCK]);
    const used = Number((await client.query<{ b: string }>(USED_SQL)).rows[0]?.b ?? 0) + opts.usedOutsideBytes;
    if (used + opts.bytes > opts.budgetBytes) {
      await client.query('rollback');
      throw new TransferQuotaError(
        `transfer budget reached: ${used} of ${opts.budgetBytes} bytes used this year, the next file needs ${opts.bytes}`,
      );
    }
    const r = await client.query<{ id: string }>(
      `insert into transfer_log (run_id, source_table, filemaker_id, field, reserved_bytes, bytes)
       values ($1, $2, $3, $4, $5, 0) returning id::text`,
      [opts.runId, opts.table, opts.filemakerId, opts.field, opts.bytes],
    );
    await client.query('commit');
    return { id: r.rows[0]!.id, bytes: opts.bytes };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Records the bytes a reserved download really received. */
export async function settleTransfer(pool: Pool, reservation: Reservation, bytes: number): Promise<void> {
  await pool.query('update transfer_log set bytes = $2, settled = true where id = $1::bigint', [reservation.id, bytes]);
}
