/**
 * The reimport's non-import phases as child workflows: backup, delete and validation. Each runs one long,
 * heartbeating activity; they are children (not bare activities) so the Web UI shows every phase of a run
 * as a node of the same tree.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { BackupResult, ReimportActivities, ValidationResult } from '../activities/types';
import type { SourceTableName } from '../domain/tables';
import { ERROR_CODES } from './failures';
import { tableWorkActivity } from './profiles';

const acts = proxyActivities<ReimportActivities>(tableWorkActivity);

/** backupPhase: snapshots every target table (one transaction) and the S3 inventory, before anything changes. */
export async function backupPhase(input: { runId: string }): Promise<BackupResult> {
  return acts.backup(input);
}

/** deletePhase: removes imported patient data (rows with a FileMaker id); never S3 objects. Returns rows per table. */
export async function deletePhase(input: { runId: string }): Promise<Record<string, number>> {
  return acts.deleteImported(input);
}

/**
 * validationPhase: every manifest id of the run has a terminal ledger state and every imported file's object is
 * confirmed as the ledger recorded it (listed with its recorded size and ETag, else by HEAD). Fails (and so rolls the
 * run back) when either is not so.
 */
export async function validationPhase(input: {
  runId: string;
  tables: SourceTableName[];
  /** The run's concurrency: tables reconciled at once, each with at most one FileMaker request in flight. */
  inFlight?: number;
}): Promise<ValidationResult> {
  const result = await acts.validate(input);
  if (!result.ok) {
    const open = result.tables.filter((t) => !t.ok).map((t) => `${t.table} (${t.pending} not terminal)`);
    throw ApplicationFailure.nonRetryable(
      `validation failed: ${[...open, ...(result.objectMismatches.length ? [`${result.objectMismatches.length} object mismatches`] : [])].join(', ')}`,
      ERROR_CODES.VALIDATION_FAILED,
    );
  }
  return result;
}
