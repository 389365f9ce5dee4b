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
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import type {
  BackupResult,
  ContainerPath,
  PreflightResult,
  ReimportActivities,
  RestoreResult,
  ValidationResult,
  VanishedCount,
} from '../activities/types';
import { IMPORT_PHASES, SOURCE_TABLES, type ImportPhase, type PhaseName } from '../domain/tables';
import {
  confirmVanishedUpdate,
  described,
  pauseSignal,
  phaseControlSignal,
  phaseProgressSignal,
  progressQuery,
  resumeSignal,
  setSettingsUpdate,
  setTransferBudgetUpdate,
  type PhaseControl,
  type RunProgress,
} from './messages';
import {
  describeIssues,
  reimportInputSchema,
  selectPhases,
  settingsSchema,
  type ReimportOptions,
  type Settings,
} from './options';
import { importPhase, tablesOf, type PhaseResult } from './phase';
import { ERROR_CODES, describeFailure, failureCode, failureType } from './failures';
import {
  addPhaseResult,
  applyPhaseReport,
  countsLine,
  emptySummary,
  finishPhaseProgress,
  newRunProgress,
  phaseProgressOf,
  totalCounts,
  type PhaseSummary,
} from './progress';
import { notifyActivity, shortActivity, tableWorkActivity } from './profiles';
import { Saga } from './saga';
import { cooldownSeconds, cooldownSummary } from './scheduler';
import { RunSearchAttributes } from './search-attributes';
import { backupPhase, deletePhase, validationPhase } from './steps';

export type { PhaseSummary } from './progress';

export interface ReimportResult {
  runId: string;
  status: 'completed' | 'dry_run';
  dryRun: boolean;
  phases: Pick<
    PhaseSummary,
    | 'phase'
    | 'status'
    | 'imported'
    | 'unlinked'
    | 'skipped'
    | 'failed'
    | 'bytesDownloaded'
    | 'relinked'
    | 'replaced'
    | 'delta'
  >[];
  bytesDownloaded: number;
  /** How the files phases read containers (OData's `$value` or the Data API) and why, from the pre-flight. */
  containerPath?: ContainerPath;
  containerPathReason?: string;
  /** The longest history of any execution of this run (the parent's and every import phase's), in events. */
  largestHistory: number;
  /** Dry-run: transfer quota left after a real run would download what it needs. */
  transferLeftAfterBytes?: number;
  /** Per table, records gone from FileMaker since the last completed run (read before the delete phase). */
  vanished?: VanishedCount[];
  reportKey?: string;
}

const IMPORT_PHASE_SET = new Set<string>(IMPORT_PHASES);
const FILE_BATCH_40 = 'default-file-batch-size-40';
/** The default chunk of core records grew from 500 to 1,000 (a run started before keeps 500 when replayed). */
const CHUNK_1000 = 'default-chunk-size-1000';
/** Before the delete phase, a census of what vanished from FileMaker; beyond the threshold the run waits. */
const VANISHED_GATE = 'delete-waits-when-records-vanished';
/** The run ends only after its notifications have been delivered or have used up their retries. */
const AWAIT_NOTIFICATIONS = 'run-ends-after-its-notifications';

/** Whether the run's input sets this setting itself (else it takes the default). */
function setsSetting(raw: unknown, name: keyof Settings): boolean {
  const settings = (raw as { settings?: Partial<Record<keyof Settings, unknown>> } | null | undefined)?.settings;
  return settings?.[name] !== undefined;
}

const WRITING_PHASES = new Set<PhaseName>(['delete', ...IMPORT_PHASES]);

/** What the operator changes while the run goes on, and the phase child it is forwarded to. */
interface Controls {
  settings: Settings;
  paused: boolean;
  transferBudgetBytes?: number;
  /** Workflow id of the phase child running now. */
  child?: string;
  /** The operator confirmed that records vanished beyond the threshold may go (confirmVanished). */
  vanishedConfirmed?: boolean;
}

