// The FileMaker simulator: Data API, OData v4 and container streaming on one port; ground truth, fault switches and
// counters on a separate admin port that the engine never talks to.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { AuthMode, ClarisIdToken } from './claris-id';
import { SimContext, type SimulatorStats } from './context';
import { DataApi } from './dataapi';
import { Dataset } from './dataset';
import { parseFaultPatch, resolveFaults, type Api, type FaultSettings, type Profile } from './faults';
import { HTML_200_PAGE, htmlError, readBody, send } from './http';
import {
  LiveChanges,
  MutationError,
  mutate,
  parseLiveOptions,
  type LiveOptions,
  type Mutation,
  type MutationResult,
} from './mutations';
import { OData } from './odata';
import type { Preset } from './schema';
import { Rng } from './prng';
import { handleStreaming } from './streaming';
import { qualitySummary, truthContainers, truthJournal, truthTable, truthTables } from './truth';

export type { FaultSettings, Profile } from './faults';
export type { SimulatorStats } from './context';
export type { AuthMode, ClarisIdToken } from './claris-id';
export { tokenCommand } from './claris-id';
export type { LiveOptions, Mutation, MutationResult } from './mutations';

export interface SimulatorOptions {
  preset?: Preset;
  scale?: number;
  seed?: number;
  profile?: Profile;
  faults?: Partial<FaultSettings>;
  sizeScale?: number;
  /** The first `count` documents are sound PDF containers of exactly `bytes`. */
  largeDocuments?: { count: number; bytes: number };
  host?: string;
  port?: number;
  adminPort?: number;
  database?: string;
  username?: string;
  password?: string;
  /**
   * `basic` (default): a FileMaker Server host, Basic sign-in. `fmid`: a FileMaker Cloud host, both APIs take only
   * `Authorization: FMID <token>` with a token from the admin port's `POST /fmid/tokens`, alive `fmidTokenLifetimeMs`.
   */
  auth?: AuthMode;
  /** Change the data on its own while serving, at these rates (see `setLive`). */
  live?: LiveOptions;
}

