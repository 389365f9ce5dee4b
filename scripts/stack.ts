/**
 * The local stack: Temporal dev server, a private PostgreSQL 15 cluster and MinIO, on loopback and free ports, with
 * all state under one folder. Each part steps aside when its real endpoint is configured (TEMPORAL_ADDRESS or a
 * temporal CLI profile chosen by TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE, DATABASE_URL, S3_ENDPOINT). Binaries are
 * found on PATH or in the per-machine cache, and built or installed once when missing. Readiness is checked by
 * talking to each service, never by sleeping.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  chownSync,
  openSync,
  closeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { S3Client, CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { SEARCH_ATTRIBUTES } from '../src/workflows/search-attributes';

/** Pinned versions of the binaries the stack builds with `go install` when they are not on the machine. */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
// MinIO's RELEASE.* tags are not valid Go module versions, so the proxy only serves commits as pseudo-versions.
// This is the newest commit on the module proxy (2026-02-12) and builds with the machines' Go.
export const MINIO_MODULE = 'github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c';
export const BIN_CACHE = process.env.FM_REIMPORT_BIN_CACHE ?? join(homedir(), '.cache', 'fm-reimport', 'bin');
const PG_BIN_CANDIDATES = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'];

export const DEV_S3_ACCESS_KEY = 'fmreimport';
// A local-only credential for the private MinIO on loopback; production credentials come from the environment.
export const DEV_S3_SECRET_KEY = 'fmreimport-local-minio';

export interface StackOptions {
  /** Folder holding every piece of state (git-ignored). */
  stateDir: string;
  /** Environment to read configured endpoints from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Start the Temporal Web UI (default true). */
  ui?: boolean;
  /** A codec server URL for the Web UI to decode payloads with. */
  uiCodecEndpoint?: string;
  /** Wipe the state folder first (tests start from nothing). */
  fresh?: boolean;
  /**
   * Keep the stack's data in memory (tmpfs, /dev/shm): MinIO's objects, the PostgreSQL cluster and Temporal's
   * database, removed when the stack stops. For throwaway stacks (tests, the benchmark): on this project's machines,
   * ext4 slowed down as test runs created and deleted many small files (inode allocation: a 25–150 KB PutObject cost
   * MinIO 2.4–4.7 ms of CPU on disk against 0.5–1.3 ms on tmpfs), so runs measured the disk's history, not the code.
   */
  inMemory?: boolean;
  log?: (line: string) => void;
}

export interface Stack {
  /** The variables that point the worker and client at this stack (only for the parts the stack started). */
  env: Record<string, string>;
  temporalUiUrl: string | undefined;
  stop(): Promise<void>;
}

interface Managed {
  name: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

function goInstall(module: string, log: (l: string) => void): void {
  const go = which('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) throw new Error(`cannot build ${module}: Go is not installed (https://go.dev/doc/install)`);
  mkdirSync(BIN_CACHE, { recursive: true });
  log(`building ${module} into ${BIN_CACHE} (once per machine; a few minutes)`);
  const r = spawnSync(go, ['install', module], {
    env: { ...process.env, GOBIN: BIN_CACHE, CGO_ENABLED: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`go install ${module} failed with exit code ${r.status}`);
}

/** Finds the `temporal` CLI: TEMPORAL_CLI_PATH, PATH, the cache, or builds it. */
export function ensureTemporalCli(log: (l: string) => void = console.error): string {
  const fromEnv = process.env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`TEMPORAL_CLI_PATH: no file at ${fromEnv}`);
    return fromEnv;
  }
  const cached = join(BIN_CACHE, 'temporal');
  if (existsSync(cached)) return cached;
  const onPath = which('temporal');
  if (onPath) return onPath;
  goInstall(TEMPORAL_CLI_MODULE, log);
  return cached;
}

export function ensureMinio(log: (l: string) => void = console.error): string {
  const fromEnv = process.env.MINIO_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`MINIO_PATH: no file at ${fromEnv}`);
    return fromEnv;
  }
  const cached = join(BIN_CACHE, 'minio');
  if (existsSync(cached)) return cached;
  const onPath = which('minio');
  if (onPath) return onPath;
  goInstall(MINIO_MODULE, log);
  return cached;
}

export function ensurePostgres(log: (l: string) => void = console.error): string {
  const found = () => PG_BIN_CANDIDATES.find((d) => existsSync(join(d, 'pg_ctl')));
  let dir = found();
  if (!dir) {
    if (process.getuid?.() !== 0) throw new Error('PostgreSQL server binaries are missing: apt-get install postgresql');
    log('installing PostgreSQL from Debian packages');
    for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'postgresql']]) {
      const r = spawnSync('apt-get', args, {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed`);
    }
    dir = found();
    if (!dir) throw new Error('PostgreSQL installed but pg_ctl was not found');
  }
  return dir;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, proc?: ChildProcess) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited with code ${proc.exitCode} while starting`);
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await delay(150);
  }
  throw new Error(
    `${what} was not ready within ${timeoutMs / 1000}s${lastError instanceof Error ? `: ${lastError.message}` : ''}`,
  );
}

