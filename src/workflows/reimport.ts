/**
 * reimport: the whole re-import of the clinic's FileMaker data, as one parent with a child workflow per phase
 * (`<run>/backup`, `<run>/patients`, …) so the Web UI shows the run as a tree.
 *
 * Input: ReimportInput (validated here; a bad input fails at once with INVALID_INPUT and changes nothing).
 * Messages: `pause` / `resume` signals (forwarded to the running phase; honoured between batches), the `progress`
 * query, the `setSettings` and `setTransferBudget` updates. Cancel rolls back.
 * Ends: completed with ReimportResult (counts only); or, after any phase failure or a cancel, the database restored
 * to its pre-run state and the objects this run created deleted (a saga whose compensations run last-first, not
 * cancellable), the run recorded `rolled_back` with its cause, and the workflow failed with RUN_ROLLED_BACK.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  executeChild,
  startChild,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  condition,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  BackupResult,
  ContainerPath,
  ReimportActivities,
  RestoreResult,
  ValidationResult,
} from '../activities/types';
import { IMPORT_PHASES, SOURCE_TABLES, type PhaseName } from '../domain/tables';
import { ERROR_CODES } from '../error-codes';
import {
  pauseSignal,
  phaseControlSignal,
  phaseProgressSignal,
  progressQuery,
  resumeSignal,
  setSettingsUpdate,
  setTransferBudgetUpdate,
  type PhaseProgress,
  type RunProgress,
} from './messages';
import { describeIssues, reimportInputSchema, selectPhases, settingsSchema, type ReimportOptions } from './options';
import { cooldownSeconds, failureType, importPhase, type PhaseResult } from './phase';
import { OVERLOADED, notifyActivity, shortActivity, tableWorkActivity } from './profiles';
import { backupPhase, deletePhase, validationPhase } from './steps';

export interface PhaseSummary {
  phase: PhaseName;
  status: 'completed' | 'skipped' | 'failed' | 'not_run';
  durationMs: number;
  imported: number;
  unlinked: number;
  skipped: number;
  failed: number;
  bytesDownloaded: number;
  relinked: number;
  /** Files phases: files downloaded again because their record changed since their object was stored. */
  replaced: number;
  retries: number;
  cooldowns: number;
  byReason: Record<string, number>;
  /** FileMaker ids of failed records, by reason (capped), for the operator to follow up. */
  failedIds: Record<string, string[]>;
  /** Import phases: the longest history of the child's executions (continue-as-new keeps each short). */
  maxHistoryLength?: number;
  note?: string;
}

export interface ReimportResult {
  runId: string;
  status: 'completed' | 'dry_run';
  dryRun: boolean;
  phases: Pick<
    PhaseSummary,
    'phase' | 'status' | 'imported' | 'unlinked' | 'skipped' | 'failed' | 'bytesDownloaded' | 'relinked' | 'replaced'
  >[];
  bytesDownloaded: number;
  /** How the files phases read containers (OData's `$value` or the Data API) and why, from the pre-flight. */
  containerPath?: ContainerPath;
  containerPathReason?: string;
  /** The longest history of any execution of this run (the parent's and every import phase's), in events. */
  largestHistory: number;
  /** Dry-run: transfer quota left after a real run would download what it needs. */
  transferLeftAfterBytes?: number;
  reportKey?: string;
}

const IMPORT_PHASE_SET = new Set<string>(IMPORT_PHASES);
const FILE_BATCH_40 = 'default-file-batch-size-40';
/** The run ends only after its notifications have been delivered or have used up their retries. */
const AWAIT_NOTIFICATIONS = 'run-ends-after-its-notifications';

function setsFileBatchSize(raw: unknown): boolean {
  const settings = (raw as { settings?: { fileBatchSize?: unknown } } | null | undefined)?.settings;
  return settings?.fileBatchSize !== undefined;
}

const WRITING_PHASES = new Set<PhaseName>(['delete', ...IMPORT_PHASES]);

