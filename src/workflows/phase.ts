/**
 * importPhase: one import phase (patients, appointments, notes, referrers, documents, images) as a child of the
 * reimport. For each source table of the phase: build the manifest (every id that exists now, stored in PostgreSQL),
 * then import it by chunks of manifest positions in a sliding window, then reconcile (every manifest id terminal).
 *
 * Input: PhaseInput (ids, settings, and on continue-as-new the carried state). Result: PhaseResult (counts only).
 * Messages: `phaseControl` (pause/resume/settings/budget forwarded by the parent), `pause`, `resume`, and the
 * `phaseProgress` query. Overload answers from FileMaker become a durable, growing cooldown timer and a smaller
 * window; a spent transfer budget pauses the phase until the budget is raised. Ends failed when a chunk fails for
 * good or reconciliation finds an id without a terminal state — the parent then rolls the run back.
 */
import {
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
  setCurrentDetails,
  isCancellation,
  CancellationScope,
  type ActivityInterfaceFor,
  type ExternalWorkflowHandle,
} from '@temporalio/workflow';
import {
  emptyChunkResult,
  type ContainerPath,
  type ReimportActivities,
  type TableReconciliation,
} from '../activities/types';
import { SOURCE_TABLES, type ImportPhase, type SourceTableName } from '../domain/tables';
import {
  described,
  pauseSignal,
  phaseControlSignal,
  phaseProgressQuery,
  phaseProgressSignal,
  resumeSignal,
  type PhaseProgress,
} from './messages';
import type { Settings } from './options';
import type { ExportLocation } from '../export/location';
import { ERROR_CODES, failureType } from './failures';
import { chunkActivity, fileTransferActivity, notifyActivity, shortActivity } from './profiles';
import { addBatch, countsLine, emptyPhaseResult, startedPhaseProgress, type PhaseResult } from './progress';
import { PhaseScheduler, cooldownSummary, historyFull, relinkBatchSize } from './scheduler';

export type { PhaseResult } from './progress';

export interface PhaseInput {
  runId: string;
  phase: ImportPhase;
  parentWorkflowId: string;
  dryRun: boolean;
  writeBack: boolean;
  settings: Settings;
  /** The annual FileMaker transfer budget in bytes (files phases); the activities check it before each download. */
  transferBudgetBytes?: number;
  paused?: boolean;
  /** Images phase: read files from the FileMaker Pro bulk export. */
  imagesFrom?: ExportLocation;
  /** Files phases: `dataapi` when the pre-flight found OData's `$value` unusable. */
  containerPath?: ContainerPath;
  /**
   * An incremental run: each table's unchanged records are carried over when its manifest is built, and the chunks
   * read only its work list; after its last chunk, rows no record accounts for any more are deleted.
   */
  incremental?: boolean;
  /** Carried across continue-as-new. */
  carried?: PhaseState;
}

interface PhaseState {
  tableIndex: number;
  /** Manifest offsets of the current table still to import. */
  pending: number[] | null;
  manifestTotal: number;
  /**
   * Records per batch of the current table, fixed when its manifest is read: the pending offsets are spaced by it, so
   * a size the operator changes later applies from the next table (relink batches: see relinkBatchSize). Absent in
   * histories recorded before it was kept for every table, which take the settings' size.
   */
  batchSize?: number;
  result: PhaseResult;
  progress: PhaseProgress;
  startedAtMs: number;
}

/**
 * Tables of a phase in import order. Contact details come before patients: each detail is kept on its own and the
 * patients' contact JSON is folded from them when API_Contacts finishes.
 */
export function tablesOf(phase: ImportPhase): SourceTableName[] {
  const order: Partial<Record<SourceTableName, number>> = {
    API_Clinic_Name: 0,
    API_Contact_Details: 1,
    API_Contacts: 2,
  };
  return Object.values(SOURCE_TABLES)
    .filter((t) => t.phase === phase)
    .map((t) => t.name)
    .sort((a, b) => (order[a] ?? 9) - (order[b] ?? 9));
}

/** A table is finished (contact details folded into their owners) by the activity that reconciles it. */
const FINISH_IN_RECONCILE = 'table-finished-in-its-reconciliation';

const isFilesPhase = (phase: ImportPhase) => phase === 'documents' || phase === 'images';

