/**
 * Signals, queries and updates of the reimport, with stable wire names (they appear in `temporal workflow signal`
 * commands and in the README).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ContainerPath, Counts, VanishedCount } from '../activities/types';
import type { PhaseName } from '../domain/tables';
import type { Settings } from './options';
import type { TableDeltas } from './progress';

export interface PhaseProgress {
  phase: PhaseName;
  status: 'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'not_implemented';
  workflowId?: string;
  /** Source records in the phase's manifests (known once each table's manifest is built). */
  total: number;
  done: number;
  byState: Counts;
  byReason: Record<string, number>;
  bytesDownloaded: number;
  relinked: number;
  /** Files downloaded again because their record changed since their object was stored (files phases). */
  replaced?: number;
  cooldowns: number;
  /** ISO time the current cooldown ends, when cooling down. */
  cooldownUntil?: string;
  startedAt?: string;
  finishedAt?: string;
  /** Seconds until done at the current rate, when it can be estimated. */
  etaSeconds?: number;
  /** Current table of the phase. */
  table?: string;
  paused?: boolean;
  /** Waiting for the transfer budget to be raised. */
  pausedForQuota?: boolean;
  /** Per source table read so far: added, changed, unchanged and vanished records since the previous completed run. */
  delta?: TableDeltas;
}

export interface RunProgress {
  runId: string;
  status:
    | 'running'
    | 'paused'
    | 'paused_for_quota'
    | 'awaiting_confirmation'
    | 'rolling_back'
    | 'completed'
    | 'failed'
    | 'rolled_back';
  dryRun: boolean;
  currentPhase?: PhaseName;
  phases: PhaseProgress[];
  settings: Settings;
  transferBudgetBytes?: number;
  bytesDownloaded: number;
  /** How the files phases read containers, known after the pre-flight: OData's `$value` or the Data API. */
  containerPath?: ContainerPath;
  /** Why (a reason code, see src/activities/container-probe.ts). */
  containerPathReason?: string;
  /** Per table, records gone from FileMaker since the last completed run, read before the delete phase. */
  vanished?: VanishedCount[];
}

/** Stop launching new batches after the ones in flight; a paused run keeps no request open on FileMaker. */
export const pauseSignal = defineSignal<[{ reason?: string }?]>('pause');
/** Continue a paused run. */
export const resumeSignal = defineSignal('resume');
/** Per phase: total, done, by state, cooldown, ETA. */
export const progressQuery = defineQuery<RunProgress>('progress');
/** Progress of one phase (answered by the phase's child workflow). */
export const phaseProgressQuery = defineQuery<PhaseProgress>('phaseProgress');
/** Change concurrency, chunk sizes or cooldowns while running; returns the settings in force. */
export const setSettingsUpdate = defineUpdate<Settings, [Partial<Settings>]>('setSettings');
/** Raise (or lower) the transfer budget; a run paused for quota continues when the new budget allows. */
export const setTransferBudgetUpdate = defineUpdate<number, [number]>('setTransferBudget');

/**
 * Let a run whose records vanished from FileMaker beyond its threshold go on to the delete phase (their last rows are
 * archived); a cancel instead rolls it back. Returns what was confirmed.
 */
export const confirmVanishedUpdate = defineUpdate<string, []>('confirmVanished');

/** Internal: the parent forwards pause/resume/settings/budget to the running phase child. */
export const phaseControlSignal = defineSignal<[PhaseControl]>('phaseControl');
/** Internal: a phase child reports progress to its parent. */
export const phaseProgressSignal = defineSignal<[PhaseProgress]>('phaseProgressReport');

/** What each message does, as the Web UI lists a run's queries, signals and updates (from its metadata query). */
const DESCRIPTIONS: Record<string, string> = {
  [pauseSignal.name]:
    'Pause: no new batch starts after the ones in flight; a paused run keeps no request open on FileMaker. ' +
    'Optional `{ "reason": "…" }`.',
  [resumeSignal.name]: 'Resume a paused run.',
  [progressQuery.name]: 'Progress of the run: status, and per phase total, done, counts by state, cooldowns, ETA.',
  [phaseProgressQuery.name]: 'Progress of this phase: total, done, counts by state, cooldowns, ETA, current table.',
  [setSettingsUpdate.name]:
    'Change concurrency, chunk or batch sizes, or cooldowns while running, e.g. `{ "concurrency": 2 }`; ' +
    'returns the settings in force.',
  [setTransferBudgetUpdate.name]:
    'Set the FileMaker transfer budget in bytes; a run paused for quota continues when the new budget allows.',
  [confirmVanishedUpdate.name]:
    'Confirm that the records gone from FileMaker since the last run may go from Nexus too (their last rows are ' +
    'archived); the run then continues to the delete phase. A cancel rolls it back instead.',
  [phaseControlSignal.name]: 'Internal: pause, resume, settings and budget forwarded by the run to its phase.',
  [phaseProgressSignal.name]: "Internal: a phase's progress reported to its run.",
};

/** The handler options that describe `def` (for `setHandler`). */
export function described(def: { name: string }): { description: string } {
  return { description: DESCRIPTIONS[def.name] ?? def.name };
}

export interface PhaseControl {
  paused?: boolean;
  settings?: Settings;
  transferBudgetBytes?: number;
}