export async function reimport(rawInput: unknown): Promise<ReimportResult> {
  const parsed = reimportInputSchema.safeParse(rawInput ?? {});
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(`invalid input: ${describeIssues(parsed.error)}`, ERROR_CODES.INVALID_INPUT);
  }
  const options: ReimportOptions = parsed.data;
  // The default batch grew from 20 to 40 files: a run started before keeps 20 when its history is replayed.
  if (!setsFileBatchSize(rawInput) && !patched(FILE_BATCH_40)) options.settings.fileBatchSize = 20;
  const info = workflowInfo();
  const runId = info.workflowId;
  const acts = proxyActivities<ReimportActivities>(shortActivity);
  const heavy = proxyActivities<ReimportActivities>(tableWorkActivity);
  const notifier = proxyActivities<ReimportActivities>(notifyActivity);

  const phases = selectPhases(options);
  // Nothing is written without a backup to roll back to.
  if (!options.dryRun && phases.some((p) => WRITING_PHASES.has(p)) && !phases.includes('backup')) {
    phases.unshift('backup');
  }

  let settings = options.settings;
  let paused = false;
  let transferBudget = options.transferBudgetBytes;
  let currentChild: string | undefined;
  const progress: RunProgress = {
    runId,
    status: 'running',
    dryRun: options.dryRun,
    phases: phases.map((phase) => ({
      phase,
      status: 'pending',
      total: 0,
      done: 0,
      byState: { imported: 0, unlinked: 0, skipped: 0, failed: 0 },
      byReason: {},
      bytesDownloaded: 0,
      relinked: 0,
      cooldowns: 0,
    })),
    settings,
    transferBudgetBytes: transferBudget,
    bytesDownloaded: 0,
  };
  const phaseProgress = (phase: PhaseName) => progress.phases.find((p) => p.phase === phase)!;
  const tellChild = async (control: { paused?: boolean; settings?: typeof settings; transferBudgetBytes?: number }) => {
    if (!currentChild) return;
    try {
      await getExternalWorkflowHandle(currentChild).signal(phaseControlSignal, control);
    } catch {
      // The child finished between our check and the signal; the next child starts with the current state.
    }
  };

  setHandler(progressQuery, () => progress);
  setHandler(pauseSignal, async () => {
    paused = true;
    progress.status = 'paused';
    await tellChild({ paused: true });
  });
  setHandler(resumeSignal, async () => {
    paused = false;
    progress.status = 'running';
    await tellChild({ paused: false });
  });
  setHandler(phaseProgressSignal, (p: PhaseProgress) => {
    const target = phaseProgress(p.phase);
    Object.assign(target, p);
    progress.bytesDownloaded = progress.phases.reduce((s, x) => s + x.bytesDownloaded, 0);
    if (p.pausedForQuota && progress.status === 'running') progress.status = 'paused_for_quota';
    if (!p.pausedForQuota && progress.status === 'paused_for_quota') progress.status = 'running';
  });
  setHandler(
    setSettingsUpdate,
    async (patch) => {
      settings = settingsSchema.parse({ ...settings, ...patch });
      progress.settings = settings;
      await tellChild({ settings });
      return settings;
    },
    {
      validator: (patch) => {
        const r = settingsSchema.partial().strict().safeParse(patch);
        if (!r.success) throw new Error(`invalid settings: ${describeIssues(r.error)}`);
      },
    },
  );
  setHandler(
    setTransferBudgetUpdate,
    async (bytes) => {
      transferBudget = bytes;
      progress.transferBudgetBytes = bytes;
      await tellChild({ transferBudgetBytes: bytes });
      return bytes;
    },
    {
      validator: (bytes) => {
        if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error('budget must be a whole number of bytes');
      },
    },
  );

  // A notification never fails the run: one that is still undelivered after the notify profile's retries is given
  // up with a warning. The run does wait for them at its end, since an activity still pending when the workflow
  // closes is never run, and the last message is the one an operator waits for.
  const sent: Promise<void>[] = [];
  const notify = (event: Parameters<ReimportActivities['notify']>[0]) => {
    sent.push(
      notifier.notify(event).catch((err) => {
        // A cancelled run's scope cancels its pending notifications; the rolled_back message still follows.
        if (!isCancellation(err)) log.warn('notification not delivered', { type: event.type });
      }),
    );
  };
  const notificationsSent = async () => {
    if (patched(AWAIT_NOTIFICATIONS)) await Promise.all(sent);
  };

  // FileMaker overloaded before anything has changed only delays the run: a durable cooldown, then ask again.
  const preflight = await (async () => {
    for (let n = 1; ; n++) {
      try {
        return await acts.preflight({
          runId,
          phases,
          dryRun: options.dryRun,
          imagesFromExport: options.imagesFrom !== undefined,
        });
      } catch (err) {
        if (failureType(err) !== OVERLOADED) throw err;
        await sleep(cooldownSeconds(settings, n) * 1000);
      }
    }
  })();
  if (transferBudget === undefined) transferBudget = preflight.transferBudgetBytes;
  progress.transferBudgetBytes = transferBudget;
  const containers = { containerPath: preflight.containerPath, containerPathReason: preflight.containerPathReason };
  Object.assign(progress, containers);

  if (!options.dryRun) await acts.startRun({ runId, workflowId: runId, options });
  const startedAtMs = Date.now();
  notify({ type: 'run_started', runId, workflowId: runId, phases, sourceCounts: preflight.sourceCounts });

  const summaries: PhaseSummary[] = [];
  const compensations: { name: string; run: () => Promise<void> }[] = [];
  let backup: BackupResult | undefined;
  let validation: ValidationResult | undefined;

  try {
    for (const phase of phases) {
      await condition(() => !paused);
      const pp = phaseProgress(phase);
      pp.status = 'running';
      progress.currentPhase = phase;
      pp.startedAt = new Date().toISOString();
      setCurrentDetails(`Phase **${phase}** (${phases.indexOf(phase) + 1}/${phases.length})`);
      const workflowId = `${runId}/${phase}`;
      pp.workflowId = workflowId;
      currentChild = workflowId;
      const started = Date.now();
      const summary: PhaseSummary = {
        phase,
        status: 'completed',
        durationMs: 0,
        imported: 0,
        unlinked: 0,
        skipped: 0,
        failed: 0,
        bytesDownloaded: 0,
        relinked: 0,
        replaced: 0,
        retries: 0,
        cooldowns: 0,
        byReason: {},
        failedIds: {},
      };
      const childOpts = { workflowId, memo: info.memo };

      if (phase === 'backup' || phase === 'delete' || phase === 'validation') {
        if (options.dryRun) {
          summary.status = 'skipped';
          summary.note = 'dry-run: nothing is written';
        } else if (phase === 'backup') {
          backup = await executeChild(backupPhase, { ...childOpts, args: [{ runId }] });
          const snapshot = backup;
          // Registered right after the step succeeds: from here on, any failure restores this snapshot.
          compensations.push({
            name: 'delete objects created by this run',
            run: async () => {
              await heavy.deleteRunObjects({ runId });
            },
          });
          compensations.push({
            name: 'restore database snapshot',
            run: async () => {
              const restored: RestoreResult = await heavy.restore({ runId });
              if (!restored.verified) {
                throw ApplicationFailure.nonRetryable(
                  'restored fingerprints differ from the snapshot',
                  ERROR_CODES.RESTORE_FAILED,
                );
              }
              log.info('database restored', { tables: Object.keys(snapshot.tables).length });
            },
          });
          summary.note = `${Object.keys(backup.tables).length} tables, ${backup.objectsBefore} objects inventoried`;
        } else if (phase === 'delete') {
          const deleted = await executeChild(deletePhase, { ...childOpts, args: [{ runId }] });
          summary.note = `deleted ${Object.values(deleted).reduce((a, b) => a + b, 0)} rows`;
        } else {
          const tables = summaries
            .filter((s) => IMPORT_PHASE_SET.has(s.phase))
            .flatMap((s) =>
              Object.values(SOURCE_TABLES)
                .filter((t) => t.phase === s.phase)
                .map((t) => t.name),
            );
          validation = await executeChild(validationPhase, { ...childOpts, args: [{ runId, tables }] });
          summary.note = `${validation.tables.length} tables reconciled, ${validation.objectMismatches.length} object mismatches`;
        }
      } else {
        const child = await startChild(importPhase, {
          ...childOpts,
          args: [
            {
              runId,
              phase,
              parentWorkflowId: runId,
              dryRun: options.dryRun,
              writeBack: options.writeBack,
              settings,
              paused,
              transferBudgetBytes: transferBudget,
              imagesFrom: phase === 'images' ? options.imagesFrom : undefined,
              containerPath: preflight.containerPath,
            },
          ],
        });
        // A pause, settings or budget that arrived while the child was being started reached no one: send the
        // state as it is now (the child applies the same state twice harmlessly).
        await tellChild({ paused, settings, transferBudgetBytes: transferBudget });
        const result: PhaseResult = await child.result();
        Object.assign(summary, result.byState, {
          bytesDownloaded: result.bytesDownloaded,
          relinked: result.relinked,
          // A phase that began before replaced files were counted reports none.
          replaced: result.replaced ?? 0,
          retries: result.retries,
          cooldowns: result.cooldowns,
          byReason: result.byReason,
          failedIds: result.failedIds,
          maxHistoryLength: result.maxHistoryLength,
        });
      }
      summary.durationMs = Date.now() - started;
      summaries.push(summary);
      pp.status =
        summary.status === 'skipped' ? 'skipped' : summary.status === 'not_run' ? 'not_implemented' : 'completed';
      pp.finishedAt = new Date().toISOString();
      currentChild = undefined;
      notify({
        type: 'phase_completed',
        runId,
        workflowId,
        phase,
        counts: {
          imported: summary.imported,
          unlinked: summary.unlinked,
          skipped: summary.skipped,
          failed: summary.failed,
        },
        durationMs: summary.durationMs,
      });
    }
  } catch (err) {
    const cause = describeFailure(err);
    const failedPhase = progress.currentPhase;
    if (failedPhase) phaseProgress(failedPhase).status = 'failed';
    progress.status = 'rolling_back';
    setCurrentDetails(`Rolling back: ${cause}`);
    const reasonCode = failureCode(err);
    notify({ type: 'run_failed', runId, workflowId: runId, phase: failedPhase, reasonCode });
    // Compensations must finish even when the run was cancelled.
    await CancellationScope.nonCancellable(async () => {
      const errors: string[] = [];
      for (const c of [...compensations].reverse()) {
        try {
          await c.run();
        } catch (compErr) {
          errors.push(`${c.name}: ${describeFailure(compErr)}`);
          log.error('compensation failed', { step: c.name, error: describeFailure(compErr) });
        }
      }
      const status = errors.length === 0 ? 'rolled_back' : 'failed';
      progress.status = status === 'rolled_back' ? 'rolled_back' : 'failed';
      if (!options.dryRun) {
        await acts.finishRun({
          runId,
          status,
          report: buildReport(
            runId,
            options,
            summaries,
            backup,
            validation,
            {
              cause,
              failedPhase,
              compensationErrors: errors,
            },
            containers,
          ),
        });
      }
      if (status === 'rolled_back') {
        notify({
          type: 'rolled_back',
          runId,
          workflowId: runId,
          phases: summaries.map((x) => x.phase),
          reasonCode,
          durationMs: Date.now() - startedAtMs,
        });
      }
      await notificationsSent();
      if (errors.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `rollback incomplete after: ${cause}; ${errors.join('; ')}`,
          ERROR_CODES.ROLLBACK_FAILED,
        );
      }
    });
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.nonRetryable(
      `run rolled back (${failedPhase ?? 'pre-flight'} failed): ${cause}`,
      ERROR_CODES.RUN_ROLLED_BACK,
    );
  }

  progress.status = 'completed';
  progress.currentPhase = undefined;
  const report = buildReport(runId, options, summaries, backup, validation, undefined, containers);
  const { reportKey } = options.dryRun
    ? { reportKey: undefined }
    : await acts.finishRun({ runId, status: 'completed', report });
  setCurrentDetails(`Completed${options.dryRun ? ' (dry-run)' : ''}`);
  notify({
    type: 'run_completed',
    runId,
    workflowId: runId,
    durationMs: Date.now() - startedAtMs,
    counts: summaries.reduce<Record<string, number>>((c, x) => {
      for (const k of ['imported', 'unlinked', 'skipped', 'failed'] as const) c[k] = (c[k] ?? 0) + x[k];
      return c;
    }, {}),
  });
  await notificationsSent();
  const bytes = summaries.reduce((s, p) => s + p.bytesDownloaded, 0);
  return {
    runId,
    status: options.dryRun ? 'dry_run' : 'completed',
    dryRun: options.dryRun,
    phases: summaries.map(
      ({ phase, status, imported, unlinked, skipped, failed, bytesDownloaded, relinked, replaced }) => ({
        phase,
        status,
        imported,
        unlinked,
        skipped,
        failed,
        bytesDownloaded,
        relinked,
        replaced,
      }),
    ),
    bytesDownloaded: bytes,
    ...containers,
    largestHistory: largestHistory(summaries),
    transferLeftAfterBytes: options.dryRun ? preflight.transferLeftBytes - bytes : undefined,
    reportKey,
  };
}

