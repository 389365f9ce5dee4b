/**
 * Turns a notification event into a subject line and plain text. Pure: the same event always gives the same text,
 * so it is unit-tested on its own and the channels only transport the result.
 */
import { validateNotifyEvent, type NamedCounts, type NotifyEvent } from './events';

export interface FormattedNotification {
  readonly subject: string;
  readonly text: string;
}

export interface FormatOptions {
  /** Temporal Web UI base URL; when set, the text links to the workflow. */
  readonly temporalUiUrl?: string;
  readonly namespace?: string;
}

const PREFIX = '[fm-reimport]';

export function formatDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m ${String(s).padStart(2, '0')}s`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

// Sorted so the same counts always print the same way, whatever order the caller built them in.
const formatCounts = (c: NamedCounts): string =>
  Object.keys(c)
    .sort()
    .map((k) => `${k}=${c[k]}`)
    .join(', ') || 'none';

function workflowLink(workflowId: string, opts: FormatOptions): string | undefined {
  if (!opts.temporalUiUrl) return undefined;
  const base = opts.temporalUiUrl.replace(/\/+$/, '');
  const ns = encodeURIComponent(opts.namespace ?? 'default');
  return `${base}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`;
}

/** Formats a validated event; throws InvalidNotifyEventError (naming fields, not values) for a malformed one. */
export function formatNotification(event: NotifyEvent, opts: FormatOptions = {}): FormattedNotification {
  const e = validateNotifyEvent(event);
  const lines: string[] = [];
  let subject: string;
  switch (e.type) {
    case 'run_started':
      subject = `run ${e.runId} started`;
      lines.push(`Reimport run ${e.runId} started.`, `Phases: ${e.phases.join(' -> ') || 'none'}`);
      if (e.sourceCounts) lines.push(`Source records: ${formatCounts(e.sourceCounts)}`);
      break;
    case 'phase_completed':
      subject = `run ${e.runId}: phase ${e.phase} completed`;
      lines.push(
        `Phase ${e.phase} of run ${e.runId} completed in ${formatDuration(e.durationMs)}.`,
        `Counts: ${formatCounts(e.counts)}`,
      );
      break;
    case 'cooldown_long':
      subject = `run ${e.runId}: phase ${e.phase} cooling down for ${formatDuration(e.cooldownSeconds * 1000)}`;
      lines.push(
        `Phase ${e.phase} of run ${e.runId} is cooling down for ${formatDuration(e.cooldownSeconds * 1000)}.`,
        `Reason: ${e.reasonCode}`,
        'The run resumes by itself after the cooldown.',
      );
      break;
    case 'paused_for_quota':
      subject = `run ${e.runId} paused: ${e.reasonCode}`;
      lines.push(`Run ${e.runId} is paused${e.phase ? ` in phase ${e.phase}` : ''}.`, `Reason: ${e.reasonCode}`);
      if (e.bytesUsed !== undefined && e.bytesBudget !== undefined) {
        lines.push(`Transfer used: ${formatBytes(e.bytesUsed)} of ${formatBytes(e.bytesBudget)}`);
      }
      lines.push('An operator must raise the budget or wait for the quota to renew, then resume the run.');
      break;
    case 'run_failed':
      subject = `run ${e.runId} FAILED: ${e.reasonCode}`;
      lines.push(`Run ${e.runId} failed${e.phase ? ` in phase ${e.phase}` : ''}.`, `Reason: ${e.reasonCode}`);
      if (e.failuresByReason) lines.push(`Failures by reason: ${formatCounts(e.failuresByReason)}`);
      if (e.durationMs !== undefined) lines.push(`Ran for ${formatDuration(e.durationMs)}`);
      break;
    case 'rolled_back':
      subject = `run ${e.runId} rolled back: ${e.reasonCode}`;
      lines.push(
        `Run ${e.runId} was rolled back.`,
        `Reason: ${e.reasonCode}`,
        `Compensated phases: ${e.phases.join(', ') || 'none'}`,
      );
      if (e.failedCompensations && e.failedCompensations.length > 0) {
        lines.push(`Compensations that FAILED (operator action needed): ${e.failedCompensations.join(', ')}`);
      }
      if (e.durationMs !== undefined) lines.push(`Rollback took ${formatDuration(e.durationMs)}`);
      break;
    case 'vanished_over_threshold':
      subject = `run ${e.runId} waits: records vanished from FileMaker`;
      lines.push(
        `Run ${e.runId} stopped before deleting anything: more than ${e.thresholdPercent}% of a table's records are ` +
          'gone from FileMaker since the last completed run.',
        `Vanished: ${formatCounts(e.vanished)}`,
        `Of (last run): ${formatCounts(e.previous)}`,
        'If this is expected, confirm (`client confirm-vanished`); otherwise cancel the run, which changes nothing.',
      );
      break;
    case 'run_completed':
      subject = `run ${e.runId} completed`;
      lines.push(`Run ${e.runId} completed in ${formatDuration(e.durationMs)}.`, `Counts: ${formatCounts(e.counts)}`);
      break;
  }
  lines.push(`Workflow: ${e.workflowId}`);
  const link = workflowLink(e.workflowId, opts);
  if (link) lines.push(link);
  if (e.atMs !== undefined) lines.push(`At: ${new Date(e.atMs).toISOString()}`);
  return { subject: `${PREFIX} ${subject}`, text: lines.join('\n') };
}
