/**
 * Named activity profiles: timeouts and retry policies in one place.
 * Errors the workflow itself acts on (overload → durable cooldown, quota → pause) are not retried by Temporal.
 */
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { ERROR_CODES } from './failures';

/** Failure types the activity's own policy never retries: the workflow acts on them, or trying again cannot help. */
const NON_RETRYABLE: string[] = [
  ERROR_CODES.FILEMAKER_OVERLOADED,
  ERROR_CODES.TRANSFER_QUOTA_EXCEEDED,
  ERROR_CODES.CONFIG_INVALID,
  ERROR_CODES.SCHEMA_VERSION_UNKNOWN,
  ERROR_CODES.MANIFEST_INCONSISTENT,
  ERROR_CODES.INTEGRITY_MISMATCH,
  ERROR_CODES.PREFLIGHT_FAILED,
  ERROR_CODES.RESTORE_FAILED,
];

const retry = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '30s',
  // Bounded: a chunk that keeps failing for something other than overload fails the phase (and rolls back)
  // instead of retrying forever behind the operator's back.
  maximumAttempts: 6,
  nonRetryableErrorTypes: NON_RETRYABLE,
} as const;

/**
 * Activities that write target rows or objects: when their phase is cancelled (an operator's cancel, which rolls the
 * run back), the workflow waits until each one has stopped. Otherwise the rollback could restore the database while
 * a batch was still writing into it. An activity learns of the cancel at its next heartbeat (sent at least every
 * 2 s, see src/worker.ts).
 */
const stopsBeforeRollback = { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } as const;

/** Metadata calls: pre-flight, manifests, reconciliation, run bookkeeping. */
export const shortActivity: ActivityOptions = { startToCloseTimeout: '10 minutes', retry };

/**
 * An activity that writes target rows or objects and heartbeats: a worker that died is noticed after `heartbeat`, and
 * a cancel waits for it to stop (stopsBeforeRollback).
 */
function writing(startToClose: Duration, heartbeat: Duration): ActivityOptions {
  return { startToCloseTimeout: startToClose, heartbeatTimeout: heartbeat, retry, ...stopsBeforeRollback };
}

/**
 * A chunk of core records: one FileMaker find and one bulk upsert per few hundred records. A chunk on a worker that
 * died is handed to another after a minute (a chunk heartbeats after its fetch).
 */
export const chunkActivity = writing('15 minutes', '1 minute');

/** Backup, restore and delete: whole-table work in PostgreSQL, heartbeating between tables. */
export const tableWorkActivity = writing('2 hours', '5 minutes');

/**
 * A batch of container downloads: heartbeats as files finish (at most once a second) and every few seconds while a
 * large one streams, so a batch on a worker that died is handed to another after 30 s; it resumes from what its ledger
 * rows say is done.
 */
export const fileTransferActivity = writing('2 hours', '30 seconds');

/**
 * A cut-over's read of every source table's record ids and versions (a few OData pages a table, ROWID-paged):
 * heartbeats every 2,000 records and after each table, so a worker that died is noticed after two minutes.
 */
export const freezeReadActivity: ActivityOptions = {
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry,
};

/**
 * Notifications never fail the run: short, few attempts. The run waits for its notifications only at its end, so
 * a channel that is down holds a finished run open for at most these three attempts (a minute each at most; the
 * notifier gives up on a channel after 30 s) and their backoff, and is then given up with a warning.
 */
export const notifyActivity: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2s', maximumAttempts: 3 },
};
