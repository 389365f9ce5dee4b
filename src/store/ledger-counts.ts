/**
 * What the metrics report of the ledger: the newest run's entries by table and state (one entry per record, one per
 * file in the files phases). Counts only — no ids — and an index-only scan of `import_ledger_state_idx`.
 */
import type { Pool } from './db';

export interface LedgerCount {
  sourceTable: string;
  state: string;
  count: number;
}

/** The newest run's ledger by table and state; empty before the first run. */
export async function newestRunLedgerCounts(pool: Pool): Promise<LedgerCount[]> {
  const r = await pool.query<{ source_table: string; state: string; n: number }>(
    `select source_table, state, count(*)::int as n
       from import_ledger
      where run_id = (select run_id from reimport_runs order by started_at desc limit 1)
      group by source_table, state`,
  );
  return r.rows.map((x) => ({ sourceTable: x.source_table, state: x.state, count: x.n }));
}
