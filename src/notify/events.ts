/**
 * Notification events. Pure and free of I/O so workflows may import the types and `isLongCooldown`.
 *
 * An event holds ids, phase names, counts, durations and reason codes only. There is deliberately no free-text field
 * (no message, no error text, no record): a notification leaves the clinic's systems in clear, so nothing that could
 * carry a patient's name, birth date or note text has a place to go. Strings are checked against narrow patterns at
 * run time too, and the formatter reads only the fields named here, so extra properties are never rendered.
 */
import { FmReimportError } from '../errors';
import { ERROR_CODES } from '../error-codes';

/** A workflow id, run id or phase name: letters, digits and . _ : / @ - only (no spaces). */
export type Identifier = string;
/** A stable machine-readable reason such as TRANSFER_QUOTA_EXCEEDED or FILEMAKER_OVERLOADED. */
export type ReasonCode = string;
/** Counts by name, e.g. { done: 1200, failed: 3 }. Names follow the Identifier pattern. */
export type Counts = Readonly<Record<string, number>>;

interface EventBase {
  /** The reimport run's id (the top-level workflow id). */
  readonly runId: Identifier;
  /** When the event happened, as epoch milliseconds (workflow time, so it is deterministic). */
  readonly atMs?: number;
}

export interface RunStartedEvent extends EventBase {
  readonly type: 'run_started';
  readonly workflowId: Identifier;
  readonly phases: readonly Identifier[];
  /** Source record counts by table, when known at start. */
  readonly sourceCounts?: Counts;
}

export interface PhaseCompletedEvent extends EventBase {
  readonly type: 'phase_completed';
  readonly workflowId: Identifier;
  readonly phase: Identifier;
  readonly counts: Counts;
  readonly durationMs: number;
}

export interface CooldownLongEvent extends EventBase {
  readonly type: 'cooldown_long';
  readonly workflowId: Identifier;
  readonly phase: Identifier;
  readonly cooldownSeconds: number;
  readonly reasonCode: ReasonCode;
}

export interface PausedForQuotaEvent extends EventBase {
  readonly type: 'paused_for_quota';
  readonly workflowId: Identifier;
  readonly phase?: Identifier;
  readonly reasonCode: ReasonCode;
  readonly bytesUsed?: number;
  readonly bytesBudget?: number;
}

export interface RunFailedEvent extends EventBase {
  readonly type: 'run_failed';
  readonly workflowId: Identifier;
  readonly phase?: Identifier;
  readonly reasonCode: ReasonCode;
  /** Failures by reason code, e.g. { INTEGRITY_MISMATCH: 2 }. */
  readonly failuresByReason?: Counts;
  readonly durationMs?: number;
}

export interface RolledBackEvent extends EventBase {
  readonly type: 'rolled_back';
  readonly workflowId: Identifier;
  /** Phases whose compensations ran, in the order they ran. */
  readonly phases: readonly Identifier[];
  readonly reasonCode: ReasonCode;
  /** Compensations that failed and need an operator, by phase. */
  readonly failedCompensations?: readonly Identifier[];
  readonly durationMs?: number;
}

/** More of a table's records vanished from FileMaker than the run's threshold: it waits before deleting anything. */
export interface VanishedOverThresholdEvent extends EventBase {
  readonly type: 'vanished_over_threshold';
  readonly workflowId: Identifier;
  /** Records gone since the last completed run, by source table (only the tables over the threshold). */
  readonly vanished: Counts;
  /** The same tables' record counts in the last completed run. */
  readonly previous: Counts;
  readonly thresholdPercent: number;
}

export interface RunCompletedEvent extends EventBase {
  readonly type: 'run_completed';
  readonly workflowId: Identifier;
  readonly durationMs: number;
  /** Totals by name, e.g. { patients: 5120, documents: 88412 }. */
  readonly counts: Counts;
}

export type NotifyEvent =
  | RunStartedEvent
  | PhaseCompletedEvent
  | CooldownLongEvent
  | PausedForQuotaEvent
  | RunFailedEvent
  | RolledBackEvent
  | VanishedOverThresholdEvent
  | RunCompletedEvent;

export type NotifyEventType = NotifyEvent['type'];

