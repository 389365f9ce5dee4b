/**
 * What Temporal recorded about a run: every execution of the parent and its phase children (continue-as-new runs
 * included, each a separate execution with its own history), their times and history lengths.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';

export interface ExecutionFacts {
  workflowId: string;
  runId: string;
  type: string;
  status: string;
  startMs: number;
  closeMs: number | undefined;
  /** Events in this execution's history, counted from the fetched history itself. */
  events: number;
  historyBytes: number | undefined;
  /** Per activity type: how many ran, from the first scheduled to the last closed (ms since epoch). */
  activities: Record<string, ActivitySpan>;
}

export interface ActivitySpan {
  count: number;
  firstScheduledMs: number;
  lastClosedMs: number;
  /** Scheduled to closed, added up over the activities of the type (retries included), and the longest one. */
  totalMs: number;
  longestMs: number;
}

type HistoryEvent = NonNullable<
  Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']
>[number];

function eventMs(e: HistoryEvent): number {
  const t = e.eventTime;
  if (!t) return 0;
  return Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

/** Activity spans of one history: scheduled events name the type, closing events refer to them by event id. */
function activitySpans(events: readonly HistoryEvent[]): Record<string, ActivitySpan> {
  const typeOf = new Map<string, { type: string; scheduledMs: number }>();
  const out: Record<string, ActivitySpan> = {};
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      const type = scheduled.activityType?.name ?? 'unknown';
      typeOf.set(String(e.eventId), { type, scheduledMs: eventMs(e) });
      const span = (out[type] ??= {
        count: 0,
        firstScheduledMs: eventMs(e),
        lastClosedMs: 0,
        totalMs: 0,
        longestMs: 0,
      });
      span.count++;
      continue;
    }
    const closed =
      e.activityTaskCompletedEventAttributes ??
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes ??
      e.activityTaskCanceledEventAttributes;
    if (closed?.scheduledEventId != null) {
      const of = typeOf.get(String(closed.scheduledEventId));
      const span = of && out[of.type];
      if (span) {
        span.lastClosedMs = Math.max(span.lastClosedMs, eventMs(e));
        span.totalMs += eventMs(e) - of.scheduledMs;
        span.longestMs = Math.max(span.longestMs, eventMs(e) - of.scheduledMs);
      }
    }
  }
  return out;
}

/**
 * Every execution whose workflow id is the run's or one of its children's (`<run>/<phase>`), once the run has
 * ended. Lists the namespace's executions (the bench's stack is fresh, so the list is short) and fetches each history.
 */
export async function runExecutions(client: Client, runWorkflowId: string): Promise<ExecutionFacts[]> {
  let infos = await listOnce(client, runWorkflowId);
  // Visibility lags the executions a little: once the run has ended, wait until the list shows every one closed.
  for (let attempt = 0; attempt < 20 && infos.some((i) => i.status.name === 'RUNNING'); attempt++) {
    await new Promise((r) => setTimeout(r, 250));
    infos = await listOnce(client, runWorkflowId);
  }
  const out: ExecutionFacts[] = [];
  for (const info of infos) {
    const history = await client.workflow.getHandle(info.workflowId, info.runId).fetchHistory();
    out.push({
      workflowId: info.workflowId,
      runId: info.runId,
      type: info.type,
      status: info.status.name,
      startMs: info.startTime.getTime(),
      closeMs: info.closeTime?.getTime(),
      events: history.events?.length ?? info.historyLength,
      historyBytes: info.historySize,
      activities: activitySpans(history.events ?? []),
    });
  }
  return out.sort((a, b) => a.startMs - b.startMs);
}

async function listOnce(client: Client, runWorkflowId: string): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const info of client.workflow.list()) {
    if (info.workflowId === runWorkflowId || info.workflowId.startsWith(`${runWorkflowId}/`)) out.push(info);
  }
  return out;
}

/** First start and last close over all executions of one workflow id (a continue-as-new chain is one phase). */
export function spanOf(executions: ExecutionFacts[], workflowId: string): { startMs: number; closeMs: number } | null {
  const mine = executions.filter((e) => e.workflowId === workflowId);
  if (mine.length === 0 || mine.some((e) => e.closeMs === undefined)) return null;
  return {
    startMs: Math.min(...mine.map((e) => e.startMs)),
    closeMs: Math.max(...mine.map((e) => e.closeMs!)),
  };
}
