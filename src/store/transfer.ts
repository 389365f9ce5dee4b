/**
 * The FileMaker transfer quota's log (`transfer_log`, its yearly sum `transfer_totals`; migration 1763700004000 has
 * the SQL functions): reservations made and settled in one named statement each, and what the log counts as used.
 * How the files phases spend the quota is src/activities/transfer.ts.
 */
import { namedStatement, type Pool } from './db';

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

/** One reservation to make: `limitBytes` is what the year's total may reach with it. */
export interface TransferClaim {
  runId: string;
  table: string;
  filemakerId: string;
  field: string;
  bytes: number;
  limitBytes: number;
}

const RESERVE = `select reserve_transfer(t.run, t.tbl, t.fid, t.field, t.bytes, t.lim)::text as id
  from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
       with ordinality as t(run, tbl, fid, field, bytes, lim, i)
 order by t.i`;

/**
 * Makes the reservations in one statement that holds the year's total row lock, in order: each one's id, or null
 * when its bytes did not fit its limit.
 */
export async function reserveTransfers(pool: Pool, claims: readonly TransferClaim[]): Promise<(string | null)[]> {
  const r = await pool.query<{ id: string | null }>({
    ...namedStatement(RESERVE),
    values: [
      claims.map((x) => x.runId),
      claims.map((x) => x.table),
      claims.map((x) => x.filemakerId),
      claims.map((x) => x.field),
      claims.map((x) => x.bytes),
      claims.map((x) => x.limitBytes),
    ],
  });
  return r.rows.map((x) => x.id);
}

const SETTLE = 'select settle_transfer(t.id, t.b) from unnest($1::bigint[], $2::bigint[]) as t(id, b)';

/** Settles reservations (by id) with the bytes really received, in one statement. */
export async function settleTransfers(
  pool: Pool,
  settlements: readonly { id: string; bytes: number }[],
): Promise<void> {
  await pool.query({
    ...namedStatement(SETTLE),
    values: [settlements.map((x) => x.id), settlements.map((x) => x.bytes)],
  });
}
