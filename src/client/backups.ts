/**
 * The operator's view of run backups and sign-offs: `backups list`, `backups prune` and `signoff` (src/client/cli.ts),
 * over the database the worker writes. Run ids, statuses and times only.
 */
import type { Config } from '../config';
import { createPool, type Pool } from '../store/db';
import type { BackupListing, PruneResult } from '../store/retention';

/** Runs `fn` with a pool on the configured database (DATABASE_URL), closed afterwards. */
export async function withDatabase<T>(config: Config, fn: (pool: Pool) => Promise<T>): Promise<T> {
  if (!config.database.url) throw new Error('DATABASE_URL: required, the Nexus PostgreSQL database');
  const pool = createPool({ ...config.database, poolMax: 2 }, { applicationName: 'fm-reimport client' });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/** One line a run: its backup, the policy's decision and why, and its sign-off. */
export function formatBackups(listing: readonly BackupListing[]): string {
  if (listing.length === 0) return 'no runs';
  const lines = listing.map((b) => {
    const backup = b.schema ? 'backup' : b.droppedAt ? `dropped ${b.droppedAt}` : 'no backup';
    const decision = b.schema ? (b.keep ? 'kept' : 'to drop') : '';
    const signed = b.signedOffAt ? `signed off ${b.signedOffAt}` : '';
    return [b.runId, b.status, b.startedAt, backup, decision, b.why, signed].filter(Boolean).join('  ');
  });
  return lines.join('\n');
}

export function formatPrune(result: PruneResult, dryRun: boolean): string {
  const verb = dryRun ? 'would drop' : 'dropped';
  const lines = result.dropped.map((d) => `${verb} ${d.runId}: ${d.why}`);
  lines.push(`${result.dropped.length} backup(s) ${verb}, ${result.kept} kept`);
  return lines.join('\n');
}