function spawnService(name: string, cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv) {
  const fd = openSync(logFile, 'a');
  // detached: own process group, so stop() can signal the service and every child it spawned.
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, ...env } });
  closeSync(fd);
  child.unref();
  return child;
}

async function stopProcess(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timedOut = await Promise.race([exited.then(() => false), delay(timeoutMs).then(() => true)]);
  if (timedOut) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await exited;
  }
}

/** Kills services a previous run left behind (for example after a SIGKILL), using the pid files in the state dir. */
function reapStale(stateDir: string): void {
  for (const name of ['temporal', 'minio']) {
    const pidFile = join(stateDir, `${name}.pid`);
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (pid > 0) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* not running */
      }
    }
    rmSync(pidFile, { force: true });
  }
  const pgData = join(stateDir, 'pg');
  if (existsSync(join(pgData, 'postmaster.pid'))) {
    const pgBin = PG_BIN_CANDIDATES.find((d) => existsSync(join(d, 'pg_ctl')));
    if (pgBin) asPostgres(join(pgBin, 'pg_ctl'), ['-D', pgData, '-m', 'immediate', '-w', 'stop'], true);
  }
}

function asPostgres(cmd: string, args: string[], ignoreFailure = false) {
  const root = process.getuid?.() === 0;
  // initdb and postgres refuse to run as root: use the postgres system account that Debian's package creates.
  const r = root
    ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' })
    : spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0 && !ignoreFailure) {
    throw new Error(`${cmd.split('/').pop()} failed: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
  }
  return r;
}

const TEMPORAL_START_ATTEMPTS = 3;

/** The dev server on `port` (its Web UI on `uiPort` unless `ui` is false), its state in `dir`. */
function spawnTemporal(cli: string, opts: StackOptions, dir: string, port: number, uiPort: number, logFile: string) {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--db-filename',
    join(dir, 'temporal.db'),
    '--log-level',
    'warn',
    // The attributes the Web UI filters runs by: a server must know them before a run sets them.
    ...SEARCH_ATTRIBUTES.flatMap((a) => ['--search-attribute', `${a.name}=${a.type}`]),
  ];
  if (opts.ui === false) args.push('--headless');
  else {
    args.push('--ui-ip', '127.0.0.1', '--ui-port', String(uiPort));
    if (opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  }
  const child = spawnService('temporal', cli, args, logFile);
  writeFileSync(join(opts.stateDir, 'temporal.pid'), String(child.pid));
  return child;
}

/** Whether a Temporal frontend answers at `address`. */
async function answers(address: string): Promise<boolean> {
  const conn = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    await conn.workflowService.getSystemInfo({});
    return true;
  } finally {
    await conn.close();
  }
}

/** The last `n` non-empty lines a log got after byte `from`, on one line (a service's own log: no secrets in it). */
function lastLines(file: string, from: number, n: number): string {
  if (!existsSync(file)) return '';
  const text = readFileSync(file).subarray(from).toString('utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-n)
    .join(' | ')
    .slice(-2000);
}

/**
 * Starts the dev server on ports chosen free and waits until it answers. The ports are free when chosen and bound by
 * the server a moment later (it picks more of its own): on a busy machine another process can take one in between,
 * and the server exits at once. Such a start is tried again on fresh ports, up to TEMPORAL_START_ATTEMPTS in all.
 */
async function startDevServer(
  cli: string,
  opts: StackOptions,
  dir: string,
  log: (l: string) => void,
): Promise<{ child: ChildProcess; port: number; uiPort: number }> {
  const logFile = join(dir, 'server.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const uiPort = await freePort();
    const logFrom = existsSync(logFile) ? statSync(logFile).size : 0;
    const child = spawnTemporal(cli, opts, dir, port, uiPort, logFile);
    try {
      await waitFor('Temporal dev server', () => answers(`127.0.0.1:${port}`), 60_000, child);
      return { child, port, uiPort };
    } catch (err) {
      // Exited by itself (before stopProcess below, which ends one that merely did not answer in time).
      const exited = child.exitCode !== null || child.signalCode !== null;
      await stopProcess(child);
      const tail = lastLines(logFile, logFrom, 5);
      if (!exited || attempt >= TEMPORAL_START_ATTEMPTS) {
        throw new Error(`${(err as Error).message}${tail ? `; its log ends: ${tail}` : ''}`);
      }
      log(`temporal: the dev server exited while starting (attempt ${attempt} of ${TEMPORAL_START_ATTEMPTS}): ${tail}`);
    }
  }
}

/** The Temporal dev server alone, with its search attributes (and its Web UI unless `ui` is false). */
export async function startTemporal(
  opts: StackOptions,
  log: (l: string) => void,
): Promise<Managed & { env: Record<string, string>; ui?: string }> {
  const cli = ensureTemporalCli(log);
  const dir = join(opts.stateDir, 'temporal');
  mkdirSync(dir, { recursive: true });
  const { child, port, uiPort } = await startDevServer(cli, opts, dir, log);
  const address = `127.0.0.1:${port}`;
  const ui = opts.ui === false ? undefined : `http://127.0.0.1:${uiPort}`;
  if (ui) await waitFor('Temporal Web UI', async () => (await fetch(ui)).ok, 30_000, child);
  log(`temporal: ${address}${ui ? ` (Web UI ${ui})` : ''}`);
  // The connection as a temporal CLI profile, used by fm-reimport and by `temporal` given TEMPORAL_CONFIG_FILE: a
  // profile of the operator's own file (a cluster's namespace, TLS, API key) must not mix with the local server.
  const profileFile = join(dir, 'temporal.toml');
  writeFileSync(profileFile, `[profile.default]\naddress = "${address}"\nnamespace = "default"\n`);
  return {
    name: 'temporal',
    env: {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_CONFIG_FILE: profileFile,
      TEMPORAL_PROFILE: 'default',
      ...(ui ? { TEMPORAL_UI_URL: ui } : {}),
    },
    ui,
    stop: async () => {
      await stopProcess(child);
      rmSync(join(opts.stateDir, 'temporal.pid'), { force: true });
    },
  };
}

async function startPostgres(
  opts: StackOptions,
  log: (l: string) => void,
): Promise<Managed & { env: Record<string, string> }> {
  const bin = ensurePostgres(log);
  const data = join(opts.stateDir, 'pg');
  const root = process.getuid?.() === 0;
  if (!existsSync(join(data, 'PG_VERSION'))) {
    mkdirSync(data, { recursive: true });
    if (root) chownSync(data, pgUid(), pgGid());
    asPostgres(join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C.UTF-8',
      '-N',
    ]);
  }
  const port = await freePort();
  const logFile = join(data, 'server.log');
  // Loopback TCP only; no Unix socket (the socket path limit breaks in deep work trees). fsync off: this cluster
  // is for development and tests, where speed matters and a crash costs nothing.
  const pgOpts = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', logFile, '-o', pgOpts, '-w', '-t', '60', 'start']);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitFor(
    'PostgreSQL',
    async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        const r = await c.query<{ exists: boolean }>(
          `select exists(select 1 from pg_database where datname = 'fm_reimport') as exists`,
        );
        if (!r.rows[0]?.exists) await c.query('create database fm_reimport');
      } finally {
        await c.end();
      }
      return true;
    },
    30_000,
  );
  const url = `postgres://postgres@127.0.0.1:${port}/fm_reimport`;
  log(`postgres: 127.0.0.1:${port}`);
  return {
    name: 'postgres',
    env: { DATABASE_URL: url },
    stop: async () => {
      asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop'], true);
    },
  };
}