export async function importPhase(input: PhaseInput): Promise<PhaseResult> {
  const run = new PhaseRun(input);
  const { state, sched } = run;
  setHandler(phaseProgressQuery, () => ({ ...state.progress }), described(phaseProgressQuery));
  setHandler(pauseSignal, () => sched.control({ paused: true }), described(pauseSignal));
  setHandler(resumeSignal, () => sched.control({ paused: false }), described(resumeSignal));
  setHandler(phaseControlSignal, (c) => sched.control(c), described(phaseControlSignal));

  const tables = tablesOf(input.phase);
  for (; state.tableIndex < tables.length; state.tableIndex++) {
    const table = tables[state.tableIndex]!;
    state.progress.table = table;
    if (input.dryRun) {
      await run.estimate(table);
      continue;
    }
    if (state.pending === null) await run.buildManifest(table);
    await run.importBatches(table, state.pending!);
    await run.reconcile(table);
  }

  state.result.durationMs = Date.now() - state.startedAtMs;
  run.noteHistory();
  state.progress.status = 'completed';
  state.progress.finishedAt = new Date().toISOString();
  await run.report(true);
  setCurrentDetails(countsLine(input.phase, state.result.byState, state.result.delta));
  return state.result;
}

/** One execution of an import phase: its carried state, its scheduler, and the steps `importPhase` drives. */
class PhaseRun {
  readonly state: PhaseState;
  readonly sched: PhaseScheduler;
  private readonly files: boolean;
  private readonly exportSource: ExportLocation | undefined;
  private readonly acts = proxyActivities<ReimportActivities>(shortActivity);
  private readonly chunkActs: ActivityInterfaceFor<ReimportActivities>;
  private readonly notifier = proxyActivities<ReimportActivities>(notifyActivity);
  private readonly parent: ExternalWorkflowHandle;
  private lastReport = 0;

  constructor(private readonly input: PhaseInput) {
    this.files = isFilesPhase(input.phase);
    this.exportSource = input.phase === 'images' ? input.imagesFrom : undefined;
    this.chunkActs = proxyActivities<ReimportActivities>(
      this.files ? { ...fileTransferActivity, taskQueue: filesTaskQueue() } : chunkActivity,
    );
    this.state = input.carried ?? {
      tableIndex: 0,
      pending: null,
      manifestTotal: 0,
      startedAtMs: Date.now(),
      result: emptyPhaseResult(input.phase),
      progress: startedPhaseProgress(input.phase, workflowInfo().workflowId, new Date().toISOString()),
    };
    if (input.carried) this.state.result.executions += 1;
    this.sched = new PhaseScheduler({
      settings: input.settings,
      paused: input.paused ?? false,
      transferBudgetBytes: input.transferBudgetBytes,
    });
    this.parent = getExternalWorkflowHandle(input.parentWorkflowId);
  }

  private notify(event: Parameters<ReimportActivities['notify']>[0]): void {
    // Best-effort: the notifier filters cooldowns shorter than its threshold; a failing channel never fails the phase.
    this.notifier.notify(event).catch(() => undefined);
  }

  /** Updates the progress and the Web UI's details; tells the parent at most every 2 s unless `force`. */
  async report(force = false): Promise<void> {
    const { sched } = this;
    const p = this.state.progress;
    const nowMs = Date.now();
    const elapsed = (nowMs - this.state.startedAtMs) / 1000;
    p.etaSeconds = p.done > 0 && p.total > p.done ? Math.round(((p.total - p.done) * elapsed) / p.done) : undefined;
    p.cooldownUntil = sched.coolingUntil > nowMs ? new Date(sched.coolingUntil).toISOString() : undefined;
    p.paused = sched.paused;
    p.pausedForQuota = sched.quotaPaused;
    setCurrentDetails(
      `**${this.input.phase}** ${p.table ?? ''}: ${p.done}/${p.total}` +
        (sched.paused ? ' — paused' : sched.quotaPaused ? ' — paused: transfer budget' : '') +
        (p.cooldownUntil ? ` — cooling down until ${p.cooldownUntil}` : ''),
    );
    // Progress reports to the parent are throttled to keep both histories small.
    if (!force && nowMs - this.lastReport < 2000) return;
    this.lastReport = nowMs;
    try {
      await this.parent.signal(phaseProgressSignal, { ...p });
    } catch {
      // The parent may be gone (cancelled); progress is best-effort.
    }
  }

  noteHistory(): void {
    this.state.result.maxHistoryLength = Math.max(this.state.result.maxHistoryLength, workflowInfo().historyLength);
  }

