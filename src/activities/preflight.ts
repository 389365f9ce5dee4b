/** The pre-flight: what a run checks before it changes anything. */
import { ApplicationFailure } from '@temporalio/activity';
import { SOURCE_TABLES, type SourceTableName } from '../domain/tables';
import { ERROR_CODES } from '../error-codes';
import { checkSchemaVersion } from '../store/migrate';
import { CONTAINER_PATH_REASONS, probeContainerPath } from './container-probe';
import type { ActivityDeps } from './deps';
import { FILE_TABLES } from './files';
import type { RunBookkeeping } from './runs';
import { fileMakerLanes, inParallel } from '../parallel';
import { missingFields } from './source-checks';
import type { PreflightInput, PreflightResult } from './types';

/** Layout and count requests sent at once (the FileMaker client caps a worker's requests as well). */
const REQUESTS_IN_FLIGHT = 8;

/**
 * The `preflight` activity: the schema version, every layout of the run's phases with its fields and its count, the
 * bucket writable, how containers will be read (the probe), and the transfer budget left. Refuses the run
 * (PREFLIGHT_FAILED) when a layout lacks a field.
 */
export async function preflight(
  deps: ActivityDeps,
  runs: Pick<RunBookkeeping, 'checkBucketWritable' | 'transferUsedThisYear'>,
  input: PreflightInput,
): Promise<PreflightResult> {
  const { pool, fm, config, logger } = deps;
  const problems: string[] = [];
  const { version } = await checkSchemaVersion(pool);
  const sourceCounts: Partial<Record<SourceTableName, number>> = {};
  const tables = Object.values(SOURCE_TABLES).filter((t) => input.phases.includes(t.phase));
  // Each layout's fields and each count is a request; they go side by side, as many as the run allows. Problems are
  // named in the tables' order.
  const absentByTable: string[][] = [];
  const reads = tables.flatMap((t, i) => [
    async () => void (absentByTable[i] = await missingFields(fm, t)),
    async () => void (sourceCounts[t.name] = await fm.count(t.odataTable)),
  ]);
  await inParallel(reads, fileMakerLanes(REQUESTS_IN_FLIGHT, input.inFlight), (read) => read());
  tables.forEach((t, i) => {
    const absent = absentByTable[i]!;
    if (absent.length) problems.push(`${t.layout} lacks ${absent.join(', ')}`);
  });
  await runs.checkBucketWritable();
  // After the layouts: a missing field fails the pre-flight before any container is read.
  const fileTables =
    problems.length || input.dryRun
      ? []
      : FILE_TABLES.filter((t) => sourceCounts[t] !== undefined && !(t === 'API_Images' && input.imagesFromExport));
  const probe = fileTables.length
    ? await probeContainerPath(deps, input.runId, fileTables)
    : config.filemaker.containerApi === 'dataapi'
      ? { path: 'dataapi' as const, reason: CONTAINER_PATH_REASONS.CONFIGURED }
      : { path: 'odata' as const, reason: CONTAINER_PATH_REASONS.NOT_PROBED };
  const used = await runs.transferUsedThisYear();
  const left = config.filemaker.transferBudgetBytes - used;
  // A spent budget does not stop the run here: files already stored are relinked for free, and a files phase
  // that needs bytes pauses before its first download until the budget is raised.
  if (left <= 0) logger.warn({ left }, 'the annual FileMaker transfer budget is spent; downloads will pause');
  if (problems.length) {
    throw ApplicationFailure.create({
      message: `pre-flight failed: ${problems.join('; ')}`,
      type: ERROR_CODES.PREFLIGHT_FAILED,
      nonRetryable: true,
    });
  }
  return {
    schemaVersion: version,
    sourceCounts,
    transferLeftBytes: left,
    transferBudgetBytes: config.filemaker.transferBudgetBytes,
    containerPath: probe.path,
    containerPathReason: probe.reason,
  };
}
