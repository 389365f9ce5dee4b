/**
 * cutover: the switch to Nexus with the clinic's FileMaker frozen. Proves the source frozen — every source table's
 * record ids and record versions read twice, `freezeIntervalSeconds` apart (a durable timer), identical — then runs
 * the final incremental import as the child `<cut-over>-import` (a reimport: backup, import, validation), reads the
 * source a third time and compares it with the first, and writes the run's reconciliation certificate beside its
 * report in S3.
 *
 * Input: CutoverInput (validated here; a bad input fails at once with INVALID_INPUT). What the reads see stays in
 * the activities and PostgreSQL: the history holds counts and the record ids that moved, never a field value.
 * Messages: the `cutoverProgress` query. A cancel reaches the import, which rolls back.
 * Ends: `cutover_complete` with CutoverResult (the run id, records per table, the certificate's key) only when all of
 * that holds. A change seen in the source at any read fails it with SOURCE_CHANGED, naming per table the counts and
 * the record ids (ROWID) that moved; a change during the import is reported so even when it failed the import. A
 * source that moved after the import completed leaves that run completed (it imported what it read), uncertified.
 */
import {
  ApplicationFailure,
  executeChild,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { CutoverActivities } from '../activities/types';
import { describeMoved, movedCount, type TableFreeze } from '../domain/freeze';
import { SOURCE_TABLE_NAMES } from '../domain/tables';
import {
  CUTOVER_ID_PATTERN,
  cutoverInputSchema,
  cutoverProgressQuery,
  finalImportId,
  type CutoverProgress,
  type CutoverResult,
  type CutoverStage,
} from './cutover-input';
import { ERROR_CODES } from './failures';
import { describeIssues } from './options';
import { freezeReadActivity, shortActivity } from './profiles';
import { reimport, untilNotOverloaded, type ReimportResult } from './reimport';
import { finalImportSearchAttributes } from './search-attributes';

export type { CutoverInput, CutoverResult } from './cutover-input';

/** The final import reads only what changed since the last completed run. */
const FINAL_IMPORT_MODE = { mode: 'incremental' } as const;

const reads = proxyActivities<CutoverActivities>(freezeReadActivity);
const acts = proxyActivities<CutoverActivities>(shortActivity);

export async function cutover(rawInput: unknown): Promise<CutoverResult> {
  const parsed = cutoverInputSchema.safeParse(rawInput ?? {});
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(`invalid input: ${describeIssues(parsed.error)}`, ERROR_CODES.INVALID_INPUT);
  }
  const options = parsed.data;
  const info = workflowInfo();
  const cutoverId = info.workflowId;
  if (!CUTOVER_ID_PATTERN.test(cutoverId)) {
    throw ApplicationFailure.nonRetryable(
      'invalid workflow id: a cut-over id is letters, digits and ._:- (it names the final run)',
      ERROR_CODES.INVALID_INPUT,
    );
  }
  const tables = [...SOURCE_TABLE_NAMES];
  const progress: CutoverProgress = { stage: 'reading' };
  setHandler(cutoverProgressQuery, () => progress, {
    description: 'Where the cut-over is: reading, waiting, checking, importing, rechecking, certifying, or its end.',
  });
  const at = (stage: CutoverStage, details: string) => {
    progress.stage = stage;
    setCurrentDetails(details);
  };
  const check = () => untilNotOverloaded(options.import, () => reads.freezeCheck({ cutoverId, tables }));

  try {
    at('reading', 'Reading every source table (record ids and versions)');
    await untilNotOverloaded(options.import, () => reads.freezeSnapshot({ cutoverId, tables }));

    const seconds = options.freezeIntervalSeconds;
    progress.waitingUntil = new Date(Date.now() + seconds * 1000).toISOString();
    at('waiting', `Freeze interval: ${seconds} s, then every table is read again`);
    await sleep(seconds * 1000, { summary: `Freeze interval ${seconds} s` });
    progress.waitingUntil = undefined;

    at('checking', 'Reading every source table again: it must be as it was');
    failIfMoved(await check(), `in the ${seconds} s freeze interval`);

    const importId = finalImportId(cutoverId);
    progress.importWorkflowId = importId;
    at('importing', `Final incremental import: ${importId}`);
    const typedSearchAttributes = finalImportSearchAttributes();
    let run: ReimportResult;
    try {
      run = await executeChild(reimport, {
        workflowId: importId,
        memo: info.memo,
        ...(typedSearchAttributes ? { typedSearchAttributes } : {}),
        staticSummary: `Final incremental import of cut-over ${cutoverId}`,
        args: [{ ...options.import, writeBack: false, ...FINAL_IMPORT_MODE }],
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      // A source that moved under the import is the cause to name; otherwise the import's own failure is.
      const after = await reads.freezeCheck({ cutoverId, tables }).catch(() => undefined);
      if (after) failIfMoved(after, 'during the final import (which failed)');
      throw err;
    }

    at('rechecking', 'Reading every source table a third time: it must be as it was before the import');
    const last = await check();
    failIfMoved(last, 'during the final import');

    at('certifying', `Writing the reconciliation certificate of ${run.runId}`);
    const certificate = await acts.writeCertificate({ runId: run.runId, sample: options.certificateSample });

    at('cutover_complete', `Cut-over complete: ${run.runId}, certificate ${certificate.certificateKey}`);
    return {
      cutoverId,
      status: 'cutover_complete',
      runId: run.runId,
      freezeIntervalSeconds: seconds,
      tables: last.map(({ table, records }) => ({ table, records })),
      phases: run.phases,
      certificateKey: certificate.certificateKey,
      ...(run.reportKey ? { reportKey: run.reportKey } : {}),
      ledgerDigest: certificate.ledgerDigest,
    };
  } catch (err) {
    progress.stage = 'failed';
    throw err;
  }
}

/** Fails the cut-over when any table moved: SOURCE_CHANGED, the counts and record ids in its message and details. */
function failIfMoved(checks: readonly TableFreeze[], when: string): void {
  const moved = checks.filter((t) => movedCount(t) > 0);
  if (moved.length === 0) return;
  throw ApplicationFailure.create({
    message: `source changed ${when}: ${describeMoved(moved)}`,
    type: ERROR_CODES.SOURCE_CHANGED,
    nonRetryable: true,
    details: [moved],
  });
}