export interface RunningSimulator {
  url: string;
  adminUrl: string;
  database: string;
  username: string;
  password: string;
  auth: AuthMode;
  /** A Claris ID token, as the admin port's `POST /fmid/tokens` issues it. */
  issueFmidToken(): ClarisIdToken;
  setFaults(f: Partial<FaultSettings>): void;
  stats(): SimulatorStats;
  close(): Promise<void>;
  /** In-process access for tests and tools that run alongside; the engine must not use it. */
  readonly dataset: Dataset;
  readonly faults: FaultSettings;
  restart(): void;
  resetStats(): void;
  /**
   * Calls `listener` as each request arrives (before any fault or latency), with its API and path: a tool that needs
   * to know when requests came or which table they named (the bench, attributing them to phases). Returns `remove`.
   */
  onRequest(listener: (api: Api, path: string) => void): () => void;
  /** Applies a mutation list as `POST /mutations` does: all of it, or nothing (throws MutationError). */
  mutate(list: Mutation[]): MutationResult[];
  /** Starts, changes (`opts`) or stops (`null`) the live changes, as `PUT /live` does (throws MutationError). */
  setLive(opts: LiveOptions | null): void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function apiOf(path: string): Api | null {
  if (path.startsWith('/fmi/data/')) return 'data';
  if (path === '/fmi/odata/v4' || path.startsWith('/fmi/odata/v4/')) return 'odata';
  if (path.startsWith('/Streaming_SSL/')) return 'container';
  return null;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<RunningSimulator> {
  const seed = opts.seed ?? 1;
  const ds = new Dataset({
    preset: opts.preset ?? 'tiny',
    scale: opts.scale ?? 1,
    seed,
    sizeScale: opts.sizeScale ?? 1,
    largeDocuments: opts.largeDocuments,
  });
  const config = {
    database: opts.database ?? 'WEP-DatabaseV2',
    username: opts.username ?? 'admin',
    password: opts.password ?? 'sim-password',
    seed,
    auth: opts.auth ?? 'basic',
  };
  const issueFmidToken = () => ctx.clarisId.issue(config.username, ctx.settings.fmidTokenLifetimeMs);
  const ctx = new SimContext(ds, config, resolveFaults(opts.profile ?? 'clean', opts.faults));
  const dataApi = new DataApi(ctx);
  const odata = new OData(ctx);
  const host = opts.host ?? '127.0.0.1';
  // Records that a mutation leaves to chance (no recordId) are picked from this, so scripts replay alike.
  const mutationRng = new Rng(seed, 'mutations');
  const live = new LiveChanges(ds, seed);
  const setLive = (o: unknown) => live.set(parseLiveOptions(ds, o));
  setLive(opts.live ?? null);

  let restartTimer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (restartTimer) clearInterval(restartTimer);
    restartTimer = undefined;
    const every = ctx.settings.restartEveryMs;
    if (every > 0) {
      restartTimer = setInterval(() => ctx.restart(), every);
      restartTimer.unref();
    }
  };
  const setFaults = (patch: Partial<FaultSettings>) => {
    ctx.faults.apply(patch);
    if ('quotaUsedBytes' in patch) ctx.quotaSent = 0;
    if ('restartEveryMs' in patch) schedule();
  };
  schedule();

  const requestListeners = new Set<(api: Api, path: string) => void>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://sim');
    const api = apiOf(url.pathname);
    if (!api) return send(ctx, res, 'data', 404, 'text/html', '<html><body><h1>404 Not Found</h1></body></html>');
    ctx.requests[api]++;
    ctx.requests.total++;
    for (const listener of requestListeners) listener(api, url.pathname);
    ctx.changeInFlight(1);
    res.once('close', () => ctx.changeInFlight(-1));
    const s = ctx.settings;
    const forced = ctx.faults.takeForced(api);
    if (forced !== null) {
      if (forced === 401 && api === 'data') {
        return send(
          ctx,
          res,
          api,
          401,
          'application/json',
          JSON.stringify({
            messages: [{ code: '952', message: 'Invalid FileMaker Data API token (*)' }],
            response: {},
          }),
        );
      }
      return send(ctx, res, api, forced, 'text/html', htmlError(forced));
    }
    if (s.maxConcurrentRequests > 0 && ctx.inFlight > s.maxConcurrentRequests) {
      ctx.faults.count('concurrency_502');
      return send(ctx, res, api, 502, 'text/html', htmlError(502));
    }
    if (ctx.faults.inBurst()) return send(ctx, res, api, s.burstStatus, 'text/html', htmlError(s.burstStatus));
    if (s.html200Rate > 0 && ctx.faults.rng.chance(s.html200Rate)) {
      ctx.faults.count('html_200');
      return send(ctx, res, api, 200, 'text/html; charset=utf-8', HTML_200_PAGE);
    }
    if (s.latencyMs > 0 || s.latencyJitterMs > 0) {
      ctx.faults.count('latency');
      await sleep(s.latencyMs + ctx.faults.rng.next() * s.latencyJitterMs);
    }
    if (api === 'data') return dataApi.handle(req, res, url);
    if (api === 'odata') return odata.handle(req, res, url);
    return handleStreaming(ctx, req, res, url);
  };

  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`simulator error: ${String(err)}`);
      } else res.destroy();
    });
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const admin = createServer((req, res) => {
    adminHandle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: String(err) }));
    });
  });
  const adminJson = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  };
  const adminHandle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && path === '/truth/tables')
      return adminJson(res, 200, { database: config.database, tables: truthTables(ds) });
    if (method === 'GET' && path === '/truth/quality') return adminJson(res, 200, qualitySummary(ds));
    if (method === 'GET' && path.startsWith('/truth/tables/')) {
      const name = decodeURIComponent(path.slice('/truth/tables/'.length));
      const records = truthTable(ds, name);
      return records
        ? adminJson(res, 200, { table: name, records })
        : adminJson(res, 404, { error: `no table ${name}` });
    }
    if (method === 'GET' && path === '/truth/containers') {
      const name = url.searchParams.get('table') ?? '';
      const containers = truthContainers(ds, name, url.searchParams.get('hashes') !== 'false');
      return containers
        ? adminJson(res, 200, { table: name, containers })
        : adminJson(res, 404, { error: `no table ${name}` });
    }
    if (method === 'GET' && path === '/truth/journal') {
      const since = url.searchParams.get('since') ?? '0';
      if (!/^\d+$/.test(since)) return adminJson(res, 400, { error: 'since must be a journal seq' });
      return adminJson(res, 200, truthJournal(ds, Number(since)));
    }
    if ((method === 'POST' && path === '/mutations') || (method === 'PUT' && path === '/live')) {
      try {
        const body: unknown = JSON.parse((await readBody(req)).toString('utf8') || 'null');
        if (path === '/live') {
          setLive(body);
          return adminJson(res, 200, live.options);
        }
        return adminJson(res, 200, { results: mutate(ds, body, mutationRng) });
      } catch (e) {
        if (e instanceof MutationError || e instanceof SyntaxError) return adminJson(res, 400, { error: e.message });
        throw e;
      }
    }
    if (method === 'GET' && path === '/live') return adminJson(res, 200, live.options);
    if (method === 'GET' && path === '/stats') return adminJson(res, 200, ctx.stats());
    if (method === 'GET' && path === '/faults') return adminJson(res, 200, ctx.settings);
    if ((method === 'POST' || method === 'PUT') && path === '/faults') {
      let patch: Partial<FaultSettings>;
      try {
        patch = parseFaultPatch(JSON.parse((await readBody(req)).toString('utf8') || '{}'));
      } catch (e) {
        return adminJson(res, 400, { error: (e as Error).message });
      }
      setFaults(patch);
      return adminJson(res, 200, ctx.settings);
    }
    if (method === 'POST' && path === '/fmid/tokens') return adminJson(res, 200, issueFmidToken());
    if (method === 'POST' && path === '/restart') {
      ctx.restart();
      return adminJson(res, 200, { restarted: true });
    }
    if (method === 'POST' && path === '/reset-stats') {
      ctx.resetStats();
      return adminJson(res, 200, ctx.stats());
    }
    return adminJson(res, 404, { error: 'not found' });
  };

  const port = await listen(server, opts.port ?? 0, host);
  const adminPort = await listen(admin, opts.adminPort ?? 0, host);
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}`,
    adminUrl: `http://${urlHost}:${adminPort}`,
    database: config.database,
    username: config.username,
    password: config.password,
    auth: config.auth,
    issueFmidToken,
    dataset: ds,
    get faults() {
      return ctx.settings;
    },
    setFaults,
    stats: () => ctx.stats(),
    restart: () => ctx.restart(),
    resetStats: () => ctx.resetStats(),
    onRequest: (listener) => {
      requestListeners.add(listener);
      return () => requestListeners.delete(listener);
    },
    mutate: (list) => mutate(ds, list, mutationRng),
    setLive,
    close: async () => {
      if (restartTimer) clearInterval(restartTimer);
      live.stop();
      const closing = Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        new Promise<void>((resolve) => admin.close(() => resolve())),
      ]);
      server.closeIdleConnections();
      admin.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closing;
    },
  };
}
