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
  ActivityFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
  setCurrentDetails,
  isCancellation,
  CancellationScope,
} from '@temporalio/workflow';
import type { ChunkResult, ContainerPath, Counts, ReimportActivities, TableReconciliation } from '../activities/types';
import { SOURCE_TABLES, type ImportPhase, type SourceTableName } from '../domain/tables';
import {
  pauseSignal,
  phaseControlSignal,
  phaseProgressQuery,
  phaseProgressSignal,
  resumeSignal,
  type PhaseProgress,
} from './messages';
import type { Settings } from './options';
import type { ExportLocation } from '../export/location';
import { ERROR_CODES } from '../error-codes';
import { OVERLOADED, QUOTA, chunkActivity, fileTransferActivity, notifyActivity, shortActivity } from './profiles';

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
  /** Carried across continue-as-new. */
  carried?: PhaseState;
}

export interface PhaseResult {
  phase: ImportPhase;
  tables: TableReconciliation[];
  byState: Counts;
  byReason: Record<string, number>;
  failedIds: Record<string, string[]>;
  bytesDownloaded: number;
  relinked: number;
  /** Files downloaded again because their record changed since their object was stored. */
  replaced: number;
  retries: number;
  cooldowns: number;
  durationMs: number;
  executions: number;
  /** The longest history of this phase's executions (continue-as-new keeps each one short). */
  maxHistoryLength: number;
}

interface PhaseState {
  tableIndex: number;
  /** Manifest offsets of the current table still to import. */
  pending: number[] | null;
  manifestTotal: number;
  result: PhaseResult;
  progress: PhaseProgress;
  startedAtMs: number;
}

const FAILED_IDS_PER_REASON = 20;
// Well below Temporal's 10,240-event warning: leaves room for the chunks in flight to finish before continuing.
const HISTORY_SOFT_LIMIT = 7000;

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

const isFilesPhase = (phase: ImportPhase) => phase === 'documents' || phase === 'images';

function emptyCounts(): Counts {
  return { imported: 0, unlinked: 0, skipped: 0, failed: 0 };
}

function emptyResult(phase: ImportPhase): PhaseResult {
  return {
    phase,
    tables: [],
    byState: emptyCounts(),
    byReason: {},
    failedIds: {},
    bytesDownloaded: 0,
    relinked: 0,
    replaced: 0,
    retries: 0,
    cooldowns: 0,
    durationMs: 0,
    executions: 1,
    maxHistoryLength: 0,
  };
}

function addInto(target: Record<string, number>, source: Record<string, number>) {
  for (const [k, v] of Object.entries(source)) target[k] = (target[k] ?? 0) + v;
}

export function failureType(err: unknown): string | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.type ?? undefined;
  if (err instanceof ApplicationFailure) return err.type ?? undefined;
  return undefined;
}

/** Durable cooldown length after `n` consecutive overloads: grows, capped. */
export function cooldownSeconds(settings: Settings, n: number): number {
  return Math.min(settings.cooldownMaxSeconds, settings.cooldownBaseSeconds * 2 ** Math.max(0, n - 1));
}

