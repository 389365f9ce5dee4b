/**
 * Backups kept by a policy (src/domain/retention.ts): the runs' backups listed with the policy's decision, the ones
 * it no longer keeps dropped, and the sign-off that lets a completed run's backup go once newer runs have completed.
 */
import { retentionDecisions, type RunForRetention } from '../domain/retention';
import { cleanText } from '../domain/normalize';
import { IntegrityError } from '../errors';
import { backupSchemaName, dropBackup } from './backup';
import type { Pool } from './db';
import { RUN_OVERVIEW_COLUMNS, runOverview, type RunOverview, type RunOverviewRow } from './runs';

export interface BackupListing extends RunOverview<RunForRetention['status']> {
  /** The run's backup schema, when it exists. */
  readonly schema: string | null;
  readonly droppedAt: string | null;
  readonly keep: boolean;
  readonly why: string;
}

interface RunRow extends RunOverviewRow<RunForRetention['status']> {
  backup_dropped_at: Date | null;
}

/** Every run, newest first, with its backup and what the policy (keep the last `keep` completed runs) decides. */
export async function listBackups(pool: Pool, keep: number): Promise<BackupListing[]> {
  const { rows } = await pool.query<RunRow>(`select ${RUN_OVERVIEW_COLUMNS}, backup_dropped_at from reimport_runs`);
  const schemas = new Set(
    (
      await pool.query<{ nspname: string }>(`select nspname from pg_namespace where nspname like 'backup\\_%'`)
    ).rows.map((r) => r.nspname),
  );
  const byId = new Map(rows.map((r) => [r.run_id, r]));
  const decisions = retentionDecisions(
    rows.map((r) => ({
      runId: r.run_id,
      status: r.status,
      startedAt: r.started_at.getTime(),
      signedOff: r.signed_off_at !== null,
    })),
    keep,
  );
  return decisions.map((d) => {
    const r = byId.get(d.runId)!;
    const schema = backupSchemaName(r.run_id);
    return {
      ...runOverview(r),
      schema: schemas.has(schema) ? schema : null,
      droppedAt: r.backup_dropped_at?.toISOString() ?? null,
      keep: d.keep,
      why: d.why,
    };
  });
}

export interface PruneResult {
  /** Runs whose backup was dropped (or would be, in a dry run), with the policy's reason. */
  readonly dropped: { runId: string; why: string }[];
  /** How many backups remain. */
  readonly kept: number;
}

/** Drops every backup the policy no longer keeps (none with `dryRun`), one transaction each. */
export async function pruneBackups(pool: Pool, keep: number, opts: { dryRun?: boolean } = {}): Promise<PruneResult> {
  const listing = await listBackups(pool, keep);
  const dropped: { runId: string; why: string }[] = [];
  for (const b of listing) {
    if (b.keep || b.schema === null) continue;
    if (opts.dryRun || (await dropBackup(pool, b.runId))) dropped.push({ runId: b.runId, why: b.why });
  }
  return { dropped, kept: listing.filter((b) => b.schema !== null).length - dropped.length };
}

/** Longest name a sign-off records. */
const SIGNER_MAX = 200;

/**
 * Records that `by` accepted the completed run `runId`, and when. A run is signed off once: a second sign-off is
 * refused, naming who signed. IntegrityError for an unknown run or one that did not complete.
 */
export async function signOff(pool: Pool, runId: string, by: string): Promise<{ signedOffBy: string; at: string }> {
  const name = cleanText(by, { maxLength: SIGNER_MAX }).value;
  if (name === '') throw new IntegrityError('a sign-off needs the name of the person who accepts the run');
  const { rows } = await pool.query<{ status: string; by: string | null; at: Date | null }>(
    `update reimport_runs set signed_off_by = coalesce(signed_off_by, $2),
            signed_off_at = coalesce(signed_off_at, now())
      where run_id = $1 and status = 'completed'
      returning status, signed_off_by as by, signed_off_at as at`,
    [runId, name],
  );
  const row = rows[0];
  if (!row) {
    const known = await pool.query<{ status: string }>('select status from reimport_runs where run_id = $1', [runId]);
    const status = known.rows[0]?.status;
    throw new IntegrityError(
      status === undefined ? `no run ${runId}` : `run ${runId} is ${status}: only a completed run can be signed off`,
    );
  }
  if (row.by !== name) throw new IntegrityError(`run ${runId} was already signed off by ${row.by}`);
  return { signedOffBy: row.by, at: row.at!.toISOString() };
}

/** Who signed `runId` off and when; null when nobody has (or there is no such run). */
export async function runSignoff(pool: Pool, runId: string): Promise<{ by: string; at: string } | null> {
  const r = await pool.query<{ by: string | null; at: Date | null }>(
    'select signed_off_by as by, signed_off_at as at from reimport_runs where run_id = $1',
    [runId],
  );
  const row = r.rows[0];
  return row?.by && row.at ? { by: row.by, at: row.at.toISOString() } : null;
}