  /**
   * FileMaker stayed overloaded through the client's short repeats: a durable cooldown (the scheduler decides its
   * length, and that the batches failing together are one episode), reported to the operator and the parent.
   */
  private async coolDown(): Promise<void> {
    const seconds = this.sched.overloaded(Date.now());
    if (seconds === undefined) return;
    this.state.result.cooldowns++;
    this.state.progress.cooldowns++;
    this.notify({
      type: 'cooldown_long',
      runId: this.input.runId,
      workflowId: workflowInfo().workflowId,
      phase: this.input.phase,
      cooldownSeconds: seconds,
      reasonCode: ERROR_CODES.FILEMAKER_OVERLOADED,
    });
    await this.report(true);
    // A durable timer: visible in the Web UI, survives worker restarts, costs no worker slot.
    await sleep(seconds * 1000, { summary: cooldownSummary(seconds) });
    this.sched.cooledDown();
    await this.report(true);
  }

  /** A metadata call (manifest, dry-run estimate) that FileMaker's overload only delays: cool down and call again. */
  private async untilNotOverloaded<T>(call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const r = await call();
        this.sched.calm();
        return r;
      } catch (err) {
        if (failureType(err) !== ERROR_CODES.FILEMAKER_OVERLOADED) throw err;
        await this.coolDown();
      }
    }
  }

  /** Dry run: the table's counts as a real run would find them, from metadata only. */
  async estimate(table: SourceTableName): Promise<void> {
    const { state } = this;
    const d = await this.untilNotOverloaded(() => this.acts.dryRunTable({ runId: this.input.runId, table }));
    state.progress.total += d.manifest;
    addBatch(state.result, state.progress, {
      processed: d.manifest,
      byState: d.byState,
      byReason: d.byReason,
      // Absent from a dry run recorded before ids that cannot key a row were listed.
      failedIds: d.failedIds ?? {},
      bytesDownloaded: 0,
      relinked: 0,
      replaced: 0,
      retries: 0,
    });
    state.result.bytesDownloaded += d.estimatedBytes;
    state.result.tables.push({
      table,
      manifest: d.manifest,
      ...d.byState,
      pending: 0,
      missing: [],
      objectsChecked: 0,
      objectMismatches: [],
      ok: true,
    });
    await this.report(true);
  }

  private batchSize(): number {
    return this.state.batchSize ?? this.configuredBatchSize();
  }

  private configuredBatchSize(): number {
    return this.files ? this.sched.settings.fileBatchSize : this.sched.settings.chunkSize;
  }

  /** Every id of the table that exists now, stored in PostgreSQL; the batches to import are positions in it. */
  async buildManifest(table: SourceTableName): Promise<void> {
    const { state } = this;
    await condition(() => !this.sched.paused);
    const { count, delta, carried, relinkable } = await this.untilNotOverloaded(() =>
      this.acts.buildManifest({
        runId: this.input.runId,
        table,
        sourceKeyField: this.exportSource ? 'recid' : undefined,
        ...(this.input.incremental ? { incremental: true } : {}),
        inFlight: this.sched.settings.concurrency,
      }),
    );
    if (delta) {
      state.result.delta = { ...state.result.delta, [table]: delta };
      state.progress.delta = state.result.delta;
    }
    state.manifestTotal = count;
    state.progress.total += count;
    if (carried) {
      // Carried over unchanged: terminal already, counted like the chunks' records.
      const processed = carried.imported + carried.unlinked + carried.skipped + carried.failed;
      state.progress.total += processed;
      addBatch(state.result, state.progress, { ...emptyChunkResult(), processed, byState: carried });
    }
    // Only a table whose files an earlier run stored: `relinkable` is absent from the manifests of other tables, of
    // the export's images, and of histories recorded before it was reported.
    const relinks =
      this.files && !this.exportSource ? relinkBatchSize(this.sched.settings, count, relinkable) : undefined;
    const size = relinks ?? this.configuredBatchSize();
    state.batchSize = size;
    state.pending = [];
    for (let offset = 0; offset < count; offset += size) state.pending.push(offset);
    await this.report(true);
  }

  /**
   * Imports the `pending` batches in a sliding window, as the scheduler allows; continues as new when the history
   * is full and no batch is in flight. Ends when every batch is done, or throws the first that failed for good once
   * the others are back.
   */
  async importBatches(table: SourceTableName, pending: number[]): Promise<void> {
    const { sched, state, input } = this;
    let fatal: Error | undefined;
    const size = this.batchSize();

    const runChunk = async (offset: number) => {
      sched.running++;
      const budgetAtStart = sched.transferBudgetBytes;
      try {
        const batch = {
          runId: input.runId,
          table,
          offset,
          limit: size,
          writeBack: input.writeBack,
          ...(input.incremental ? { work: true } : {}),
        };
        // The Web UI's line for the batch: which manifest positions of which table.
        const call = {
          summary: `${table} ${offset + 1}–${Math.min(offset + size, state.manifestTotal)} of ${state.manifestTotal}`,
        };
        const r = this.files
          ? await this.chunkActs.importFiles.executeWithOptions(call, [
              {
                ...batch,
                transferBudgetBytes: sched.transferBudgetBytes,
                exportSource: this.exportSource,
                containerPath: input.containerPath,
              },
            ])
          : await this.chunkActs.importChunk.executeWithOptions(call, [batch]);
        addBatch(state.result, state.progress, r);
        sched.batchSucceeded();
        await this.report();
      } catch (err) {
        const type = failureType(err);
        if (type === ERROR_CODES.FILEMAKER_OVERLOADED) {
          pending.unshift(offset);
          await this.coolDown();
        } else if (type === ERROR_CODES.TRANSFER_QUOTA_EXCEEDED) {
          pending.unshift(offset);
          const decision = sched.quotaRefused(budgetAtStart);
          if (decision === 'pause') {
            this.notify({
              type: 'paused_for_quota',
              runId: input.runId,
              workflowId: workflowInfo().workflowId,
              phase: input.phase,
              reasonCode: ERROR_CODES.TRANSFER_QUOTA_EXCEEDED,
            });
          }
          if (decision !== 'retry') await this.report(true);
        } else if (isCancellation(err)) {
          // The phase is being cancelled: the loop below waits for every batch; nothing goes back in line.
        } else {
          fatal ??= err instanceof Error ? err : new Error(String(err));
        }
      } finally {
        sched.running--;
      }
    };

    const next = () =>
      sched.next({
        failed: fatal !== undefined,
        pending: pending.length,
        nowMs: Date.now(),
        historyIsFull: historyFull(workflowInfo()),
      });
    try {
      while (pending.length > 0 || sched.running > 0) {
        await condition(() => next() !== 'wait');
        const step = next();
        if (step === 'fail') {
          await condition(() => sched.running === 0);
          state.progress.status = 'failed';
          await this.report(true);
          throw fatal!;
        }
        if (step === 'done') break;
        if (step === 'continue_as_new') {
          state.result.durationMs = Date.now() - state.startedAtMs;
          this.noteHistory();
          await continueAsNew<typeof importPhase>({ ...input, ...sched.carry(), carried: state });
        }
        if (step === 'launch') {
          void runChunk(pending.shift()!).catch((err: unknown) => {
            // A cooldown cut short by a cancel; anything else ends the phase like a failed batch.
            if (!isCancellation(err)) fatal ??= err instanceof Error ? err : new Error(String(err));
          });
        }
      }
    } catch (err) {
      if (isCancellation(err)) {
        // Cancelled (the run is about to roll back): no batch of this phase may still be writing when the database
        // is restored. Their activities are cancelled too and report back once stopped (WAIT_CANCELLATION_COMPLETED).
        await CancellationScope.nonCancellable(() => condition(() => sched.running === 0));
      }
      throw err;
    }
  }

  /** Every manifest id of the table has a terminal state (and every stored file its object), or the phase fails. */
  async reconcile(table: SourceTableName): Promise<void> {
    const { state, input } = this;
    let rec: TableReconciliation;
    if (patched(FINISH_IN_RECONCILE)) {
      rec = await this.acts.reconcileTable({
        runId: input.runId,
        table,
        finish: true,
        ...(input.incremental ? { sweep: true } : {}),
      });
    } else {
      await this.acts.finishTable({ runId: input.runId, table });
      rec = await this.acts.reconcileTable({ runId: input.runId, table });
    }
    state.result.tables.push(rec);
    state.pending = null;
    state.batchSize = undefined;
    if (this.files && state.result.tables.every((t) => t.bytesTransferred !== undefined)) {
      // The quota's own count replaces the batches' sum, which misses attempts that ended in an error or a crash.
      const spent = state.result.tables.reduce((sum, t) => sum + (t.bytesTransferred ?? 0), 0);
      state.result.bytesDownloaded = spent;
      state.progress.bytesDownloaded = spent;
    }
    if (!rec.ok) {
      state.progress.status = 'failed';
      await this.report(true);
      const problems = [
        rec.pending > 0 ? `${rec.pending} of ${rec.manifest} manifest ids have no terminal state` : '',
        rec.objectMismatches.length > 0
          ? `${rec.objectMismatches.length} stored objects do not match their recorded size and SHA-256`
          : '',
      ].filter((p) => p !== '');
      throw ApplicationFailure.nonRetryable(`${table}: ${problems.join('; ')}`, ERROR_CODES.RECONCILIATION_FAILED);
    }
  }
}

/** Container downloads run on `<task queue>-files`, whose activity rate the worker limits cluster-wide. */
function filesTaskQueue(): string {
  return `${workflowInfo().taskQueue}-files`;
}
