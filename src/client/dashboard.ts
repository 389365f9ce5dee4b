/**
 * The read-only web dashboard of a run (`status --web`, `npm run dashboard`): one page that polls `GET /api/progress`,
 * answered from the run's `progress` query. node:http only. There are no write endpoints: pausing, settings and
 * cancelling stay with the CLI, where they are explicit.
 *
 * What reaches the browser is a projection of `RunProgress` field by field (counts, reason codes, FileMaker-side ids
 * of workflows), so a field added to the query later does not show up here unreviewed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import type { Config } from '../config';
import type { PhaseProgress, RunProgress } from '../workflows/messages';
import { webUiLink } from './operations';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard-page';

export interface DashboardOptions {
  client: Client;
  config: Config;
  /** Workflow id of the reimport to show. */
  runId: string;
  /** 0 picks a free port. */
  port?: number;
  /** Loopback by default: the page shows workflow ids and counts of a clinic's run and has no login. */
  host?: string;
  /** Who signed the run off and when, from the database (unset: the page does not say). */
  signoff?: () => Promise<{ by: string; at: string } | null>;
}

export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

/** What `GET /api/progress` answers. */
export interface DashboardSnapshot {
  runId: string;
  fetchedAt: string;
  runLink?: string;
  /** Web UI link of each phase's child workflow, by phase. */
  phaseLinks: Record<string, string>;
  progress?: RunProgress;
  /** Why there is no progress (the run is not found, closed without a worker to answer, …). */
  error?: string;
  /** Temporal's status of the run when it is closed (COMPLETED, FAILED, TERMINATED, …). */
  closedStatus?: string;
  /**
   * The command that writes the run's reconciliation certificate. The page holds patient data, so this dashboard,
   * which has no login, never serves it: it is written where the operator says.
   */
  certificateCommand: string;
  /** The run's sign-off: who and when, null when not signed off, absent when the database is not configured. */
  signoff?: { by: string; at: string } | null;
}

export interface RunListEntry {
  workflowId: string;
  status: string;
  startTime: string;
  closeTime?: string;
  link?: string;
}

// Several open tabs poll every second; one query per window is enough for all of them.
const PROGRESS_TTL_MS = 500;
const RUNS_TTL_MS = 5_000;
const RUNS_LIMIT = 20;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
  'Cache-Control': 'no-store',
};

/** Shares one in-flight or recent load between callers. `load` must not reject. */
function coalesce<T>(ttlMs: number, load: () => Promise<T>): () => Promise<T> {
  let at = 0;
  let pending: Promise<T> | undefined;
  return () => {
    const now = Date.now();
    if (!pending || now - at >= ttlMs) {
      at = now;
      pending = load();
    }
    return pending;
  };
}

/** `keys` of `from`, each one even when undefined (a copy, not a view). */
function pick<T, K extends keyof T>(from: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, from[k]])) as Pick<T, K>;
}

/** The fields of a phase the page shows, in their order on the wire (the nested ones are projected in turn). */
const PHASE_FIELDS = [
  'phase',
  'status',
  'workflowId',
  'total',
  'done',
  'byState',
  'byReason',
  'bytesDownloaded',
  'relinked',
  'cooldowns',
  'cooldownUntil',
  'startedAt',
  'finishedAt',
  'etaSeconds',
  'table',
  'paused',
  'pausedForQuota',
  // Counts only: the ids behind them stay in the database.
  'delta',
] as const;
const COUNT_FIELDS = ['imported', 'unlinked', 'skipped', 'failed'] as const;
const RUN_FIELDS = [
  'runId',
  'status',
  'dryRun',
  'currentPhase',
  'phases',
  'settings',
  'transferBudgetBytes',
  'bytesDownloaded',
  // Counts per table: what vanished from FileMaker, read before the delete phase.
  'vanished',
] as const;

function projectPhase(p: PhaseProgress): PhaseProgress {
  return { ...pick(p, PHASE_FIELDS), byState: pick(p.byState, COUNT_FIELDS), byReason: { ...p.byReason } };
}

