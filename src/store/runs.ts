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
