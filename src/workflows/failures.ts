/**
 * Reading a failure chain in a workflow: the type the workflow branches on, the code a notification carries, and a
 * short description for the report. Branches on `failure.cause.type`, never on class names of our own errors (they do
 * not survive the bundle); never echoes record data.
 */
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, isCancellation } from '@temporalio/workflow';

/**
 * Every failure type a workflow raises, branches on or reports, defined once. Those raised by activities are the
 * `code`s of src/errors.ts (a unit test holds them equal); the workflows import nothing from there, which is shared
 * with Node-only code.
 */
export const ERROR_CODES = {
  // Raised by activities; the workflow acts on the first two itself (cooldown, quota pause).
  FILEMAKER_OVERLOADED: 'FILEMAKER_OVERLOADED',
  TRANSFER_QUOTA_EXCEEDED: 'TRANSFER_QUOTA_EXCEEDED',
  CONFIG_INVALID: 'CONFIG_INVALID',
  SCHEMA_VERSION_UNKNOWN: 'SCHEMA_VERSION_UNKNOWN',
  MANIFEST_INCONSISTENT: 'MANIFEST_INCONSISTENT',
  INTEGRITY_MISMATCH: 'INTEGRITY_MISMATCH',
  PREFLIGHT_FAILED: 'PREFLIGHT_FAILED',
  // Raised by workflows.
  INVALID_INPUT: 'INVALID_INPUT',
  RESTORE_FAILED: 'RESTORE_FAILED',
  RECONCILIATION_FAILED: 'RECONCILIATION_FAILED',
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  RUN_ROLLED_BACK: 'RUN_ROLLED_BACK',
  ROLLBACK_FAILED: 'ROLLBACK_FAILED',
  // Reason codes of a failure chain without a usable type (see failureCode).
  APPLICATION_ERROR: 'APPLICATION_ERROR',
  CANCELLED: 'CANCELLED',
  UNKNOWN_FAILURE: 'UNKNOWN_FAILURE',
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** The ApplicationFailure type of an activity's failure (or of the failure itself), if it has one. */
export function failureType(err: unknown): string | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.type ?? undefined;
  if (err instanceof ApplicationFailure) return err.type ?? undefined;
  return undefined;
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
