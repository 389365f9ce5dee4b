/**
 * The worker container's healthcheck (docker-compose.yml): healthy while a worker on this host polls both of its task
 * queues — workflow tasks on TEMPORAL_TASK_QUEUE and container downloads on `<queue>-files` — as Temporal last saw
 * it. A worker's default identity is `<pid>@<hostname>` and a container's hostname is its own, so another
 * container's worker on the same queues does not count. Exits 0 when healthy, 1 with the reason on stderr.
 */
import { hostname } from 'node:os';
import { Connection } from '@temporalio/client';
import type { Config } from '../src/config';
import { temporalConnectionOptions } from '../src/tls';

/** The SDK's TaskQueueType values (temporal.api.enums.v1). */
const WORKFLOW = 1;
const ACTIVITY = 2;
/** A poller waits up to about a minute in a long poll; the server records it when the poll starts. */
const DEFAULT_MAX_AGE_MS = 2 * 60_000;

/** What keeps the worker on `host` from being healthy; empty when it is. */
export async function workerHealthProblems(
  config: Pick<Config, 'temporal'>,
  opts: { host?: string; maxAgeMs?: number } = {},
): Promise<string[]> {
  const suffix = `@${opts.host ?? hostname()}`;
  const oldest = Date.now() - (opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS);
  const connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: 5_000 });
  try {
    const queues = [
      { name: config.temporal.taskQueue, type: WORKFLOW, what: 'workflow tasks' },
      { name: `${config.temporal.taskQueue}-files`, type: ACTIVITY, what: 'container downloads' },
    ];
    const problems: string[] = [];
    for (const q of queues) {
      const { pollers } = await connection.workflowService.describeTaskQueue({
        namespace: config.temporal.namespace,
        taskQueue: { name: q.name },
        taskQueueType: q.type,
      });
      const ours = (pollers ?? []).filter(
        (p) => p.identity?.endsWith(suffix) && Number(p.lastAccessTime?.seconds ?? 0) * 1000 >= oldest,
      );
      if (ours.length === 0) problems.push(`no worker on this host polls ${q.name} (${q.what})`);
    }
    return problems;
  } finally {
    await connection.close();
  }
}

if (require.main === module) {
  void (async () => {
    const { loadConfig } = await import('../src/config');
    try {
      const problems = await workerHealthProblems(loadConfig(process.env, 'client'));
      for (const p of problems) process.stderr.write(`${p}\n`);
      process.exit(problems.length === 0 ? 0 : 1);
    } catch (err) {
      process.stderr.write(`health check failed: ${(err as Error).message}\n`);
      process.exit(1);
    }
  })();
}
