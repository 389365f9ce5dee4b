/**
 * The progress model: what the `progress` query answers for the run and its phases, what each phase adds up from its
 * batches, and the per-phase summary that goes into the run's report. Plain data and the functions that change it
 * (no Temporal); times come from the caller.
 */
import { emptyChunkResult, type ChunkResult, type Counts, type TableReconciliation } from '../activities/types';
import { formatDelta, sumDeltas, type TableDelta } from '../domain/delta';
import type { ImportPhase, PhaseName, SourceTableName } from '../domain/tables';
import type { PhaseProgress, RunProgress } from './messages';
import type { Settings } from './options';

const FAILED_IDS_PER_REASON = 20;

/** A phase's batches added up (see ChunkResult for each count), with what the phase itself adds. */
export interface PhaseResult extends Omit<ChunkResult, 'processed'> {
  phase: ImportPhase;
  tables: TableReconciliation[];
  cooldowns: number;
  durationMs: number;
  executions: number;
  /** The longest history of this phase's executions (continue-as-new keeps each one short). */
  maxHistoryLength: number;
  /** Per source table: what changed since the previous completed run (absent in phases begun before it was kept). */
  delta?: TableDeltas;
}

export type TableDeltas = Partial<Record<SourceTableName, TableDelta>>;

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
  /** Import phases: per source table, what changed since the previous completed run. */
  delta?: TableDeltas;
  note?: string;
}

export function emptyCounts(): Counts {
  return { imported: 0, unlinked: 0, skipped: 0, failed: 0 };
}

export function emptyPhaseResult(phase: ImportPhase): PhaseResult {
  const { processed: _, ...counts } = emptyChunkResult();
  return {
    ...counts,
    phase,
    tables: [],
    cooldowns: 0,
    durationMs: 0,
    executions: 1,
    maxHistoryLength: 0,
  };
}

/** A phase's progress before any of its records is counted. */
function phaseProgress(phase: PhaseName, status: PhaseProgress['status']): PhaseProgress {
  return {
    phase,
    status,
    total: 0,
    done: 0,
    byState: emptyCounts(),
    byReason: {},
    bytesDownloaded: 0,
    relinked: 0,
    cooldowns: 0,
  };
}

/** The progress an import phase reports when it starts. */
export function startedPhaseProgress(phase: ImportPhase, workflowId: string, startedAt: string): PhaseProgress {
  return { ...phaseProgress(phase, 'running'), workflowId, replaced: 0, startedAt };
}

function addInto(target: Record<string, number>, source: Record<string, number>) {
  for (const [k, v] of Object.entries(source)) target[k] = (target[k] ?? 0) + v;
}

/** Adds a batch's outcome to the phase's result and progress (failed ids capped per reason). */
export function addBatch(res: PhaseResult, progress: PhaseProgress, r: ChunkResult): void {
  for (const k of Object.keys(r.byState) as (keyof Counts)[]) {
    res.byState[k] += r.byState[k];
    progress.byState[k] += r.byState[k];
  }
  addInto(res.byReason, r.byReason);
  addInto(progress.byReason, r.byReason);
  for (const [reason, ids] of Object.entries(r.failedIds)) {
    const list = (res.failedIds[reason] ??= []);
    for (const id of ids) if (list.length < FAILED_IDS_PER_REASON) list.push(id);
  }
  res.bytesDownloaded += r.bytesDownloaded;
  res.relinked += r.relinked;
  // Absent from a state carried across continue-as-new from before replaced files were counted.
  res.replaced = (res.replaced ?? 0) + r.replaced;
  res.retries += r.retries;
  progress.bytesDownloaded += r.bytesDownloaded;
  progress.relinked += r.relinked;
  progress.replaced = (progress.replaced ?? 0) + r.replaced;
  progress.done += r.processed;
}

/** The run's progress before its first phase: every selected phase pending. */
export function newRunProgress(o: {
  runId: string;
  dryRun: boolean;
  phases: PhaseName[];
  settings: Settings;
  transferBudgetBytes: number | undefined;
}): RunProgress {
  return {
    runId: o.runId,
    status: 'running',
    dryRun: o.dryRun,
    phases: o.phases.map((phase) => phaseProgress(phase, 'pending')),
    settings: o.settings,
    transferBudgetBytes: o.transferBudgetBytes,
    bytesDownloaded: 0,
  };
}

export function phaseProgressOf(progress: RunProgress, phase: PhaseName): PhaseProgress {
  return progress.phases.find((p) => p.phase === phase)!;
}

/** A phase child's report: its progress replaces the phase's, and a quota pause shows as the run's status. */
export function applyPhaseReport(progress: RunProgress, p: PhaseProgress): void {
  Object.assign(phaseProgressOf(progress, p.phase), p);
  progress.bytesDownloaded = progress.phases.reduce((s, x) => s + x.bytesDownloaded, 0);
  if (p.pausedForQuota && progress.status === 'running') progress.status = 'paused_for_quota';
  if (!p.pausedForQuota && progress.status === 'paused_for_quota') progress.status = 'running';
}

export function emptySummary(phase: PhaseName): PhaseSummary {
  return {
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
}

/** An import phase's result, as its summary in the run's report. */
export function addPhaseResult(summary: PhaseSummary, result: PhaseResult): void {
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
    delta: result.delta,
  });
}

/** The phase's progress once it has ended as `summary` says. */
export function finishPhaseProgress(pp: PhaseProgress, summary: PhaseSummary, finishedAt: string): void {
  pp.status = summary.status === 'skipped' ? 'skipped' : summary.status === 'not_run' ? 'not_implemented' : 'completed';
  pp.finishedAt = finishedAt;
}

/** 2845 as `2,845` (no Intl: the same text whatever the worker's locale). */
function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * One line of counts for the Web UI, e.g. `patients: 2,845 read, 2,790 imported, 12 failed; since the last run
 * +12 ~3 -1` (added, changed, vanished over the phase's tables).
 */
export function countsLine(phase: PhaseName, c: Counts, delta?: TableDeltas): string {
  const read = c.imported + c.unlinked + c.skipped + c.failed;
  const parts = [`${thousands(read)} read`, `${thousands(c.imported)} imported`];
  if (c.unlinked > 0) parts.push(`${thousands(c.unlinked)} unlinked`);
  if (c.skipped > 0) parts.push(`${thousands(c.skipped)} skipped`);
  parts.push(`${thousands(c.failed)} failed`);
  const since = delta && sumDeltas(Object.values(delta));
  return `${phase}: ${parts.join(', ')}${since?.previousRunId ? `; since the last run ${formatDelta(since)}` : ''}`;
}

/** Record counts summed over the phases. */
export function totalCounts(summaries: readonly PhaseSummary[]): Record<string, number> {
  return summaries.reduce<Record<string, number>>((c, x) => {
    for (const k of ['imported', 'unlinked', 'skipped', 'failed'] as const) c[k] = (c[k] ?? 0) + x[k];
    return c;
  }, {});
}
