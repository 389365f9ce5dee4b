/**
 * The run rows (`reimport_runs`): a run is registered when it starts and ends with its status and report. Ids,
 * counts and reason codes only; never patient data.
 */
import type { Pool } from './db';

/**
 * Registers a run as running, with the schema version it writes with; a second call with the same id (a retried
 * activity) changes nothing.
 */
export async function startRun(pool: Pool, runId: string, workflowId: string, options: unknown): Promise<void> {
  await pool.query(
    `insert into reimport_runs (run_id, workflow_id, options, status, schema_version)
     values ($1, $2, $3, 'running', (select version from schema_info))
     on conflict (run_id) do nothing`,
    [runId, workflowId, JSON.stringify(options ?? {})],
  );
}

/** Ends a run with its status (one the table's check allows), merging the report into its summary. */
export async function finishRun(pool: Pool, runId: string, status: string, report: unknown): Promise<void> {
  await pool.query(
    `update reimport_runs set status = $2, finished_at = now(),
            summary = coalesce(summary, '{}'::jsonb) || $3::jsonb where run_id = $1`,
    [runId, status, JSON.stringify(report ?? {})],
  );
}

/** Merges `patch` into a run's stored summary (what became of the run after its report, such as pruned backups). */
export async function mergeRunSummary(pool: Pool, runId: string, patch: Record<string, unknown>): Promise<void> {
  await pool.query(`update reimport_runs set summary = coalesce(summary, '{}'::jsonb) || $2::jsonb where run_id = $1`, [
    runId,
    JSON.stringify(patch),
  ]);
}

/** A run as the operator is shown it (certificate, backup listing): times as ISO strings, who signed it off and when. */
export interface RunOverview<Status extends string = string> {
  readonly runId: string;
  readonly status: Status;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly signedOffBy: string | null;
  readonly signedOffAt: string | null;
}

/** The `reimport_runs` columns a RunOverview is read from; a query selects them, with any of its own, as a row. */
export const RUN_OVERVIEW_COLUMNS = 'run_id, status, started_at, finished_at, signed_off_by, signed_off_at';

export interface RunOverviewRow<Status extends string = string> {
  run_id: string;
  status: Status;
  started_at: Date;
  finished_at: Date | null;
  signed_off_by: string | null;
  signed_off_at: Date | null;
}

export function runOverview<Status extends string>(row: RunOverviewRow<Status>): RunOverview<Status> {
  return {
    runId: row.run_id,
    status: row.status,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    signedOffBy: row.signed_off_by,
    signedOffAt: row.signed_off_at?.toISOString() ?? null,
  };
}