/** The run as its phases, its rollback and its report see it. */
interface RunContext {
  runId: string;
  options: ReimportOptions;
  phases: PhaseName[];
  memo: Record<string, unknown> | undefined;
  acts: ActivityInterfaceFor<ReimportActivities>;
  heavy: ActivityInterfaceFor<ReimportActivities>;
  saga: Saga;
  controls: Controls;
  tellChild: (control: PhaseControl) => Promise<void>;
  progress: RunProgress;
  /** The Web UI's search attributes, kept in step with `progress`. */
  attributes: RunSearchAttributes;
  notifications: Notifications;
  preflight: PreflightResult;
  containers: { containerPath: ContainerPath; containerPathReason: string };
  startedAtMs: number;
  /** The phases completed so far. */
  summaries: PhaseSummary[];
  backup?: BackupResult;
  validation?: ValidationResult;
}

/** Runs one phase as the child workflow `workflowId`, filling in its summary. */
type PhaseStep = (run: RunContext, summary: PhaseSummary, workflowId: string) => Promise<void>;

/**
 * The run's notifications. One never fails the run: one that is still undelivered after the notify profile's retries
 * is given up with a warning. The run does wait for them at its end, since an activity still pending when the
 * workflow closes is never run, and the last message is the one an operator waits for.
 */
class Notifications {
  private readonly notifier = proxyActivities<ReimportActivities>(notifyActivity);
  private readonly sent: Promise<void>[] = [];

  send(event: Parameters<ReimportActivities['notify']>[0]): void {
    this.sent.push(
      this.notifier.notify(event).catch((err) => {
        // A cancelled run's scope cancels its pending notifications; the rolled_back message still follows.
        if (!isCancellation(err)) log.warn('notification not delivered', { type: event.type });
      }),
    );
  }

  async delivered(): Promise<void> {
    if (patched(AWAIT_NOTIFICATIONS)) await Promise.all(this.sent);
  }
}

export async function reimport(rawInput: unknown): Promise<ReimportResult> {
  const parsed = reimportInputSchema.safeParse(rawInput ?? {});
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(`invalid input: ${describeIssues(parsed.error)}`, ERROR_CODES.INVALID_INPUT);
  }
  const options: ReimportOptions = parsed.data;
  // The default batch grew from 20 to 40 files: a run started before keeps 20 when its history is replayed.
  if (!setsSetting(rawInput, 'fileBatchSize') && !patched(FILE_BATCH_40)) options.settings.fileBatchSize = 20;
  if (!setsSetting(rawInput, 'chunkSize') && !patched(CHUNK_1000)) options.settings.chunkSize = 500;
  const info = workflowInfo();
  const runId = info.workflowId;
  const acts = proxyActivities<ReimportActivities>(shortActivity);

  const phases = selectPhases(options);
  // Nothing is written without a backup to roll back to.
  if (!options.dryRun && phases.some((p) => WRITING_PHASES.has(p)) && !phases.includes('backup')) {
    phases.unshift('backup');
  }

  const controls: Controls = {
    settings: options.settings,
    paused: false,
    transferBudgetBytes: options.transferBudgetBytes,
  };
  const progress = newRunProgress({
    runId,
    dryRun: options.dryRun,
    phases,
    settings: controls.settings,
    transferBudgetBytes: controls.transferBudgetBytes,
  });
  const tellChild = async (control: PhaseControl) => {
    if (!controls.child) return;
    try {
      await getExternalWorkflowHandle(controls.child).signal(phaseControlSignal, control);
    } catch {
      // The child finished between our check and the signal; the next child starts with the current state.
    }
  };
  const attributes = new RunSearchAttributes();
  handleOperatorMessages(controls, progress, attributes, tellChild);
  const notifications = new Notifications();

  // FileMaker overloaded before anything has changed only delays the run: a durable cooldown, then ask again.
  const preflight = await untilNotOverloaded(controls, () =>
    acts.preflight({
      runId,
      phases,
      dryRun: options.dryRun,
      imagesFromExport: options.imagesFrom !== undefined,
      inFlight: controls.settings.concurrency,
    }),
  ).catch(failedBeforeStart(progress, attributes));
  if (controls.transferBudgetBytes === undefined) controls.transferBudgetBytes = preflight.transferBudgetBytes;
  progress.transferBudgetBytes = controls.transferBudgetBytes;
  const containers = { containerPath: preflight.containerPath, containerPathReason: preflight.containerPathReason };
  Object.assign(progress, containers);

  if (!options.dryRun) {
    await acts.startRun({ runId, workflowId: runId, options }).catch(failedBeforeStart(progress, attributes));
  }
  const run: RunContext = {
    runId,
    options,
    phases,
    memo: info.memo,
    acts,
    heavy: proxyActivities<ReimportActivities>(tableWorkActivity),
    saga: new Saga(),
    controls,
    tellChild,
    progress,
    attributes,
    notifications,
    preflight,
    containers,
    startedAtMs: Date.now(),
    summaries: [],
  };
  notifications.send({ type: 'run_started', runId, workflowId: runId, phases, sourceCounts: preflight.sourceCounts });

  try {
    for (const phase of phases) await runPhase(run, phase);
  } catch (err) {
    return await rollBack(run, err);
  }
  return complete(run);
}

