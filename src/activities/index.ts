/**
 * createActivities(deps): every activity of the reimport, over explicit dependencies (pool, S3, FileMaker client,
 * config, logger). Activities speak in ids, counts and keys; errors that the workflow acts on are ApplicationFailures
 * whose type is the error's stable code.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { FileMakerOverloadedError, FmReimportError, TransferQuotaError } from '../errors';
import type { ActivityDeps } from './deps';
import { dryRunTable } from './dry-run';
import { importExportBatch, importFileBatch } from './files';
import { freezeCheck, freezeSnapshot, writeRunCertificate } from './cutover';
import { buildManifest, readManifests, vanishedCensus } from './manifest';
import { preflight } from './preflight';
import { reconcileTable, validateTables } from './reconcile';
import { importRecordChunk } from './records';
import { runBookkeeping } from './runs';
import { carriedCount, incrementalBase, sweepTable } from '../store/incremental';
import type { CutoverActivities, ReimportActivities } from './types';

export type { ActivityDeps } from './deps';

/** Converts our errors into ApplicationFailures the workflow can branch on (by `type`, never by class). */
export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof FileMakerOverloadedError || err instanceof TransferQuotaError) {
    return ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: true });
  }
  if (err instanceof FmReimportError) {
    return ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: !err.retryable });
  }
  return err;
}

function wrap<T extends Record<string, (...args: never[]) => Promise<unknown>>>(acts: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(acts)) {
    out[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toFailure(err);
      }
    };
  }
  return out as T;
}

export function createActivities(deps: ActivityDeps): ReimportActivities & CutoverActivities {
  const runs = runBookkeeping(deps);

  const acts: ReimportActivities & CutoverActivities = {
    preflight: (input) => preflight(deps, runs, input),
    async startRun(i) {
      // An incremental run must have a completed run to build on; it is refused before it is registered.
      if ((i.options as { mode?: string } | null)?.mode === 'incremental') await incrementalBase(deps.pool, i.runId);
      await runs.startRun(i.runId, i.workflowId, i.options);
    },
    finishRun: (i) => runs.finishRun(i.runId, i.status, i.report),
    backup: (i) => runs.backup(i.runId),
    restore: (i) => runs.restore(i.runId),
    deleteRunObjects: (i) => runs.deleteRunObjects(i.runId),
    deleteImported: () => runs.deleteImported(),
    buildManifest: (input) => buildManifest(deps, input),
    vanishedCensus: (input) => vanishedCensus(deps, input),
    readManifests: (input) => readManifests(deps, input),
    importChunk: (input) => importRecordChunk(deps, input),
    importFiles: ({ exportSource, ...input }) =>
      exportSource ? importExportBatch(deps, { ...input, exportSource }) : importFileBatch(deps, input),
    finishTable: ({ table }) => runs.foldContactDetails(table),
    async reconcileTable({ runId, table, finish, sweep }) {
      const swept = sweep === true ? await sweepTable(deps.pool, runId, table) : undefined;
      if (swept) deps.logger.info({ table, rows: swept }, 'incremental: rows no record accounts for deleted');
      if (finish === true) await runs.foldContactDetails(table);
      const rec = await reconcileTable(deps, runId, table, 'phase');
      return sweep === true ? { ...rec, carried: await carriedCount(deps.pool, runId, table) } : rec;
    },
    dryRunTable: (input) => dryRunTable(deps, input),
    validate: (input) => validateTables(deps, input),
    async notify(event) {
      await deps.notify(event);
    },
    freezeSnapshot: (input) => freezeSnapshot(deps, input),
    freezeCheck: (input) => freezeCheck(deps, input),
    writeCertificate: (input) => writeRunCertificate(deps, input),
  };
  return wrap(
    acts as unknown as Record<string, (...args: never[]) => Promise<unknown>>,
  ) as unknown as ReimportActivities & CutoverActivities;
}