/** The longest history among the parent's (so far) and the import phases' executions. */
function largestHistory(phases: readonly PhaseSummary[]): number {
  return Math.max(workflowInfo().historyLength, ...phases.map((p) => p.maxHistoryLength ?? 0));
}

function buildReport(
  runId: string,
  options: ReimportOptions,
  phases: PhaseSummary[],
  backup: BackupResult | undefined,
  validation: ValidationResult | undefined,
  failure: { cause: string; failedPhase?: PhaseName; compensationErrors: string[] } | undefined,
  containers: { containerPath: ContainerPath; containerPathReason: string },
) {
  return {
    runId,
    options,
    ...containers,
    phases,
    backup: backup
      ? { tables: backup.tables, objectsBefore: backup.objectsBefore, backupKey: backup.backupKey }
      : undefined,
    validation,
    failure,
    largestHistory: largestHistory(phases),
  };
}

/** The machine-readable code of a failure chain's root: its ApplicationFailure type, or CANCELLED. */
export function failureCode(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; e && depth < 6; depth++) {
    if (e instanceof ApplicationFailure && e.type)
      return /^[A-Z][A-Z0-9_]*$/.test(e.type) ? e.type : ERROR_CODES.APPLICATION_ERROR;
    if (isCancellation(e)) return ERROR_CODES.CANCELLED;
    e = (e as { cause?: unknown }).cause;
  }
  return ERROR_CODES.UNKNOWN_FAILURE;
}

/** A short, data-free description of a failure chain (types and messages of our own errors). */
export function describeFailure(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    if (e instanceof ApplicationFailure) {
      parts.push(`${e.type ?? 'Error'}: ${e.message}`);
      break;
    }
    if (e instanceof ChildWorkflowFailure) {
      parts.push(`child ${e.execution?.workflowId ?? ''}`.trim());
    } else if (isCancellation(e)) {
      parts.push('cancelled');
      break;
    } else if (e instanceof Error) {
      parts.push(e.message);
    }
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join(' ← ') || 'unknown failure';
}
