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
export type EventCode = string;
/** Counts by name, e.g. { done: 1200, failed: 3 }. Names follow the Identifier pattern. */
export type NamedCounts = Readonly<Record<string, number>>;

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
  readonly sourceCounts?: NamedCounts;
}

export interface PhaseCompletedEvent extends EventBase {
  readonly type: 'phase_completed';
  readonly workflowId: Identifier;
  readonly phase: Identifier;
  readonly counts: NamedCounts;
  readonly durationMs: number;
}

export interface CooldownLongEvent extends EventBase {
  readonly type: 'cooldown_long';
  readonly workflowId: Identifier;
  readonly phase: Identifier;
  readonly cooldownSeconds: number;
  readonly reasonCode: EventCode;
}

export interface PausedForQuotaEvent extends EventBase {
  readonly type: 'paused_for_quota';
  readonly workflowId: Identifier;
  readonly phase?: Identifier;
  readonly reasonCode: EventCode;
  readonly bytesUsed?: number;
  readonly bytesBudget?: number;
}

export interface RunFailedEvent extends EventBase {
  readonly type: 'run_failed';
  readonly workflowId: Identifier;
  readonly phase?: Identifier;
  readonly reasonCode: EventCode;
  /** Failures by reason code, e.g. { INTEGRITY_MISMATCH: 2 }. */
  readonly failuresByReason?: NamedCounts;
  readonly durationMs?: number;
}

export interface RolledBackEvent extends EventBase {
  readonly type: 'rolled_back';
  readonly workflowId: Identifier;
  /** Phases whose compensations ran, in the order they ran. */
  readonly phases: readonly Identifier[];
  readonly reasonCode: EventCode;
  /** Compensations that failed and need an operator, by phase. */
  readonly failedCompensations?: readonly Identifier[];
  readonly durationMs?: number;
}

/** More of a table's records vanished from FileMaker than the run's threshold: it waits before deleting anything. */
export interface VanishedOverThresholdEvent extends EventBase {
  readonly type: 'vanished_over_threshold';
  readonly workflowId: Identifier;
  /** Records gone since the last completed run, by source table (only the tables over the threshold). */
  readonly vanished: NamedCounts;
  /** The same tables' record counts in the last completed run. */
  readonly previous: NamedCounts;
  readonly thresholdPercent: number;
}

export interface RunCompletedEvent extends EventBase {
  readonly type: 'run_completed';
  readonly workflowId: Identifier;
  readonly durationMs: number;
  /** Totals by name, e.g. { patients: 5120, documents: 88412 }. */
  readonly counts: NamedCounts;
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

/** What a field must be: an identifier, a reason code, a number ≥ 0, identifiers, or counts; `?` when optional. */
type FieldCheck = 'id' | 'code' | 'num' | 'ids' | 'counts' | 'reasonCounts';
type FieldRule = FieldCheck | `${FieldCheck}?`;

/** The fields each event type's formatter reads, beside runId, atMs and workflowId which every event has. */
const EVENT_FIELDS: Readonly<Record<NotifyEventType, Readonly<Record<string, FieldRule>>>> = {
  run_started: { phases: 'ids', sourceCounts: 'counts?' },
  phase_completed: { phase: 'id', counts: 'counts', durationMs: 'num' },
  cooldown_long: { phase: 'id', cooldownSeconds: 'num', reasonCode: 'code' },
  paused_for_quota: { phase: 'id?', reasonCode: 'code', bytesUsed: 'num?', bytesBudget: 'num?' },
  run_failed: { phase: 'id?', reasonCode: 'code', failuresByReason: 'reasonCounts?', durationMs: 'num?' },
  rolled_back: { phases: 'ids', reasonCode: 'code', failedCompensations: 'ids?', durationMs: 'num?' },
  vanished_over_threshold: { vanished: 'counts', previous: 'counts', thresholdPercent: 'num' },
  run_completed: { durationMs: 'num', counts: 'counts' },
};

/**
 * Checks an event at run time (it may arrive through an activity from older workflow code): the type is known and
 * every string field the formatter reads matches its pattern. Returns the event; throws InvalidNotifyEventError.
 */
export function validateNotifyEvent(event: NotifyEvent): NotifyEvent {
  const bad: string[] = [];
  const e = event as unknown as Record<string, unknown>;
  const matches = (v: unknown, pattern: RegExp) => typeof v === 'string' && pattern.test(v);
  const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  const check = (path: string, v: unknown, rule: FieldRule) => {
    const optional = rule.endsWith('?');
    if (v === undefined && optional) return;
    const kind = rule.replace('?', '') as FieldCheck;
    if (kind === 'id' || kind === 'code') {
      if (!matches(v, kind === 'id' ? IDENTIFIER : REASON_CODE)) bad.push(path);
    } else if (kind === 'num') {
      if (!isNum(v)) bad.push(path);
    } else if (kind === 'ids') {
      if (!Array.isArray(v)) bad.push(path);
      else v.forEach((x, i) => check(`${path}[${i}]`, x, 'id'));
    } else if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      bad.push(path);
    } else {
      const keys = kind === 'counts' ? IDENTIFIER : REASON_CODE;
      for (const [k, n] of Object.entries(v)) {
        if (!keys.test(k)) bad.push(`${path} key`);
        else if (!isNum(n)) bad.push(`${path}.${k}`);
      }
    }
  };

  if (typeof e.type !== 'string' || !(NOTIFY_EVENT_TYPES as readonly string[]).includes(e.type)) {
    throw new InvalidNotifyEventError(['type']);
  }
  check('runId', e.runId, 'id');
  check('atMs', e.atMs, 'num?');
  check('workflowId', e.workflowId, 'id');
  for (const [field, rule] of Object.entries(EVENT_FIELDS[event.type])) check(field, e[field], rule);
  if (bad.length > 0) throw new InvalidNotifyEventError(bad);
  return event;
}