function projectRun(p: RunProgress): RunProgress {
  return {
    ...pick(p, RUN_FIELDS),
    phases: p.phases.map(projectPhase),
    settings: { ...p.settings },
    vanished: p.vanished?.map((v) => ({ ...v })),
  };
}

function message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** Serves the dashboard of `runId`; resolves once it listens. */
export async function serveDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const { client, config, runId } = opts;
  const host = opts.host ?? '127.0.0.1';
  const { uiUrl, namespace } = config.temporal;
  const link = (workflowId: string) => (uiUrl ? webUiLink(uiUrl, namespace, workflowId) : undefined);
  const handle = client.workflow.getHandle(runId);

  const progress = coalesce(PROGRESS_TTL_MS, async (): Promise<DashboardSnapshot> => {
    const snap: DashboardSnapshot = {
      runId,
      fetchedAt: new Date().toISOString(),
      runLink: link(runId),
      phaseLinks: {},
      certificateCommand: `npm run client -- certificate ${runId} --out ${runId}.html --pdf ${runId}.pdf`,
    };
    if (opts.signoff) snap.signoff = await opts.signoff().catch(() => undefined);
    try {
      snap.progress = projectRun(await handle.query<RunProgress>('progress'));
      for (const ph of snap.progress.phases) {
        const l = ph.workflowId ? link(ph.workflowId) : undefined;
        if (l) snap.phaseLinks[ph.phase] = l;
      }
    } catch (err) {
      // A closed run answers queries only while a worker can replay it; say what state it is in instead.
      try {
        const d = await handle.describe();
        snap.closedStatus = d.status.name;
        snap.error =
          d.status.name === 'RUNNING'
            ? `progress query failed: ${message(err)}`
            : `run is ${d.status.name.toLowerCase()}; no worker answered its progress query`;
      } catch (describeErr) {
        snap.error = `run not available: ${message(describeErr)}`;
      }
    }
    return snap;
  });

  const runs = coalesce(RUNS_TTL_MS, async (): Promise<{ runs: RunListEntry[]; error?: string }> => {
    const list: RunListEntry[] = [];
    try {
      for await (const w of client.workflow.list({ query: "WorkflowType='reimport'", pageSize: RUNS_LIMIT })) {
        list.push({
          workflowId: w.workflowId,
          status: w.status.name,
          startTime: w.startTime.toISOString(),
          closeTime: w.closeTime?.toISOString(),
          link: link(w.workflowId),
        });
        if (list.length >= RUNS_LIMIT) break;
      }
      return { runs: list };
    } catch (err) {
      return { runs: list, error: message(err) };
    }
  });

  let allowedHosts: Set<string> | undefined;

  const send = (res: ServerResponse, status: number, type: string, body: string, head: boolean) => {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(head ? undefined : body);
  };
  const json = (res: ServerResponse, value: unknown, head: boolean) =>
    send(res, 200, 'application/json; charset=utf-8', JSON.stringify(value), head);

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    // A page on another site could resolve its own name to 127.0.0.1 (DNS rebinding) and read this one; a loopback
    // dashboard only answers requests addressed to loopback.
    if (allowedHosts && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      send(res, 421, 'text/plain; charset=utf-8', 'misdirected request\n', false);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'read-only dashboard\n', false);
      return;
    }
    const head = req.method === 'HEAD';
    const path = new URL(req.url ?? '/', 'http://dashboard.invalid').pathname;
    switch (path) {
      case '/':
        send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML, head);
        return;
      case '/api/progress':
        json(res, await progress(), head);
        return;
      case '/api/runs':
        json(res, await runs(), head);
        return;
      case '/favicon.ico':
        res.writeHead(204, SECURITY_HEADERS).end();
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
    }
  };

  const server = createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `${message(err)}\n`, false);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  if (LOOPBACK.has(host)) {
    allowedHosts = new Set([`${hostInUrl}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);
  }

  return {
    url: `http://${hostInUrl}:${port}/`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Open tabs hold keep-alive connections; they would keep close() waiting for their idle timeout.
        server.closeAllConnections();
      }),
  };
}