/**
 * A metadata call that FileMaker's overload only delays: a durable cooldown, growing with each overload, then again.
 * The cooldowns follow `controls.settings` as they are at each overload (the cut-over's reads use it too).
 */
export async function untilNotOverloaded<T>(controls: { settings: Settings }, call: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await call();
    } catch (err) {
      if (failureType(err) !== ERROR_CODES.FILEMAKER_OVERLOADED) throw err;
      const seconds = cooldownSeconds(controls.settings, n);
      await sleep(seconds * 1000, { summary: cooldownSummary(seconds) });
    }
  }
}

/** A run that ends before its first phase changed nothing: it is only marked failed (cancelled included), then ends. */
function failedBeforeStart(progress: RunProgress, attributes: RunSearchAttributes) {
  return (err: unknown): never => {
    progress.status = 'failed';
    attributes.update(progress);
    throw err;
  };
}

/** Waits out a pause, then runs `phase` as a child, keeping the progress model and the operator informed. */
async function runPhase(run: RunContext, phase: PhaseName): Promise<void> {
  const { runId, progress, phases } = run;
  await condition(() => !run.controls.paused);
  const pp = phaseProgressOf(progress, phase);
  pp.status = 'running';
  progress.currentPhase = phase;
  pp.startedAt = new Date().toISOString();
  run.attributes.update(progress);
  setCurrentDetails(`Phase **${phase}** (${phases.indexOf(phase) + 1}/${phases.length})`);
  const workflowId = `${runId}/${phase}`;
  pp.workflowId = workflowId;
  run.controls.child = workflowId;
  const started = Date.now();
  const summary = emptySummary(phase);
  await PHASE_STEPS[phase](run, summary, workflowId);
  summary.durationMs = Date.now() - started;
  run.summaries.push(summary);
  finishPhaseProgress(pp, summary, new Date().toISOString());
  run.controls.child = undefined;
  run.notifications.send({
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

/**
 * After a failed phase or a cancel: the saga's compensations last-first, the run recorded with its cause, the
 * operator told — all of it not cancellable — then the run fails (RUN_ROLLED_BACK, or ROLLBACK_FAILED when a
 * compensation failed), or ends cancelled.
 */
async function rollBack(run: RunContext, err: unknown): Promise<never> {
  const { runId, progress, summaries } = run;
  const cause = describeFailure(err);
  const failedPhase = progress.currentPhase;
  if (failedPhase) phaseProgressOf(progress, failedPhase).status = 'failed';
  progress.status = 'rolling_back';
  run.attributes.update(progress);
  setCurrentDetails(`Rolling back: ${cause}`);
  const reasonCode = failureCode(err);
  run.notifications.send({ type: 'run_failed', runId, workflowId: runId, phase: failedPhase, reasonCode });
  // The rollback's bookkeeping must finish even when the run was cancelled, like the compensations themselves.
  await CancellationScope.nonCancellable(async () => {
    const errors = await run.saga.compensate();
    const status = errors.length === 0 ? 'rolled_back' : 'failed';
    progress.status = status;
    run.attributes.update(progress);
    if (!run.options.dryRun) {
      await run.acts.finishRun({
        runId,
        status,
        report: buildReport(run, { cause, failedPhase, compensationErrors: errors }),
      });
    }
    if (status === 'rolled_back') {
      run.notifications.send({
        type: 'rolled_back',
        runId,
        workflowId: runId,
        phases: summaries.map((x) => x.phase),
        reasonCode,
        durationMs: Date.now() - run.startedAtMs,
      });
    }
    await run.notifications.delivered();
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

/** Every phase done: the run recorded with its report, the operator told; returns the counts. */
async function complete(run: RunContext): Promise<ReimportResult> {
  const { runId, options, progress, summaries } = run;
  progress.status = 'completed';
  progress.currentPhase = undefined;
  run.attributes.update(progress);
  const report = buildReport(run, undefined);
  const { reportKey } = options.dryRun
    ? { reportKey: undefined }
    : await run.acts.finishRun({ runId, status: 'completed', report });
  setCurrentDetails(
    [
      `Completed${options.dryRun ? ' (dry-run)' : ''}`,
      ...summaries.filter((s) => IMPORT_PHASE_SET.has(s.phase)).map((s) => `- ${countsLine(s.phase, s, s.delta)}`),
    ].join('\n'),
  );
  run.notifications.send({
    type: 'run_completed',
    runId,
    workflowId: runId,
    durationMs: Date.now() - run.startedAtMs,
    counts: totalCounts(summaries),
  });
  await run.notifications.delivered();
  const bytes = summaries.reduce((s, p) => s + p.bytesDownloaded, 0);
  return {
    runId,
    status: options.dryRun ? 'dry_run' : 'completed',
    dryRun: options.dryRun,
    phases: summaries.map(
      ({ phase, status, imported, unlinked, skipped, failed, bytesDownloaded, relinked, replaced, delta }) => ({
        phase,
        status,
        imported,
        unlinked,
        skipped,
        failed,
        bytesDownloaded,
        relinked,
        replaced,
        ...(delta ? { delta } : {}),
      }),
    ),
    bytesDownloaded: bytes,
    ...run.containers,
    largestHistory: largestHistory(summaries),
    transferLeftAfterBytes: options.dryRun ? run.preflight.transferLeftBytes - bytes : undefined,
    ...(run.progress.vanished ? { vanished: run.progress.vanished } : {}),
    reportKey,
  };
}

/** The `progress` query, and the operator's messages: each changes `controls` and reaches the running phase child. */
function handleOperatorMessages(
  controls: Controls,
  progress: RunProgress,
  attributes: RunSearchAttributes,
  tellChild: (control: PhaseControl) => Promise<void>,
): void {
  setHandler(progressQuery, () => progress, described(progressQuery));
  const setPaused = async (paused: boolean) => {
    controls.paused = paused;
    progress.status = paused ? 'paused' : 'running';
    attributes.update(progress);
    await tellChild({ paused });
  };
  setHandler(pauseSignal, () => setPaused(true), described(pauseSignal));
  setHandler(resumeSignal, () => setPaused(false), described(resumeSignal));
  setHandler(
    phaseProgressSignal,
    (p) => {
      applyPhaseReport(progress, p);
      attributes.update(progress);
    },
    described(phaseProgressSignal),
  );
  setHandler(
    setSettingsUpdate,
    async (patch) => {
      controls.settings = settingsSchema.parse({ ...controls.settings, ...patch });
      progress.settings = controls.settings;
      await tellChild({ settings: controls.settings });
      return controls.settings;
    },
    {
      ...described(setSettingsUpdate),
      validator: (patch) => {
        const r = settingsSchema.partial().strict().safeParse(patch);
        if (!r.success) throw new Error(`invalid settings: ${describeIssues(r.error)}`);
      },
    },
  );
  setHandler(
    confirmVanishedUpdate,
    () => {
      controls.vanishedConfirmed = true;
      return 'confirmed: the run continues to the delete phase';
    },
    {
      ...described(confirmVanishedUpdate),
      validator: () => {
        if (progress.status !== 'awaiting_confirmation') throw new Error('the run is not waiting for a confirmation');
      },
    },
  );
  setHandler(
    setTransferBudgetUpdate,
    async (bytes) => {
      controls.transferBudgetBytes = bytes;
      progress.transferBudgetBytes = bytes;
      await tellChild({ transferBudgetBytes: bytes });
      return bytes;
    },
    {
      ...described(setTransferBudgetUpdate),
      validator: (bytes) => {
        if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error('budget must be a whole number of bytes');
      },
    },
  );
}

/** How a phase child is started: its id, the run's memo, and the line the Web UI shows for it. */
function childOptions(run: RunContext, workflowId: string) {
  const phase = run.progress.currentPhase;
  const details =
    phase && IMPORT_PHASE_SET.has(phase)
      ? `Tables: ${tablesOf(phase as ImportPhase).join(', ')}${run.options.dryRun ? '\n\nDry run: metadata only' : ''}`
      : undefined;
  return {
    workflowId,
    memo: run.memo,
    staticSummary: `Phase ${phase ?? ''} of run ${run.runId}`,
    staticDetails: details,
  };
}

/** Snapshots the database and the S3 inventory; from here on, any failure restores the snapshot. */
const backupStep: PhaseStep = async (run, summary, workflowId) => {
  const snapshot = await executeChild(backupPhase, { ...childOptions(run, workflowId), args: [{ runId: run.runId }] });
  run.backup = snapshot;
  run.saga.add('delete objects created by this run', async () => {
    await run.heavy.deleteRunObjects({ runId: run.runId });
  });
  run.saga.add('restore database snapshot', async () => {
    const restored: RestoreResult = await run.heavy.restore({ runId: run.runId });
    if (!restored.verified) {
      throw ApplicationFailure.nonRetryable(
        'restored fingerprints differ from the snapshot',
        ERROR_CODES.RESTORE_FAILED,
      );
    }
    log.info('database restored', { tables: Object.keys(snapshot.tables).length });
  });
  summary.note = `${Object.keys(snapshot.tables).length} tables, ${snapshot.objectsBefore} objects inventoried`;
};

/**
 * Before anything is deleted: per table of the run, how many records the last completed run had that FileMaker no
 * longer has. When a table lost more than the run's `vanishedThreshold`, the run tells the operator and waits for
 * `confirmVanished` (a cancel rolls it back, changing nothing). A dry run only reports the counts.
 */
async function vanishedGate(run: RunContext): Promise<void> {
  const tables = run.phases.filter((p) => IMPORT_PHASE_SET.has(p)).flatMap((p) => tablesOf(p as ImportPhase));
  if (tables.length === 0) return;
  // An incremental run reads its manifests here, before anything is deleted, and gates on their deltas; its phases
  // then plan each table on the manifest already read. Any other run (and a dry run) counts with a census.
  const upFront = run.options.mode === 'incremental' && !run.options.dryRun;
  const census = await untilNotOverloaded(run.controls, () =>
    upFront
      ? run.acts.readManifests({
          runId: run.runId,
          tables,
          ...(run.options.imagesFrom ? { sourceKeyFields: { API_Images: 'recid' } } : {}),
          inFlight: run.controls.settings.concurrency,
        })
      : run.acts.vanishedCensus({ runId: run.runId, tables, inFlight: run.controls.settings.concurrency }),
  );
  run.progress.vanished = census;
  const threshold = run.options.vanishedThreshold;
  const over = census.filter((c) => c.previous > 0 && c.vanished / c.previous > threshold);
  if (over.length === 0 || run.options.dryRun) return;
  const byTable = (f: (c: VanishedCount) => number) => Object.fromEntries(over.map((c) => [c.table, f(c)]));
  run.progress.status = 'awaiting_confirmation';
  run.attributes.update(run.progress);
  setCurrentDetails(
    `Waiting for **confirmVanished** (or a cancel): ${over.map((c) => `${c.table} ${c.vanished} of ${c.previous}`).join(', ')} gone from FileMaker since the last run`,
  );
  run.notifications.send({
    type: 'vanished_over_threshold',
    runId: run.runId,
    workflowId: run.runId,
    vanished: byTable((c) => c.vanished),
    previous: byTable((c) => c.previous),
    thresholdPercent: Math.round(threshold * 10_000) / 100,
  });
  await condition(() => run.controls.vanishedConfirmed === true);
  run.progress.status = run.controls.paused ? 'paused' : 'running';
  run.attributes.update(run.progress);
}

const deleteStep: PhaseStep = async (run, summary, workflowId) => {
  if (run.options.mode === 'incremental') {
    summary.status = 'skipped';
    summary.note = 'incremental: rows are replaced record by record, and those of vanished records deleted';
    return;
  }
  const deleted = await executeChild(deletePhase, { ...childOptions(run, workflowId), args: [{ runId: run.runId }] });
  summary.note = `deleted ${Object.values(deleted).reduce((a, b) => a + b, 0)} rows`;
};

/** Reconciles the tables of the import phases that ran before it. */
const validationStep: PhaseStep = async (run, summary, workflowId) => {
  const tables = run.summaries
    .filter((s) => IMPORT_PHASE_SET.has(s.phase))
    .flatMap((s) =>
      Object.values(SOURCE_TABLES)
        .filter((t) => t.phase === s.phase)
        .map((t) => t.name),
    );
  const validation = await executeChild(validationPhase, {
    ...childOptions(run, workflowId),
    args: [{ runId: run.runId, tables, inFlight: run.controls.settings.concurrency }],
  });
  run.validation = validation;
  summary.note = `${validation.tables.length} tables reconciled, ${validation.objectMismatches.length} object mismatches`;
};

/** An import phase child, started with the operator's controls as they are, its result added to the summary. */
const importStep =
  (phase: ImportPhase): PhaseStep =>
  async (run, summary, workflowId) => {
    const { options, controls } = run;
    const child = await startChild(importPhase, {
      ...childOptions(run, workflowId),
      args: [
        {
          runId: run.runId,
          phase,
          parentWorkflowId: run.runId,
          dryRun: options.dryRun,
          writeBack: options.writeBack,
          settings: controls.settings,
          paused: controls.paused,
          transferBudgetBytes: controls.transferBudgetBytes,
          imagesFrom: phase === 'images' ? options.imagesFrom : undefined,
          containerPath: run.containers.containerPath,
          ...(options.mode === 'incremental' ? { incremental: true } : {}),
        },
      ],
    });
    // A pause, settings or budget that arrived while the child was being started reached no one: send the state as
    // it is now (the child applies the same state twice harmlessly).
    await run.tellChild({
      paused: controls.paused,
      settings: controls.settings,
      transferBudgetBytes: controls.transferBudgetBytes,
    });
    const result: PhaseResult = await child.result();
    addPhaseResult(summary, result);
  };

/** The phases that only write (or check what was written) do nothing in a dry run. */
const writesOnly =
  (step: PhaseStep): PhaseStep =>
  async (run, summary, workflowId) => {
    if (!run.options.dryRun) return step(run, summary, workflowId);
    summary.status = 'skipped';
    summary.note = 'dry-run: nothing is written';
  };

/** How each phase runs. */
const PHASE_STEPS: Record<PhaseName, PhaseStep> = {
  backup: writesOnly(backupStep),
  delete: async (run, summary, workflowId) => {
    if (patched(VANISHED_GATE)) await vanishedGate(run);
    await writesOnly(deleteStep)(run, summary, workflowId);
  },
  patients: importStep('patients'),
  appointments: importStep('appointments'),
  notes: importStep('notes'),
  referrers: importStep('referrers'),
  documents: importStep('documents'),
  images: importStep('images'),
  validation: writesOnly(validationStep),
};

/** The longest history among the parent's (so far) and the import phases' executions. */
function largestHistory(phases: readonly PhaseSummary[]): number {
  return Math.max(workflowInfo().historyLength, ...phases.map((p) => p.maxHistoryLength ?? 0));
}

function buildReport(
  run: RunContext,
  failure: { cause: string; failedPhase?: PhaseName; compensationErrors: string[] } | undefined,
) {
  const { backup } = run;
  return {
    runId: run.runId,
    options: run.options,
    ...run.containers,
    phases: run.summaries,
    backup: backup
      ? { tables: backup.tables, objectsBefore: backup.objectsBefore, backupKey: backup.backupKey }
      : undefined,
    validation: run.validation,
    failure,
    largestHistory: largestHistory(run.summaries),
  };
}