function pgUid(): number {
  return Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
}
function pgGid(): number {
  return Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
}

async function startMinio(
  opts: StackOptions,
  env: NodeJS.ProcessEnv,
  log: (l: string) => void,
): Promise<Managed & { env: Record<string, string> }> {
  const bin = ensureMinio(log);
  const dir = join(opts.stateDir, 'minio');
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const port = await freePort();
  const consolePort = await freePort();
  const child = spawnService(
    'minio',
    bin,
    ['server', data, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet'],
    join(dir, 'server.log'),
    {
      MINIO_ROOT_USER: DEV_S3_ACCESS_KEY,
      MINIO_ROOT_PASSWORD: DEV_S3_SECRET_KEY,
      MINIO_BROWSER: 'off',
      MINIO_UPDATE: 'off',
    },
  );
  writeFileSync(join(opts.stateDir, 'minio.pid'), String(child.pid));
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor('MinIO', async () => (await fetch(`${endpoint}/minio/health/ready`)).ok, 60_000, child);
  const bucket = env.S3_BUCKET || 'nexus-files';
  await ensureBucket(endpoint, bucket);
  log(`minio: ${endpoint} (bucket ${bucket})`);
  return {
    name: 'minio',
    env: {
      S3_ENDPOINT: endpoint,
      S3_ACCESS_KEY_ID: DEV_S3_ACCESS_KEY,
      S3_SECRET_ACCESS_KEY: DEV_S3_SECRET_KEY,
      S3_BUCKET: bucket,
      S3_FORCE_PATH_STYLE: 'true',
      S3_REGION: 'us-east-1',
    },
    stop: async () => {
      await stopProcess(child);
      rmSync(join(opts.stateDir, 'minio.pid'), { force: true });
    },
  };
}

/**
 * A folder on tmpfs for a stack's data, named after its state folder, with the pid of the process that started the
 * stack; folders whose starter is gone (a run that was killed) are removed first, so memory is not held by stacks
 * nobody will stop. Undefined where /dev/shm is not writable (the data then stays on disk).
 */
function memoryRoot(stateDir: string, log: (l: string) => void): string | undefined {
  const shm = '/dev/shm';
  try {
    accessSync(shm, constants.W_OK);
  } catch {
    log('/dev/shm is not writable here; the stack keeps its data on disk');
    return undefined;
  }
  for (const name of readdirSync(shm)) {
    if (!name.startsWith(SHM_PREFIX)) continue;
    let owner = 0;
    try {
      owner = Number(readFileSync(join(shm, name, 'owner.pid'), 'utf8'));
    } catch {
      // No owner recorded: nobody will stop it.
    }
    if (!(owner > 0 && alive(owner))) rmSync(join(shm, name), { recursive: true, force: true });
  }
  const tag = createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 12);
  const root = join(shm, `${SHM_PREFIX}${tag}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'owner.pid'), String(process.pid));
  return root;
}

const SHM_PREFIX = 'fm-reimport-stack-';
/** The services' folders in a state folder (links into tmpfs for a stack in memory). */
const SERVICE_DIRS = ['pg', 'temporal', 'minio'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function ensureBucket(endpoint: string, bucket: string): Promise<void> {
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: DEV_S3_ACCESS_KEY, secretAccessKey: DEV_S3_SECRET_KEY },
  });
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    s3.destroy();
  }
}

/** Starts whatever part of the stack is not configured in the environment. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const log = opts.log ?? ((l: string) => console.error(`[stack] ${l}`));
  const env = opts.env ?? process.env;
  const stateDir = resolve(opts.stateDir);
  // Stale services first: their pid files are in the state folder that `fresh` removes.
  if (existsSync(stateDir)) reapStale(stateDir);
  if (opts.fresh) rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  // In memory: each service's folder in the state folder is a link into tmpfs (everything else works as on disk).
  const memory = opts.inMemory ? memoryRoot(stateDir, log) : undefined;
  if (memory) {
    for (const name of SERVICE_DIRS) {
      mkdirSync(join(memory, name));
      rmSync(join(stateDir, name), { recursive: true, force: true });
      symlinkSync(join(memory, name), join(stateDir, name));
    }
  }
  const started: Managed[] = [];
  const out: Record<string, string> = {};
  let ui: string | undefined = env.TEMPORAL_UI_URL;
  const stop = async () => {
    for (const m of started.reverse()) {
      try {
        await m.stop();
      } catch (err) {
        log(`stopping ${m.name} failed: ${String(err)}`);
      }
    }
    started.length = 0;
    if (memory) {
      for (const name of SERVICE_DIRS) rmSync(join(stateDir, name), { force: true });
      rmSync(memory, { recursive: true, force: true });
    }
  };
  try {
    const tasks: Promise<void>[] = [];
    // A chosen profile of the temporal CLI's file is a configured endpoint too; its default file alone is not, so a
    // developer's everyday CLI profile never sends a demo or a test run to a real cluster.
    if (!env.TEMPORAL_ADDRESS && !env.TEMPORAL_PROFILE && !env.TEMPORAL_CONFIG_FILE) {
      tasks.push(
        startTemporal({ ...opts, stateDir }, log).then((t) => {
          started.push(t);
          Object.assign(out, t.env);
          ui = t.ui;
        }),
      );
    }
    if (!env.DATABASE_URL) {
      tasks.push(
        startPostgres({ ...opts, stateDir }, log).then((p) => void (started.push(p), Object.assign(out, p.env))),
      );
    }
    if (!env.S3_ENDPOINT) {
      tasks.push(
        startMinio({ ...opts, stateDir }, env, log).then((m) => void (started.push(m), Object.assign(out, m.env))),
      );
    }
    const results = await Promise.allSettled(tasks);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (err) {
    await stop();
    throw err;
  }
  writeFileSync(
    join(stateDir, 'stack.env'),
    Object.entries(out)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
  );
  return { env: out, temporalUiUrl: ui, stop };
}