export const NOTIFY_EVENT_TYPES: readonly NotifyEventType[] = [
  'run_started',
  'phase_completed',
  'cooldown_long',
  'paused_for_quota',
  'run_failed',
  'rolled_back',
  'vanished_over_threshold',
  'run_completed',
];

/** Whether a cooldown is long enough to tell a person about (NOTIFY_COOLDOWN_THRESHOLD_SECONDS). */
export function isLongCooldown(cooldownSeconds: number, thresholdSeconds: number): boolean {
  return cooldownSeconds > thresholdSeconds;
}

const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$/;
const REASON_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** Thrown by `validateNotifyEvent`; names the offending field paths, never their values. */
export class InvalidNotifyEventError extends FmReimportError {
  override readonly name = 'InvalidNotifyEventError';
  readonly code = ERROR_CODES.NOTIFY_EVENT_INVALID;
  constructor(readonly paths: readonly string[]) {
    super(`notification event rejected: invalid ${paths.join(', ')}`);
  }
}

/**
 * Checks an event at run time (it may arrive through an activity from older workflow code): the type is known and
 * every string field the formatter reads matches its pattern. Returns the event; throws InvalidNotifyEventError.
 */
export function validateNotifyEvent(event: NotifyEvent): NotifyEvent {
  const bad: string[] = [];
  const e = event as unknown as Record<string, unknown>;
  const id = (path: string, v: unknown, optional = false) => {
    if (v === undefined && optional) return;
    if (typeof v !== 'string' || !IDENTIFIER.test(v)) bad.push(path);
  };
  const code = (path: string, v: unknown) => {
    if (typeof v !== 'string' || !REASON_CODE.test(v)) bad.push(path);
  };
  const num = (path: string, v: unknown, optional = false) => {
    if (v === undefined && optional) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad.push(path);
  };
  const ids = (path: string, v: unknown, optional = false) => {
    if (v === undefined && optional) return;
    if (!Array.isArray(v)) bad.push(path);
    else v.forEach((x, i) => id(`${path}[${i}]`, x));
  };
  const counts = (path: string, v: unknown, optional = false, keyPattern = IDENTIFIER) => {
    if (v === undefined && optional) return;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      bad.push(path);
      return;
    }
    for (const [k, n] of Object.entries(v)) {
      if (!keyPattern.test(k)) bad.push(`${path} key`);
      else num(`${path}.${k}`, n);
    }
  };

  if (typeof e.type !== 'string' || !(NOTIFY_EVENT_TYPES as readonly string[]).includes(e.type)) {
    throw new InvalidNotifyEventError(['type']);
  }
  id('runId', e.runId);
  num('atMs', e.atMs, true);
  id('workflowId', e.workflowId);
  switch (event.type) {
    case 'run_started':
      ids('phases', e.phases);
      counts('sourceCounts', e.sourceCounts, true);
      break;
    case 'phase_completed':
      id('phase', e.phase);
      counts('counts', e.counts);
      num('durationMs', e.durationMs);
      break;
    case 'cooldown_long':
      id('phase', e.phase);
      num('cooldownSeconds', e.cooldownSeconds);
      code('reasonCode', e.reasonCode);
      break;
    case 'paused_for_quota':
      id('phase', e.phase, true);
      code('reasonCode', e.reasonCode);
      num('bytesUsed', e.bytesUsed, true);
      num('bytesBudget', e.bytesBudget, true);
      break;
    case 'run_failed':
      id('phase', e.phase, true);
      code('reasonCode', e.reasonCode);
      counts('failuresByReason', e.failuresByReason, true, REASON_CODE);
      num('durationMs', e.durationMs, true);
      break;
    case 'rolled_back':
      ids('phases', e.phases);
      code('reasonCode', e.reasonCode);
      ids('failedCompensations', e.failedCompensations, true);
      num('durationMs', e.durationMs, true);
      break;
    case 'vanished_over_threshold':
      counts('vanished', e.vanished);
      counts('previous', e.previous);
      num('thresholdPercent', e.thresholdPercent);
      break;
    case 'run_completed':
      num('durationMs', e.durationMs);
      counts('counts', e.counts);
      break;
  }
  if (bad.length > 0) throw new InvalidNotifyEventError(bad);
  return event;
}
