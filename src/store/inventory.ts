/**
 * The record of which objects existed before a run (`s3_inventory`), so a rollback removes exactly the objects the
 * run created, never older ones.
 */
import type { Pool } from './db';

export interface InventoryEntry {
  key: string;
  size: number;
  sha256?: string;
}

/**
 * Stores the objects that exist before a run into `s3_inventory` (idempotent: a retried activity rewrites the same
 * rows), 1,000 a statement, calling `onBatch` with the total so far after each. Returns how many were recorded.
 */
export async function recordInventory(
  pool: Pool,
  runId: string,
  items: AsyncIterable<InventoryEntry> | Iterable<InventoryEntry>,
  onBatch?: (recorded: number) => void,
): Promise<number> {
  let batch: InventoryEntry[] = [];
  let total = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await pool.query(
      `insert into s3_inventory (run_id, key, size, sha256)
       select $1, x.key, x.size, x.sha256 from json_to_recordset($2::json) as x(key text, size bigint, sha256 text)
       on conflict (run_id, key) do update set size = excluded.size, sha256 = excluded.sha256`,
      [runId, JSON.stringify(batch.map((b) => ({ key: b.key, size: b.size, sha256: b.sha256 ?? null })))],
    );
    total += batch.length;
    batch = [];
    onBatch?.(total);
  };
  for await (const item of items) {
    batch.push(item);
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return total;
}

/**
 * Keys of `current` that were not in the run's recorded inventory: the objects the run created, which a rollback
 * may delete. Objects that existed before the run are never returned.
 */
export async function keysCreatedByRun(
  pool: Pool,
  runId: string,
  current: AsyncIterable<{ key: string }> | Iterable<{ key: string }>,
): Promise<string[]> {
  const created: string[] = [];
  let batch: string[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const r = await pool.query<{ key: string }>(
      `select k as key from unnest($2::text[]) as k
       where not exists (select 1 from s3_inventory i where i.run_id = $1 and i.key = k)`,
      [runId, batch],
    );
    created.push(...r.rows.map((x) => x.key));
    batch = [];
  };
  for await (const item of current) {
    batch.push(item.key);
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return created;
}
