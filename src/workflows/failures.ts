/**
 * Reading a failure chain in a workflow: the type the workflow branches on, the code a notification carries, and a
 * short description for the report. Branches on `failure.cause.type`, never on class names of our own errors (they do
 * not survive the bundle); never echoes record data.
 */
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, isCancellation } from '@temporalio/workflow';

import { ERROR_CODES } from '../error-codes';

// Every failure type a workflow raises, branches on or reports: the one table of src/error-codes.ts.
export { ERROR_CODES, type ErrorCode } from '../error-codes';

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