export async function importPhase(input: PhaseInput): Promise<PhaseResult> {
  const tables = tablesOf(input.phase);
  const files = isFilesPhase(input.phase);
  const exportSource = input.phase === 'images' ? input.imagesFrom : undefined;
  const acts = proxyActivities<ReimportActivities>(shortActivity);
  const chunkActs = proxyActivities<ReimportActivities>(
    files ? { ...fileTransferActivity, taskQueue: filesTaskQueue() } : chunkActivity,
  );
  const notifier = proxyActivities<ReimportActivities>(notifyActivity);
  const nowMs = () => Date.now();
  const notify = (event: Parameters<ReimportActivities['notify']>[0]) => {
    // Best-effort: the notifier filters cooldowns shorter than its threshold; a failing channel never fails the phase.
    notifier.notify(event).catch(() => undefined);
  };
  const state: PhaseState = input.carried ?? {
    tableIndex: 0,
    pending: null,
    manifestTotal: 0,
    startedAtMs: nowMs(),
    result: emptyResult(input.phase),
    progress: {
      phase: input.phase,
      status: 'running',
      workflowId: workflowInfo().workflowId,
      total: 0,
      done: 0,
      byState: emptyCounts(),
      byReason: {},
      bytesDownloaded: 0,
      relinked: 0,
      replaced: 0,
      cooldowns: 0,
      startedAt: new Date().toISOString(),
    },
  };
  if (input.carried) state.result.executions += 1;

  let settings = input.settings;
  let paused = input.paused ?? false;
  let transferBudget = input.transferBudgetBytes;
  let quotaPaused = false;
  let coolingUntil = 0;
  let overloadStreak = 0;
  // Adaptive window: halved on overload, grows back by one per success up to the configured concurrency.
  let window = settings.concurrency;
  let lastReport = 0;

  const parent = getExternalWorkflowHandle(input.parentWorkflowId);
  const report = async (force = false) => {
    const p = state.progress;
    const elapsed = (nowMs() - state.startedAtMs) / 1000;
    p.etaSeconds = p.done > 0 && p.total > p.done ? Math.round(((p.total - p.done) * elapsed) / p.done) : undefined;
    p.cooldownUntil = coolingUntil > nowMs() ? new Date(coolingUntil).toISOString() : undefined;
    p.paused = paused;
    p.pausedForQuota = quotaPaused;
    setCurrentDetails(
      `**${input.phase}** ${p.table ?? ''}: ${p.done}/${p.total}` +
        (paused ? ' — paused' : quotaPaused ? ' — paused: transfer budget' : '') +
        (p.cooldownUntil ? ` — cooling down until ${p.cooldownUntil}` : ''),
    );
    // Progress reports to the parent are throttled to keep both histories small.
    if (!force && nowMs() - lastReport < 2000) return;
    lastReport = nowMs();
    try {
      await parent.signal(phaseProgressSignal, { ...p });
    } catch {
      // The parent may be gone (cancelled); progress is best-effort.
    }
  };

  setHandler(phaseProgressQuery, () => ({ ...state.progress }));
  setHandler(pauseSignal, () => {
    paused = true;
  });
  setHandler(resumeSignal, () => {
    paused = false;
  });
  setHandler(phaseControlSignal, (c) => {
    if (c.paused !== undefined) paused = c.paused;
    if (c.settings) {
      settings = c.settings;
      window = Math.min(window, settings.concurrency);
      if (window < 1) window = 1;
    }
    if (c.transferBudgetBytes !== undefined) {
      transferBudget = c.transferBudgetBytes;
      quotaPaused = false;
    }
  });

  /**
   * FileMaker stayed overloaded through the client's short repeats: a durable cooldown, longer after each episode in
   * a row, and a smaller window. One episode is one step: the batches that were in flight when it began fail
   * together and must not each double the cooldown and halve the window.
   */
  const coolDown = async () => {
    if (coolingUntil > nowMs()) return;
    overloadStreak++;
    window = Math.max(1, Math.floor(window / 2));
    const seconds = cooldownSeconds(settings, overloadStreak);
    state.result.cooldowns++;
    state.progress.cooldowns++;
    coolingUntil = nowMs() + seconds * 1000;
    notify({
      type: 'cooldown_long',
      runId: input.runId,
      workflowId: workflowInfo().workflowId,
      phase: input.phase,
      cooldownSeconds: seconds,
      reasonCode: OVERLOADED,
    });
    await report(true);
    // A durable timer: visible in the Web UI, survives worker restarts, costs no worker slot.
    await sleep(seconds * 1000);
    coolingUntil = 0;
    await report(true);
  };

  /** A metadata call (manifest, dry-run estimate) that FileMaker's overload only delays: cool down and call again. */
  const untilNotOverloaded = async <T>(call: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        const r = await call();
        overloadStreak = 0;
        return r;
      } catch (err) {
        if (failureType(err) !== OVERLOADED) throw err;
        await coolDown();
      }
    }
  };

  const noteHistory = () => {
    state.result.maxHistoryLength = Math.max(state.result.maxHistoryLength, workflowInfo().historyLength);
  };

  const merge = (r: ChunkResult) => {
    const res = state.result;
    for (const k of Object.keys(r.byState) as (keyof Counts)[]) {
      res.byState[k] += r.byState[k];
      state.progress.byState[k] += r.byState[k];
    }
    addInto(res.byReason, r.byReason);
    addInto(state.progress.byReason, r.byReason);
    for (const [reason, ids] of Object.entries(r.failedIds)) {
      const list = (res.failedIds[reason] ??= []);
      for (const id of ids) if (list.length < FAILED_IDS_PER_REASON) list.push(id);
    }
    res.bytesDownloaded += r.bytesDownloaded;
    res.relinked += r.relinked;
    // Absent from a state carried across continue-as-new from before replaced files were counted.
    res.replaced = (res.replaced ?? 0) + r.replaced;
    res.retries += r.retries;
    state.progress.bytesDownloaded += r.bytesDownloaded;
    state.progress.relinked += r.relinked;
    state.progress.replaced = (state.progress.replaced ?? 0) + r.replaced;
    state.progress.done += r.processed;
  };

  for (; state.tableIndex < tables.length; state.tableIndex++) {
    const table = tables[state.tableIndex]!;
    state.progress.table = table;

    if (input.dryRun) {
      const d = await untilNotOverloaded(() => acts.dryRunTable({ runId: input.runId, table }));
      state.progress.total += d.manifest;
      merge({
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
      await report(true);
      continue;
    }

    if (state.pending === null) {
      await condition(() => !paused);
      const { count } = await untilNotOverloaded(() =>
        acts.buildManifest({ runId: input.runId, table, sourceKeyField: exportSource ? 'recid' : undefined }),
      );
      state.manifestTotal = count;
      state.progress.total += count;
      const size = files ? settings.fileBatchSize : settings.chunkSize;
      state.pending = [];
      for (let offset = 0; offset < count; offset += size) state.pending.push(offset);
      await report(true);
    }

    const pending = state.pending;
    let running = 0;
    let fatal: Error | undefined;
    const size = files ? settings.fileBatchSize : settings.chunkSize;

    const runChunk = async (offset: number) => {
      running++;
      // A batch that ran into the budget it started with pauses the phase; one whose budget was raised meanwhile
      // only goes back in line (else a raise during its flight would be lost and the pause last forever).
      const budgetAtStart = transferBudget;
      try {
        const input2 = { runId: input.runId, table, offset, limit: size, writeBack: input.writeBack };
        const r = files
          ? await chunkActs.importFiles({
              ...input2,
              transferBudgetBytes: transferBudget,
              exportSource,
              containerPath: input.containerPath,
            })
          : await chunkActs.importChunk(input2);
        merge(r);
        overloadStreak = 0;
        window = Math.min(settings.concurrency, window + 1);
        await report();
      } catch (err) {
        const type = failureType(err);
        if (type === OVERLOADED) {
          pending.unshift(offset);
          await coolDown();
        } else if (type === QUOTA && transferBudget !== budgetAtStart) {
          pending.unshift(offset);
        } else if (type === QUOTA) {
          pending.unshift(offset);
          if (!quotaPaused) {
            notify({
              type: 'paused_for_quota',
              runId: input.runId,
              workflowId: workflowInfo().workflowId,
              phase: input.phase,
              reasonCode: QUOTA,
            });
          }
          quotaPaused = true;
          await report(true);
        } else if (isCancellation(err)) {
          // The phase is being cancelled: the loop below waits for every batch; nothing goes back in line.
        } else {
          fatal ??= err instanceof Error ? err : new Error(String(err));
        }
      } finally {
        running--;
      }
    };

    try {
      while (pending.length > 0 || running > 0) {
        const historyFull = () =>
          workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > HISTORY_SOFT_LIMIT;
        await condition(
          () =>
            fatal !== undefined ||
            (running === 0 && pending.length === 0) ||
            (running === 0 && historyFull()) ||
            (pending.length > 0 &&
              running < window &&
              !paused &&
              !quotaPaused &&
              coolingUntil <= nowMs() &&
              !historyFull()),
        );
        if (fatal !== undefined) {
          await condition(() => running === 0);
          state.progress.status = 'failed';
          await report(true);
          throw fatal;
        }
        if (pending.length === 0 && running === 0) break;
        if (running === 0 && historyFull()) {
          state.result.durationMs = nowMs() - state.startedAtMs;
          noteHistory();
          await continueAsNew<typeof importPhase>({
            ...input,
            settings,
            paused,
            transferBudgetBytes: transferBudget,
            carried: state,
          });
        }
        if (running < window && pending.length > 0 && !paused && !quotaPaused && coolingUntil <= nowMs()) {
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
        await CancellationScope.nonCancellable(() => condition(() => running === 0));
      }
      throw err;
    }

    await acts.finishTable({ runId: input.runId, table });
    const rec = await acts.reconcileTable({ runId: input.runId, table });
    state.result.tables.push(rec);
    state.pending = null;
    if (files && state.result.tables.every((t) => t.bytesTransferred !== undefined)) {
      // The quota's own count replaces the batches' sum, which misses attempts that ended in an error or a crash.
      const spent = state.result.tables.reduce((sum, t) => sum + (t.bytesTransferred ?? 0), 0);
      state.result.bytesDownloaded = spent;
      state.progress.bytesDownloaded = spent;
    }
    if (!rec.ok) {
      state.progress.status = 'failed';
      await report(true);
      const problems = [
        rec.pending > 0 ? `${rec.pending} of ${rec.manifest} manifest ids have no terminal state` : '',
        rec.objectMismatches.length > 0
          ? `${rec.objectMismatches.length} stored objects do not match their recorded size and SHA-256`
          : '',
      ].filter((p) => p !== '');
      throw ApplicationFailure.nonRetryable(`${table}: ${problems.join('; ')}`, ERROR_CODES.RECONCILIATION_FAILED);
    }
  }

  state.result.durationMs = nowMs() - state.startedAtMs;
  noteHistory();
  state.progress.status = 'completed';
  state.progress.finishedAt = new Date().toISOString();
  await report(true);
  return state.result;
}

/** Container downloads run on `<task queue>-files`, whose activity rate the worker limits cluster-wide. */
function filesTaskQueue(): string {
  return `${workflowInfo().taskQueue}-files`;
}
