/**
 * The decisions of an import phase, apart from Temporal: how many batches may be in flight (the window), how long to
 * cool down after FileMaker's overload, when a spent transfer budget stops new batches, and when the history is long
 * enough to continue as new. Pure (no Temporal, no I/O, no clock of its own): the phase workflow reports what happened
 * and the time, and does what the scheduler answers.
 */
import type { PhaseControl } from './messages';
import type { Settings } from './options';

// Well below Temporal's 10,240-event warning: leaves room for the chunks in flight to finish before continuing.
export const HISTORY_SOFT_LIMIT = 7000;

/** Durable cooldown length after `n` consecutive overloads: grows, capped. */
export function cooldownSeconds(settings: Settings, n: number): number {
  return Math.min(settings.cooldownMaxSeconds, settings.cooldownBaseSeconds * 2 ** Math.max(0, n - 1));
}

/** The Web UI's line for a cooldown timer. */
export function cooldownSummary(seconds: number): string {
  return `Cooldown ${seconds} s: FileMaker answered overloaded`;
}

/** Whether an execution's history is long enough to continue as new (once its batches in flight are done). */
export function historyFull(info: { continueAsNewSuggested: boolean; historyLength: number }): boolean {
  return info.continueAsNewSuggested || info.historyLength > HISTORY_SOFT_LIMIT;
}

/** Share of a files table's records an earlier run must have settled for the phase to read them in relink batches. */
export const RELINK_SHARE = 0.9;
/** The largest relink batch: its records are read in finds of 100 at once, its files written 32 at a time. */
export const RELINK_BATCH_MAX = 1000;

/**
 * Files per batch of a files table whose records an earlier run settled almost all at the version read now
 * (`relinkable` of `count`, see the buildManifest activity: stored, or nothing to download): such a record costs no
 * FileMaker request of its own and no transfer, so a batch of `fileBatchSize` would spend its time on the batch's own
 * round trips (the activity, its find, its ledger reads). The table is split into about two batches per slot of the
 * window instead, no smaller than `fileBatchSize`. Undefined when fewer are settled: the batches download, and keep
 * `fileBatchSize`.
 */
export function relinkBatchSize(settings: Settings, count: number, relinkable: number | undefined): number | undefined {
  if (relinkable === undefined || count === 0 || relinkable < count * RELINK_SHARE) return undefined;
  const perSlot = Math.ceil(count / (2 * settings.concurrency));
  return Math.max(settings.fileBatchSize, Math.min(RELINK_BATCH_MAX, perSlot));
}

/** What a phase execution carries into the next one when it continues as new. */
export interface SchedulerState {
  settings: Settings;
  paused: boolean;
  transferBudgetBytes?: number;
}

/** What the phase's batch loop does next, in this order of precedence. */
export type NextStep = 'fail' | 'done' | 'continue_as_new' | 'launch' | 'wait';

/** A batch refused for the transfer budget: tried again at once, or the phase pauses (`pause`: the pause begins). */
export type QuotaDecision = 'retry' | 'pause' | 'still_paused';

export class PhaseScheduler {
  settings: Settings;
  paused: boolean;
  transferBudgetBytes: number | undefined;
  /** Waiting for the transfer budget to be changed. */
  quotaPaused = false;
  /** Epoch ms the current cooldown ends; 0 when not cooling down. */
  coolingUntil = 0;
  /** Batches in flight. */
  running = 0;
  /** Batches allowed in flight: halved on overload, grows back by one per success up to the configured concurrency. */
  window: number;
  private overloadStreak = 0;

  constructor(state: SchedulerState) {
    this.settings = state.settings;
    this.paused = state.paused;
    this.transferBudgetBytes = state.transferBudgetBytes;
    this.window = state.settings.concurrency;
  }

  /** The operator's pause, resume, settings or budget, as forwarded by the parent. */
  control(c: PhaseControl): void {
    if (c.paused !== undefined) this.paused = c.paused;
    if (c.settings) {
      this.settings = c.settings;
      this.window = Math.max(1, Math.min(this.window, c.settings.concurrency));
    }
    if (c.transferBudgetBytes !== undefined) {
      this.transferBudgetBytes = c.transferBudgetBytes;
      this.quotaPaused = false;
    }
  }

  /** Whether a batch may start now. */
  mayLaunch(pending: number, nowMs: number, historyIsFull: boolean): boolean {
    return (
      pending > 0 &&
      this.running < this.window &&
      !this.paused &&
      !this.quotaPaused &&
      this.coolingUntil <= nowMs &&
      !historyIsFull
    );
  }

  /**
   * The batch loop's next step: a failed batch ends the phase once the others are back; with nothing left the table
   * is done; a full history continues as new when no batch is in flight; else launch when allowed, or wait.
   */
  next(s: { failed: boolean; pending: number; nowMs: number; historyIsFull: boolean }): NextStep {
    if (s.failed) return 'fail';
    if (this.running === 0 && s.pending === 0) return 'done';
    if (this.running === 0 && s.historyIsFull) return 'continue_as_new';
    return this.mayLaunch(s.pending, s.nowMs, s.historyIsFull) ? 'launch' : 'wait';
  }

  /** A call answered without overload: the next overload starts the cooldowns from the shortest again. */
  calm(): void {
    this.overloadStreak = 0;
  }

  /** A batch succeeded: the overload streak ends and the window grows by one, up to the configured concurrency. */
  batchSucceeded(): void {
    this.calm();
    this.window = Math.min(this.settings.concurrency, this.window + 1);
  }

  /**
   * FileMaker answered overloaded: starts a cooldown and returns its length in seconds, longer after each episode in a
   * row, and halves the window. One episode is one step: the batches in flight when it began fail together, and those
   * that fail while it lasts return undefined instead of each doubling the cooldown and halving the window again.
   */
  overloaded(nowMs: number): number | undefined {
    if (this.coolingUntil > nowMs) return undefined;
    this.overloadStreak++;
    this.window = Math.max(1, Math.floor(this.window / 2));
    const seconds = cooldownSeconds(this.settings, this.overloadStreak);
    this.coolingUntil = nowMs + seconds * 1000;
    return seconds;
  }

  /** The cooldown's timer fired. */
  cooledDown(): void {
    this.coolingUntil = 0;
  }

  /**
   * A batch was refused for the transfer budget it started with (`budgetAtStart`). If the budget was changed while it
   * ran, it only goes back in line (else a raise during its flight would be lost and the pause last forever);
   * otherwise no batch starts until the budget is changed.
   */
  quotaRefused(budgetAtStart: number | undefined): QuotaDecision {
    if (this.transferBudgetBytes !== budgetAtStart) return 'retry';
    const wasPaused = this.quotaPaused;
    this.quotaPaused = true;
    return wasPaused ? 'still_paused' : 'pause';
  }

  /** The state the next execution starts from when this one continues as new. */
  carry(): SchedulerState {
    return { settings: this.settings, paused: this.paused, transferBudgetBytes: this.transferBudgetBytes };
  }
}
