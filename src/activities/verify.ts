/**
 * Files-phase checks that need S3: every object a run recorded, confirmed by HEAD with the size and SHA-256 the
 * ledger holds; and the dry run's estimate of the bytes a run would download (files not already stored).
 */
import { heartbeat } from '@temporalio/activity';
import { headObject } from '../s3';
import { ledgerLookup } from '../store/ledger';
import type { SourceTableName } from '../domain/tables';
import type { ActivityDeps } from './deps';
import { inParallel } from './parallel';

const HEADS_IN_FLIGHT = 16;
const MISMATCHES_KEPT = 50;

/** Average sizes the clinic reported, used until the ledger knows better. */
const DEFAULT_FILE_BYTES: Partial<Record<SourceTableName, number>> = {
  API_Docs: 512 * 1024,
  API_Images: 3 * 1024 * 1024,
};

/** HEADs every object the run recorded for `table`; returns the ids whose object is missing or differs. */
export async function verifyObjects(
  deps: ActivityDeps,
  runId: string,
  table: SourceTableName,
): Promise<{ checked: number; mismatches: string[] }> {
  const rows = (
    await deps.pool.query<{ filemaker_id: string; s3_key: string; bytes: string | null; sha256: string | null }>(
      `select filemaker_id, s3_key, bytes::text, sha256 from import_ledger
        where run_id = $1 and source_table = $2 and state in ('imported', 'unlinked') and s3_key is not null
        order by filemaker_id`,
      [runId, table],
    )
  ).rows;
  const mismatches: string[] = [];
  let mismatched = 0;
  await inParallel(rows, HEADS_IN_FLIGHT, async (r, i) => {
    const h = await headObject(deps.s3, deps.config.s3.bucket, r.s3_key);
    const ok = h !== undefined && r.bytes !== null && h.size === Number(r.bytes) && h.sha256 === r.sha256;
    if (!ok) {
      mismatched++;
      if (mismatches.length < MISMATCHES_KEPT) mismatches.push(r.filemaker_id);
    }
    if (i % 500 === 0) heartbeat({ table, checked: i });
  });
  if (mismatched > 0) {
    deps.logger.error({ table, mismatched, checked: rows.length }, 'stored objects differ from the ledger');
  }
  return { checked: rows.length, mismatches: mismatches.sort() };
}

/**
 * Bytes a run would download for these ids: 0 for a file already stored as recorded (it is relinked), the recorded
 * size when the ledger knows it, else the table's average so far (or the clinic's reported average).
 */
export async function estimateDownloadBytes(
  deps: ActivityDeps,
  table: SourceTableName,
  ids: readonly string[],
): Promise<number> {
  const priors = await ledgerLookup(deps.pool, table, ids);
  const avg = await deps.pool.query<{ avg: string | null }>(
    `select avg(bytes)::bigint::text as avg from import_ledger
      where source_table = $1 and bytes is not null and state in ('imported', 'unlinked')`,
    [table],
  );
  const average = Number(avg.rows[0]?.avg ?? DEFAULT_FILE_BYTES[table] ?? 0);
  let total = 0;
  await inParallel(ids, HEADS_IN_FLIGHT, async (id) => {
    const prior = priors.get(id);
    if (prior && prior.bytes !== null && prior.sha256 !== null) {
      const h = await headObject(deps.s3, deps.config.s3.bucket, prior.s3Key);
      if (h && h.size === prior.bytes && h.sha256 === prior.sha256) return;
      total += prior.bytes;
      return;
    }
    total += average;
  });
  return total;
}
