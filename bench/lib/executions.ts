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
