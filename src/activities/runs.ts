/**
 * Run bookkeeping for the activities: the run row, the transfer-quota ledger, the pre-run snapshot and its restore,
 * the delete phase, and folding contact details into their owners' JSON columns. The SQL is the store's
 * (src/store/runs.ts, backup.ts, inventory.ts, contact-details.ts), the S3 calls the S3 layer's.
 */
import { heartbeat } from '@temporalio/activity';
import { KEY_PREFIX } from '../domain/keys';
import { foldContactDetails } from '../domain/mappers/patients';
import type { SourceTableName } from '../domain/tables';
import { deleteObject, deleteObjects, inventory, putObject } from '../s3';
import { backupSchemaOf, deleteImportedData, restore, snapshot } from '../store/backup';
import { contactDetailsByOwner, setOwnerContacts } from '../store/contact-details';
import { keysCreatedByRun, recordInventory } from '../store/inventory';
import { pruneBackups } from '../store/retention';
import { finishRun, mergeRunSummary, startRun } from '../store/runs';
import { cleanDocument } from '../store/sanitize';
import type { ActivityDeps } from './deps';
import type { BackupResult, Counts, RestoreResult, RunStatus } from './types';
import { transferUsedThisYear } from '../store/transfer';

/** Heartbeats as each table of a backup, restore or delete is done (the table-work profile's heartbeat timeout). */
const tableDone = (table: string) => heartbeat({ table });

export type RunBookkeeping = ReturnType<typeof runBookkeeping>;

export function runBookkeeping(deps: ActivityDeps) {
  const { pool, s3, config } = deps;
  const bucket = config.s3.bucket;

  /** Drops the backups the policy no longer keeps. Never fails the run: a failure keeps every backup and is reported. */
  const pruneSuperseded = async (runId: string): Promise<{ dropped: string[]; kept: number } | { error: string }> => {
    try {
      const { dropped, kept } = await pruneBackups(pool, config.database.backupKeepRuns);
      const ids = dropped.map((d) => d.runId);
      if (ids.length) deps.logger.info({ runId, dropped: ids, kept }, 'backups dropped by the retention policy');
      return { dropped: ids, kept };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      deps.logger.warn({ runId, error }, 'backup retention failed: every backup is kept');
      return { error };
    }
  };

  return {
    startRun: (runId: string, workflowId: string, options: unknown) => startRun(pool, runId, workflowId, options),

    /**
     * Ends the run's row and stores its report. A completed run then lets the retention policy drop the backups it
     * no longer keeps; what was dropped joins the stored report (`backups`).
     */
    async finishRun(runId: string, status: RunStatus, report: unknown): Promise<{ reportKey: string | undefined }> {
      const reportKey = `reports/${runId}.json`;
      await finishRun(pool, runId, status, report);
      const backups = status === 'completed' ? await pruneSuperseded(runId) : undefined;
      if (backups) await mergeRunSummary(pool, runId, { backups });
      const stored = backups ? { runId, status, report, backups } : { runId, status, report };
      await putObject(s3, bucket, reportKey, JSON.stringify(stored, null, 2), 'application/json');
      return { reportKey };
    },

    /** Bytes downloaded from FileMaker this calendar year by all runs, plus what was used before fm-reimport. */
    async transferUsedThisYear(): Promise<number> {
      return (await transferUsedThisYear(pool)) + config.filemaker.transferUsedBytes;
    },

    async checkBucketWritable() {
      const key = `preflight/${Date.now()}-${Math.random().toString(36).slice(2)}`;
      await putObject(s3, bucket, key, 'ok');
      await deleteObject(s3, bucket, key);
    },

    /**
     * Snapshots every table in one REPEATABLE READ transaction and, at the same time (nothing writes objects before
     * the backup is done), records the S3 inventory under the import's keys.
     */
    async backup(runId: string): Promise<BackupResult> {
      // Both settle before the activity ends (or fails), so neither still writes when it is retried.
      const [tables, objectsBefore] = await Promise.allSettled([
        snapshot(pool, runId, tableDone),
        recordInventory(pool, runId, inventory(s3, bucket, `${KEY_PREFIX}/`), (n) => heartbeat({ objectsBefore: n })),
      ]);
      if (tables.status === 'rejected') throw tables.reason;
      if (objectsBefore.status === 'rejected') throw objectsBefore.reason;
      return { tables: tables.value, objectsBefore: objectsBefore.value, backupKey: undefined };
    },

    /** Restores every table from the run's snapshot in one transaction, verified by fingerprints before it commits. */
    restore: (runId: string): Promise<RestoreResult> => restore(pool, runId, tableDone),

    /** Deletes the objects under the import's keys that did not exist before the run, never older ones. */
    async deleteRunObjects(runId: string): Promise<{ deleted: number }> {
      // Without its inventory every object would look new: a run with no backup of its own (dropped by the retention
      // policy, or never taken because the run failed first) deletes nothing.
      await backupSchemaOf(pool, runId);
      const created = await keysCreatedByRun(pool, runId, inventory(s3, bucket, `${KEY_PREFIX}/`));
      const { deleted, errors } = await deleteObjects(s3, bucket, created);
      if (errors.length) {
        const codes = [...new Set(errors.map((e) => e.code))].join(', ');
        throw new Error(`S3 refused to delete ${errors.length} of the run's ${created.length} new objects (${codes})`);
      }
      return { deleted };
    },

    /** The delete phase: imported rows only (a FileMaker id), children first, in one transaction. */
    deleteImported: (): Promise<Record<string, number>> => deleteImportedData(pool, tableDone),

    /** After a table's last chunk: fold the kept contact details into the owners that table holds. */
    async foldContactDetails(table: SourceTableName): Promise<Counts> {
      const owner = ({ API_Contacts: 'patients', API_Referrer: 'referrers', API_Company: 'companies' } as const)[
        table as 'API_Contacts'
      ];
      const counts: Counts = { imported: 0, unlinked: 0, skipped: 0, failed: 0 };
      if (!owner) return counts;
      const updates = [...(await contactDetailsByOwner(pool, owner))].map(([id, details]) => {
        const f = foldContactDetails(details.map((fieldData) => ({ recordId: '0', modId: '0', fieldData })));
        const row = { filemaker_id: id, contact_json: f.contact_json, address_json: f.address_json };
        // Read back from jsonb, so always JSON; cleaned all the same, like every document that reaches PostgreSQL.
        const cleaned = cleanDocument(row, owner);
        if (!cleaned.ok) throw new Error(`folding contact details into ${owner}: ${cleaned.message}`);
        return cleaned.value as typeof row;
      });
      counts.imported = await setOwnerContacts(pool, owner, updates);
      return counts;
    },
  };
}
