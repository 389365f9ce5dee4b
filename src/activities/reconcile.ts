/**
 * The reconcile stage: a table's ledger balanced against its manifest (nothing pending, nothing missing), its files'
 * objects checked in S3, the transfer it spent, and at validation the records that arrived since its manifest.
 */
import { heartbeat } from '@temporalio/activity';
import type { SourceTableName } from '../domain/tables';
import { ledgerBalance } from '../store/ledger';
import { transferUsedByRun } from '../store/transfer';
import type { ActivityDeps } from './deps';
import { FILE_TABLES } from './files';
import { arrivalsOf } from './manifest';
import { fileMakerLanes, inParallel } from '../parallel';
import type { ReimportActivities, TableReconciliation, ValidationResult } from './types';
import { reconcileObjects } from './verify';

/** Tables the validation reconciles at once (at most the run's concurrency: each has one FileMaker request at a time). */
const VALIDATION_TABLES_IN_FLIGHT = 4;

/**
 * `phase`: the files phase's own reconciliation; `validation`: the run's last check, which also lists the records
 * that arrived since the manifest. Both check the objects from a listing of their own (objects listed with the size
 * and ETag recorded when they were confirmed on storing; any other one HEADed, see reconcileObjects); the phase's
 * check leaves those of records carried over unread to the validation.
 */
export async function reconcileTable(
  deps: ActivityDeps,
  runId: string,
  table: SourceTableName,
  checkedBy: 'phase' | 'validation',
): Promise<TableReconciliation> {
  const { pool } = deps;
  const { by, manifest, missing } = await ledgerBalance(pool, runId, table);
  const pending = (by.pending ?? 0) + (by.missing ?? 0);
  const files = FILE_TABLES.includes(table);
  const objects = files
    ? await reconcileObjects({ ...deps, heartbeat }, runId, table, { leaveCarried: checkedBy === 'phase' })
    : { checked: 0, mismatches: [] as string[], headed: 0 };
  const transferred = files ? await transferUsedByRun(pool, runId, table) : undefined;
  const arrivals = checkedBy === 'validation' ? await arrivalsOf(deps, runId, table) : undefined;
  return {
    table,
    manifest,
    imported: by.imported ?? 0,
    unlinked: by.unlinked ?? 0,
    skipped: by.skipped ?? 0,
    failed: by.failed ?? 0,
    pending,
    missing,
    objectsChecked: objects.checked,
    objectMismatches: objects.mismatches,
    objectsHeaded: objects.headed,
    ...(transferred !== undefined ? { bytesTransferred: transferred } : {}),
    ...(arrivals !== undefined ? { arrivals } : {}),
    ok: pending === 0 && objects.mismatches.length === 0,
  };
}

/**
 * The validation phase: every table of the run reconciled again, several at once (each waits on PostgreSQL, S3 and
 * its arrivals, one FileMaker request after another), the results in the tables' order.
 */
export async function validateTables(
  deps: ActivityDeps,
  { runId, tables, inFlight }: Parameters<ReimportActivities['validate']>[0],
): Promise<ValidationResult> {
  const results: TableReconciliation[] = [];
  await inParallel(tables, fileMakerLanes(VALIDATION_TABLES_IN_FLIGHT, inFlight), async (t, i) => {
    results[i] = await reconcileTable(deps, runId, t, 'validation');
  });
  return {
    tables: results,
    objectMismatches: results.flatMap((r) => r.objectMismatches),
    ok: results.every((r) => r.ok),
  };
}
