/**
 * `npm run bench`: the files phases (documents, images) against the FileMaker simulator at the clinic's counts with
 * the `fmcloud` profile, and the figures the issue's targets are judged by. A script that prints figures, not a test.
 *
 *   npm run bench                               seed counts, size scale 0.05, 200 records per table for the naive client
 *   npm run bench -- --quick                    demo counts (a tenth), 40 records per table: a smoke run
 *   npm run bench -- --size-scale 0.02 --sample 100 --fm-concurrency 6 --concurrency 4 --batch 20 --timeout-min 20
 *   npm run bench -- --cooldown-base 0.5 --cooldown-max 10     the engine with short cooldowns
 *   npm run bench -- --faults '{"burstRate":0}'                fmcloud without its 502 bursts
 *   npm run bench -- --on-disk                  the stack's data in .stack/bench instead of tmpfs
 *   npm run bench -- --full                     every phase, not only patients and the files (--full --quick: demo)
 *   npm run bench -- --full --phases backup,delete,patients --sample 1 --faults '{"burstRate":0}'
 *                                               only these phases in both reimports, and no incremental one: about a
 *                                               minute, to compare two versions of a core phase side by side
 *
 * One run, all on a fresh local stack in .stack/bench (Temporal, PostgreSQL, MinIO) and one simulator. The stack keeps
 * its data on tmpfs when the objects fit in memory twice over: on this machine's disk, file creation cost MinIO more
 * CPU than the worker spent, and slowed down from run to run (scripts/stack.ts, inMemory).
 * 1. a reimport of patients, documents and images (documents and images link to patients), the workers (one per core,
 *    `--workers`) in child processes as production runs them (compiled, `npm run worker:prod`'s flags, a prebuilt
 *    workflow bundle) so each one's peak RSS is its own (VmHWM from /proc, reset once the worker is ready, so
 *    start-up is reported apart);
 * 2. a second reimport right after, which must download nothing (files relink);
 * 3. the naive sequential client (bench/lib/sequential.ts) over a sample of the same records, extrapolated.
 * The simulator's counters are reset before the naive client so its requests are its own.
 *
 * `--full`: both reimports run every phase, as a nightly run does (backup, delete, the four core phases, the files,
 * validation), and after the files figures the bench prints every phase of both runs side by side against the
 * source's lower bound, CPU per part of the stack, and each target of the whole run (bench/lib/full-report.ts). The
 * lower bounds of the core phases come from a reference read of their tables before the stack starts
 * (bench/lib/table-reads.ts); the FileMaker requests of each phase are counted by arrival (bench/lib/request-log.ts).
 * Then 1% of every source table's records change in the simulator (seeded) and an incremental reimport runs; then
 * another 1% change and a full reimport runs, the one the incremental run is printed beside, with the incremental
 * targets (bench/lib/incremental.ts). Each is terminated after twice the second full run's time (at least 5 min), and
 * the sequential client after them reads the changed source. The plain bench runs
 * no incremental reimport: its second run has only some of the phases, and its figures stay as they were.
 *
 * Size scale: the clinic's containers total ~26 GB (documents ~0.5 MB, image renditions a few MB). At 0.05 they are
 * ~1.3 GB, ~50 s at fmcloud's 25 MiB/s, while ~17,900 files × ~1.05 requests (one OData GET each, plus a share of
 * the batch's find) at 40 ms mean latency and 8 requests at once take ~95 s: the source is request-bound, as it is
 * for the clinic's many small documents, and an engine at target speed keeps the whole bench to about ten minutes (a reimport still
 * running after --timeout-min, default 30, is terminated and reported as not completed). Larger scales make the source
 * bandwidth-bound; the lower bound and the ratio follow from the profile either way. The naive client's speed-up
 * depends on the regime: one sequential stream gets the whole bandwidth when files are large, so it shrinks as the
 * scale grows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createWriteStream, openSync, readFileSync } from 'node:fs';
import { availableParallelism, freemem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { startSimulator, type RunningSimulator } from '../sim/server';
import { parseFaultPatch, PROFILES, resolveFaults } from '../sim/faults';
import type { Preset } from '../sim/schema';
import { bundleWorkflows } from '../scripts/bundle-workflows';
import { startStack, type Stack } from '../scripts/stack';
import { ensureBuilt, productionWorkerLaunch } from '../scripts/worker-launch';
import { connectClient, startReimport } from '../src/client/operations';
import { loadConfig, type Config } from '../src/config';
import { migrate } from '../src/store/migrate';
import type { RunProgress } from '../src/workflows/messages';
import type { PhaseResult } from '../src/workflows/phase';
import type { ReimportResult } from '../src/workflows/reimport';
import {
  IMPORT_PHASES,
  PHASES as ALL_PHASES,
  tablesForPhase,
  type PhaseName,
  type SourceTableName,
} from '../src/domain/tables';
import { PROBE_ID, PROBE_TABLE } from '../src/activities/container-probe';
import { transferUsedByRun } from '../src/store/transfer';
import { createPool, type Pool } from '../src/store/db';
import { CpuTimeline } from './lib/cpu';
import { fmt, keyed, MB, secs } from './lib/format';
import { printFullReport } from './lib/full-report';
import { ledgerSplit, planChanges, printIncrementalReport, type ChangePlan } from './lib/incremental';
import { RequestLog } from './lib/request-log';
import { readTables, type TableRead } from './lib/table-reads';
import { calibrationMs, stealSeconds } from './lib/machine';
import { runExecutions, spanOf, type ExecutionFacts } from './lib/executions';
import { readMemory, resetPeak, RssSampler } from './lib/rss';
import { runSequential, type SequentialResult } from './lib/sequential';
import { lowerBound, StatsTimeline, type LowerBound, type StatsWindow } from './lib/source-stats';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    preset: { type: 'string' },
    'size-scale': { type: 'string' },
    sample: { type: 'string' },
    seed: { type: 'string', default: '1' },
    'fm-concurrency': { type: 'string' },
    'timeout-min': { type: 'string' },
    concurrency: { type: 'string' },
    batch: { type: 'string' },
    'cooldown-base': { type: 'string' },
    'cooldown-max': { type: 'string' },
    faults: { type: 'string' },
    workers: { type: 'string' },
    'on-disk': { type: 'boolean', default: false },
    full: { type: 'boolean', default: false },
    phases: { type: 'string' },
  },
});

const num = (name: keyof typeof args, fallback: number): number => {
  const raw = args[name];
  if (raw === undefined || typeof raw === 'boolean') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number, got ${raw}`);
  return v;
};

const PROFILE = 'fmcloud' as const;
// Overrides of the profile for exploring where the time goes, e.g. --faults '{"burstRate":0}'; the bound follows them.
const FAULT_OVERRIDES = args.faults ? parseFaultPatch(JSON.parse(args.faults)) : {};
const FAULTS = resolveFaults(PROFILE, FAULT_OVERRIDES);
const PRESET = (args.preset ?? (args.quick ? 'demo' : 'seed')) as Preset;
if (!['tiny', 'demo', 'seed'].includes(PRESET)) throw new Error('--preset: expected tiny, demo or seed');
const SIZE_SCALE = num('size-scale', 0.05);
// The clinic's containers at full size: ~26 GB over 17,933 files (documents and images).
const CLINIC_CONTAINER_BYTES = 26e9;
const CLINIC_FILES = 11_269 + 6_664;
const SAMPLE = num('sample', args.quick ? 40 : 200);
const SEED = num('seed', 1);
// The engine is configured for the source it talks to, as an operator would: as many requests at once as the profile
// allows, per worker (FM_MAX_CONCURRENCY) and in batches in flight per phase (each batch reads its files one by one).
const SOURCE_CONCURRENCY = FAULTS.maxConcurrentRequests || PROFILES[PROFILE].maxConcurrentRequests || 6;
// Worker processes: one per core, as production runs them, with the source's concurrency split between them
// (FM_MAX_CONCURRENCY each) and at least 4 requests each. A worker's JavaScript runs on one thread: alone on this
// machine's 2 vCPUs it is busy when FileMaker's answers arrive, and they wait; a second process takes them on the
// other core. `--workers 1` measures one.
const WORKERS = Math.floor(
  num('workers', Math.max(1, Math.min(availableParallelism(), Math.floor(SOURCE_CONCURRENCY / 4)))),
);
const FM_CONCURRENCY = num('fm-concurrency', Math.max(1, Math.floor(SOURCE_CONCURRENCY / WORKERS)));
const BATCHES_IN_FLIGHT = num('concurrency', SOURCE_CONCURRENCY);
const BATCH_SIZE = args.batch ? num('batch', 20) : undefined;
// The engine's own cooldowns unless told otherwise (for exploring how much of the wall time they cost).
const COOLDOWNS = {
  ...(args['cooldown-base'] ? { cooldownBaseSeconds: num('cooldown-base', 5) } : {}),
  ...(args['cooldown-max'] ? { cooldownMaxSeconds: num('cooldown-max', 300) } : {}),
};
// A reimport that has not finished by then is terminated and reported as such; the bench goes on.
const TIMEOUT_MS = num('timeout-min', args.quick ? 10 : 30) * 60_000;
const PHASES: readonly PhaseName[] = args.phases
  ? args.phases.split(',').map((p) => {
      if (!(ALL_PHASES as readonly string[]).includes(p))
        throw new Error(`--phases: ${p} is not one of ${ALL_PHASES.join(', ')}`);
      return p as PhaseName;
    })
  : args.full
    ? ALL_PHASES
    : ['patients', 'documents', 'images'];
const FILES_PHASES = ['documents', 'images'] as const;
const ROOT = join(__dirname, '..');
const STATE_DIR = join(ROOT, '.stack', 'bench');

const log = (line: string) => console.error(`[bench] ${line}`);
const MiB = 2 ** 20;

interface WorkerProcess {
  pid: number;
  /** VmHWM when the worker reported ready: the start-up peak. */
  startupPeakBytes: number;
  /** VmRSS when the worker reported ready: its idle footprint. */
  readyRssBytes: number;
  stop(): Promise<void>;
}

async function startWorkerProcess(env: NodeJS.ProcessEnv, index: number): Promise<WorkerProcess> {
  const launch = productionWorkerLaunch();
  const logFile = join(STATE_DIR, index === 0 ? 'worker.log' : `worker-${index + 1}.log`);
  const fd = openSync(logFile, 'a');
  const child: ChildProcess = spawn(
    process.execPath,
    // As production runs it: compiled JavaScript, plain node, the flags of `npm run worker:prod`.
    // BENCH_WORKER_NODE_ARGS adds Node flags NODE_OPTIONS refuses, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
    [
      ...launch.nodeArgs,
      ...(process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter((a) => a !== ''),
      ensureBuilt(),
    ],
    { cwd: ROOT, env: { ...env, ...launch.env }, stdio: ['ignore', 'pipe', fd] },
  );
  closeSync(fd);
  let stopping = false;
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  // Everything the worker prints goes on to the log (its logger writes to stdout: an unread pipe would block it).
  const out = createWriteStream(logFile, { flags: 'a' });
  child.stdout!.pipe(out);
  const ready = new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      if (seen.includes('"ready":true')) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    void exited.then(([code, signal]) => {
      if (!stopping) log(`the worker exited (code ${String(code)}, signal ${String(signal)}); see ${logFile}`);
      const tail = readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
      reject(new Error(`the worker exited with code ${String(code)} while starting; ${logFile}:\n${tail}`));
    });
  });
  await ready;
  const pid = child.pid!;
  const { hwmBytes: startupPeakBytes, rssBytes: readyRssBytes } = readMemory(pid);
  if (!resetPeak(pid)) log('cannot reset VmHWM (clear_refs): the peak below includes start-up');
  return {
    pid,
    startupPeakBytes,
    readyRssBytes,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stopping = true;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
      out.end();
    },
  };
}

/** What a phase did: from its result when it completed, else from the run's last progress report. */
interface PhaseCounts {
  records: number;
  /** Files stored (imported or unlinked). */
  files: number;
  bytesDownloaded: number;
  relinked: number;
  cooldowns: number;
  /** Known from the phase's result only. */
  retries: number | undefined;
  /** True when taken from progress (the phase did not complete). */
  partial: boolean;
}

interface PhaseFigures {
  phase: string;
  status: string;
  wallMs: number;
  startMs: number;
  closeMs: number;
  counts: PhaseCounts | undefined;
  window: StatsWindow;
  bound: LowerBound;
  peakRssBytes: number;
}

interface RunFigures {
  runId: string;
  wallMs: number;
  /** Undefined when the run did not complete (failed, rolled back or timed out: see `error`). */
  result: ReimportResult | undefined;
  error: string | undefined;
  phases: PhaseFigures[];
  executions: ExecutionFacts[];
  window: StatsWindow;
}

async function runReimport(
  client: Client,
  config: Config,
  runId: string,
  timeline: StatsTimeline,
  rss: Pick<RssSampler, 'peakBetween'>,
  { mode = 'full', timeoutMs = TIMEOUT_MS }: { mode?: 'full' | 'incremental'; timeoutMs?: number } = {},
): Promise<RunFigures> {
  const settings = {
    concurrency: BATCHES_IN_FLIGHT,
    ...(BATCH_SIZE ? { fileBatchSize: BATCH_SIZE } : {}),
    ...COOLDOWNS,
  };
  const t0 = Date.now();
  const handle = await startReimport(client, config, {
    runId,
    input: { phases: [...PHASES], settings, ...(mode === 'incremental' ? { mode } : {}) },
  });
  let progress: RunProgress | undefined;
  const ticker = setInterval(() => {
    handle.query<RunProgress>('progress').then(
      (p) => {
        progress = p;
        const ph = p.phases.find((x) => x.phase === p.currentPhase);
        const line = ph
          ? `${ph.phase} ${ph.table ?? ''} ${fmt(ph.done)}/${fmt(ph.total)}, ${fmt(ph.bytesDownloaded / MB, 1)} MB` +
            (ph.cooldowns ? `, ${ph.cooldowns} cooldowns` : '')
          : p.status;
        log(`${runId}: ${line} (${secs(Date.now() - t0)} s)`);
      },
      () => undefined,
    );
  }, 15_000);
  let result: ReimportResult | undefined;
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), timeoutMs)));
  try {
    const outcome = await Promise.race([handle.result() as Promise<ReimportResult>, timedOut]);
    if (outcome === 'timeout') {
      error = `did not finish within ${fmt(timeoutMs / 60_000, 1)} min (terminated)`;
      progress = await handle.query<RunProgress>('progress').catch(() => progress);
      await handle.terminate('benchmark timeout');
    } else result = outcome;
  } catch (err) {
    error = describe(err);
    // A closed run still answers queries (replayed by the worker): its last progress has the partial counts.
    progress = await handle.query<RunProgress>('progress').catch(() => progress);
  } finally {
    clearInterval(ticker);
    clearTimeout(timer);
  }
  const t1 = Date.now();
  const executions = await runExecutions(client, runId);
  const summaries = new Map(result?.phases.map((p) => [p.phase, p]));
  const phases: PhaseFigures[] = [];
  const children = [...new Set(executions.map((e) => e.workflowId).filter((id) => id !== runId))];
  for (const workflowId of children) {
    const phase = workflowId.slice(runId.length + 1);
    const span = spanOf(executions, workflowId) ?? {
      startMs: executions.find((e) => e.workflowId === workflowId)!.startMs,
      closeMs: t1,
    };
    const last = executions.filter((e) => e.workflowId === workflowId).at(-1)!;
    let counts: PhaseCounts | undefined;
    if ((IMPORT_PHASES as readonly string[]).includes(phase)) {
      if (last.status === 'COMPLETED') {
        const r = (await client.workflow.getHandle(workflowId).result()) as PhaseResult;
        counts = {
          records: r.byState.imported + r.byState.unlinked + r.byState.skipped + r.byState.failed,
          files: r.byState.imported + r.byState.unlinked,
          bytesDownloaded: r.bytesDownloaded,
          relinked: r.relinked,
          cooldowns: r.cooldowns,
          retries: r.retries,
          partial: false,
        };
      } else {
        const p = progress?.phases.find((x) => x.phase === phase);
        if (p) {
          counts = {
            records: p.done,
            files: p.byState.imported + p.byState.unlinked,
            bytesDownloaded: p.bytesDownloaded,
            relinked: p.relinked,
            cooldowns: p.cooldowns,
            retries: undefined,
            partial: true,
          };
        }
      }
    }
    const summary = summaries.get(phase as PhaseName);
    const window = timeline.window(span.startMs, span.closeMs);
    phases.push({
      phase,
      status: summary
        ? summary.status === 'not_run'
          ? 'not implemented'
          : summary.status
        : last.status.toLowerCase().replace(/_/g, ' '),
      wallMs: span.closeMs - span.startMs,
      startMs: span.startMs,
      closeMs: span.closeMs,
      counts,
      window,
      bound: lowerBound(window, FAULTS),
      peakRssBytes: rss.peakBetween(span.startMs, span.closeMs),
    });
  }
  return { runId, wallMs: t1 - t0, result, error, phases, executions, window: timeline.window(t0, t1) };
}

const outcome = (run: RunFigures) => run.result?.status ?? `not completed: ${run.error ?? 'unknown'}`;

/**
 * What a run spent of the transfer quota (`transfer_log`, as the quota counts it): on the files of the files phases,
 * and on the pre-flight's probe, which reads one sample container per files table over `$value` and through the Data
 * API before any phase runs — also on a run that needs no file, so it is not the files' count.
 */
interface RunTransfer {
  filesBytes: number;
  probe: { odataBytes: number; dataApiBytes: number };
}

async function runTransfer(pool: Pool, runId: string): Promise<RunTransfer> {
  let filesBytes = 0;
  for (const phase of FILES_PHASES) {
    for (const t of tablesForPhase(phase)) filesBytes += await transferUsedByRun(pool, runId, t.name);
  }
  const probe = await pool.query<{ filemaker_id: string; b: string }>(
    `select filemaker_id, coalesce(sum(bytes), 0)::text as b from transfer_log
      where run_id = $1 and source_table = $2 group by filemaker_id`,
    [runId, PROBE_TABLE],
  );
  const over = (path: 'odata' | 'dataapi') =>
    Number(probe.rows.find((x) => x.filemaker_id === `${PROBE_ID}${path}`)?.b ?? 0);
  return { filesBytes, probe: { odataBytes: over('odata'), dataApiBytes: over('dataapi') } };
}

/** A failure chain in one line (workflow failures wrap the phase's, which wraps the activity's). */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 6; e = e.cause) parts.push(e.message);
  return parts.join(' ← ') || String(err);
}

/** The processes each part of the bench runs as (pid files of the stack in STATE_DIR). */
function cpuRoots(workerPids: number[]): Record<string, number[]> {
  const pidIn = (file: string) => {
    try {
      const pid = Number(readFileSync(join(STATE_DIR, file), 'utf8').split('\n')[0]);
      return pid > 0 ? [pid] : [];
    } catch {
      return [];
    }
  };
  return {
    worker: workerPids,
    temporal: pidIn('temporal.pid'),
    postgres: pidIn(join('pg', 'postmaster.pid')),
    minio: pidIn('minio.pid'),
    'bench + simulator': [process.pid],
  };
}

/** CPU seconds per part over the files phases of a run (the phases run one after the other). */
function filesCpu(run: RunFigures, cpu: CpuTimeline): Record<string, number> {
  const total: Record<string, number> = {};
  for (const p of run.phases.filter((x) => (FILES_PHASES as readonly string[]).includes(x.phase))) {
    for (const [k, v] of Object.entries(cpu.window(p.startMs, p.closeMs))) total[k] = (total[k] ?? 0) + v;
  }
  return total;
}

/** Sums of the files phases of a run, as one stretch of work. */
function filesTotals(run: RunFigures) {
  const ph = run.phases.filter((p) => (FILES_PHASES as readonly string[]).includes(p.phase));
  const sum = (f: (p: PhaseFigures) => number) => ph.reduce((s, p) => s + f(p), 0);
  const window = { bytes: sum((p) => p.window.bytes), requests: sum((p) => p.window.requests) };
  return {
    implemented: ph.length > 0 && ph.every((p) => p.status !== 'not implemented'),
    /** Both phases completed: only then are the ratio and the speed-up meaningful. */
    complete: ph.length === FILES_PHASES.length && ph.every((p) => p.status === 'completed'),
    wallMs: sum((p) => p.wallMs),
    files: sum((p) => p.counts?.files ?? 0),
    records: sum((p) => p.counts?.records ?? 0),
    downloaded: sum((p) => p.counts?.bytesDownloaded ?? 0),
    relinked: sum((p) => p.counts?.relinked ?? 0),
    containerBytes: sum((p) => p.window.containerBytes),
    requests: window.requests,
    overloads: sum((p) => p.window.overloads),
    faults: ph.reduce<Record<string, number>>((acc, p) => {
      for (const [k, v] of Object.entries(p.window.faults)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
    cooldowns: sum((p) => p.counts?.cooldowns ?? 0),
    inFlightMs: sum((p) => p.window.inFlightMs),
    bound: lowerBound(window, FAULTS),
    peakRssBytes: Math.max(0, ...ph.map((p) => p.peakRssBytes)),
  };
}

/**
 * A files phase's wall time split by what its history shows: before the first batch (child start, manifest),
 * batches (first importFiles scheduled to last closed), and after them (finishing and reconciling the table).
 */
function filesPhaseBreakdown(run: RunFigures) {
  const rows: Record<string, Record<string, string>> = {};
  for (const phase of ['documents', 'images']) {
    const id = `${run.runId}/${phase}`;
    const execs = run.executions.filter((e) => e.workflowId === id);
    const span = spanOf(run.executions, id);
    if (!span || execs.length === 0) continue;
    const merged = (type: string) => {
      const spans = execs.map((e) => e.activities[type]).filter((a) => a !== undefined);
      if (spans.length === 0) return undefined;
      return {
        count: spans.reduce((n, a) => n + a.count, 0),
        first: Math.min(...spans.map((a) => a.firstScheduledMs)),
        last: Math.max(...spans.map((a) => a.lastClosedMs)),
      };
    };
    const batches = merged('importFiles');
    const manifest = merged('buildManifest');
    const reconcile = merged('reconcileTable');
    if (!batches) continue;
    rows[phase] = {
      'wall s': secs(span.closeMs - span.startMs),
      'before batches s': secs(batches.first - span.startMs),
      'manifest s': manifest ? secs(manifest.last - manifest.first) : '',
      'batches s': secs(batches.last - batches.first),
      'batch activities': fmt(batches.count),
      'after batches s': secs(span.closeMs - batches.last),
      'reconcile s': reconcile ? secs(reconcile.last - reconcile.first) : '',
    };
  }
  return rows;
}

function phaseTable(run: RunFigures) {
  const rows = run.phases.map((p) => {
    const c = p.counts;
    const files = c && (FILES_PHASES as readonly string[]).includes(p.phase);
    const perSecond = (n: number) => fmt(n / Math.max(0.001, p.wallMs / 1000), 1);
    return {
      phase: p.phase,
      status: p.status + (c?.partial ? ' (partial counts)' : ''),
      'wall s': secs(p.wallMs),
      records: c ? fmt(c.records) : '',
      files: files ? fmt(c.files) : '',
      'files/s': files ? perSecond(c.files) : '',
      'MB down': c ? fmt(c.bytesDownloaded / MB, 1) : '',
      'MB/s': files ? perSecond(c.bytesDownloaded / MB) : '',
      relinked: c ? fmt(c.relinked) : '',
      'FM requests': fmt(p.window.requests),
      '502s absorbed': fmt(p.window.overloads),
      cooldowns: c ? fmt(c.cooldowns) : '',
      retries: c?.retries !== undefined ? fmt(c.retries) : '',
      'bound s': secs(p.bound.boundMs),
      // Mean requests in flight at the source over the phase, of the SOURCE_CONCURRENCY it serves at once.
      'FM busy':
        SOURCE_CONCURRENCY > 0 ? `${fmt(p.window.inFlightMs / Math.max(1, p.wallMs), 1)}/${SOURCE_CONCURRENCY}` : '',
      'peak RSS MB': p.peakRssBytes > 0 ? fmt(p.peakRssBytes / MB) : '',
      // The bound is the source's; only the files phases are FileMaker-bound (the others wait on PostgreSQL).
      ratio: files && p.status === 'completed' && p.bound.boundMs > 0 ? fmt(p.wallMs / p.bound.boundMs, 2) : '',
    };
  });
  return keyed(rows, 'phase');
}

async function main(): Promise<void> {
  const t0 = Date.now();
  log(
    `preset ${PRESET}, profile ${PROFILE}${args.faults ? ` with ${args.faults}` : ''}, size scale ${SIZE_SCALE}, ` +
      `naive sample ${SAMPLE} per table`,
  );
  const cleanups: (() => Promise<void>)[] = [];
  // One cleanup, however many paths ask for it (a signal, and the run failing because the signal closed things).
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const c of cleanups.reverse()) await c().catch((e: unknown) => log(`cleanup: ${String(e)}`));
    })());
  // Ctrl-C stops what the bench started (stack services run in their own process groups and would outlive it).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      void cleanUp().then(() => process.exit(130));
    });
  }
  try {
    // Before anything else runs: how fast the machine is now.
    const calibration = calibrationMs();
    log(`machine calibration: ${fmt(calibration)} ms`);
    const sim: RunningSimulator = await startSimulator({
      preset: PRESET,
      profile: PROFILE,
      faults: FAULT_OVERRIDES,
      sizeScale: SIZE_SCALE,
      seed: SEED,
    });
    cleanups.push(() => sim.close());
    // The source's share of the core phases' bounds: what reading each table once costs it (before anything else runs).
    let reads: Map<SourceTableName, TableRead> | undefined;
    if (args.full) {
      const started = Date.now();
      reads = await readTables(
        sim,
        IMPORT_PHASES.flatMap((p) => tablesForPhase(p).map((t) => t.name)),
      );
      log(`reference read of every table: ${secs(Date.now() - started)} s`);
    }
    const counts = {
      documents: sim.dataset.table('API_Docs')!.records.length,
      images: sim.dataset.table('API_Images')!.records.length,
    };
    // The stack's data in memory (see StackOptions.inMemory) when twice what a run stores fits in free memory.
    const storedEstimate = CLINIC_CONTAINER_BYTES * SIZE_SCALE * ((counts.documents + counts.images) / CLINIC_FILES);
    const inMemory = !args['on-disk'] && 2 * storedEstimate < freemem();
    log(`stack data ${inMemory ? 'in memory (tmpfs)' : 'on disk'}; about ${fmt(storedEstimate / MB)} MB stored in S3`);
    const stack: Stack = await startStack({
      stateDir: STATE_DIR,
      fresh: true,
      ui: false,
      env: {},
      log,
      inMemory,
    });
    cleanups.push(() => stack.stop());
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...stack.env,
      FM_URL: sim.url,
      FM_DATABASE: sim.database,
      FM_USERNAME: sim.username,
      FM_PASSWORD: sim.password,
      FM_MAX_CONCURRENCY: String(FM_CONCURRENCY),
      TEMPORAL_TASK_QUEUE: 'fm-reimport-bench',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      LOG_FORMAT: 'json',
    };
    // A prebuilt workflow bundle, as production runs the worker: the bundler's memory stays out of its RSS.
    env.TEMPORAL_WORKFLOW_BUNDLE = await bundleWorkflows(join(STATE_DIR, 'workflow-bundle.js'));
    const config = loadConfig(env, 'worker');
    await migrate(config.database.url);
    const workers: WorkerProcess[] = [];
    for (let i = 0; i < WORKERS; i++) {
      const w = await startWorkerProcess(env, i);
      workers.push(w);
      cleanups.push(() => w.stop());
      log(`worker pid ${w.pid} ready (start-up peak ${fmt(w.startupPeakBytes / MB)} MB)`);
    }
    // The figures of the worker that used the most memory (the target is per worker).
    const worker: WorkerProcess = {
      ...workers[0]!,
      startupPeakBytes: Math.max(...workers.map((w) => w.startupPeakBytes)),
      readyRssBytes: Math.max(...workers.map((w) => w.readyRssBytes)),
    };
    const { client, close } = await connectClient(config);
    cleanups.push(close);

    const samplers = workers.map((w) => new RssSampler(w.pid));
    cleanups.push(async () => samplers.forEach((x) => x.stop()));
    const rss = {
      peakBetween: (a: number, b: number) => Math.max(...samplers.map((x) => x.peakBetween(a, b))),
      stop: () => samplers.forEach((x) => x.stop()),
    };
    const timeline = new StatsTimeline(sim);
    cleanups.push(async () => timeline.stop());
    const cpu = CpuTimeline.available() ? new CpuTimeline(cpuRoots(workers.map((w) => w.pid))) : undefined;
    cleanups.push(async () => cpu?.stop());

    const requestLog = reads ? new RequestLog(sim) : undefined;
    cleanups.push(async () => requestLog?.stop());
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    log(`first reimport: ${PHASES.join(', ')}`);
    const stealBefore = stealSeconds();
    const first = await runReimport(client, config, `bench-${stamp}-1`, timeline, rss);
    const stealAfter = stealSeconds();
    const machine = {
      calibrationMs: calibration,
      stolenSeconds: stealBefore !== undefined && stealAfter !== undefined ? stealAfter - stealBefore : undefined,
    };
    log(`first reimport ${outcome(first)} in ${secs(first.wallMs)} s`);
    let second: RunFigures | undefined;
    if (first.result) {
      log('second reimport (files already stored: must relink, download nothing)');
      second = await runReimport(client, config, `bench-${stamp}-2`, timeline, rss);
      log(`second reimport ${outcome(second)} in ${secs(second.wallMs)} s`);
    }
    // The workers' peaks over the two full runs, before an incremental one adds its own.
    const peaks = workers.map((w) => readMemory(w.pid).hwmBytes);
    let incremental: { run: RunFigures; plan: ChangePlan; full?: RunFigures; fullPlan?: ChangePlan } | undefined;
    // The incremental run is compared with a full run of every phase: not with only some of them.
    if (args.full && !args.phases && second?.result) {
      const plan = planChanges(sim.dataset, SEED);
      sim.mutate(plan.mutations);
      log(`incremental reimport after ${fmt(plan.mutations.length)} changes to the source`);
      // Past twice the full run's time it has missed its target by far: it is terminated, so the bench still ends.
      const timeoutMs = Math.min(TIMEOUT_MS, Math.max(5 * 60_000, 2 * second.wallMs));
      const run = await runReimport(client, config, `bench-${stamp}-3`, timeline, rss, {
        mode: 'incremental',
        timeoutMs,
      });
      log(`incremental reimport ${outcome(run)} in ${secs(run.wallMs)} s`);
      incremental = { run, plan };
      if (run.result) {
        // What the incremental run is measured against: a full run in the same situation, after as many changes
        // (another draw of them), which downloads the containers they replaced as the incremental run must.
        const fullPlan = planChanges(sim.dataset, SEED, { draw: 'full-after-changes' });
        sim.mutate(fullPlan.mutations);
        log(`full reimport after ${fmt(fullPlan.mutations.length)} other changes to the source`);
        const full = await runReimport(client, config, `bench-${stamp}-4`, timeline, rss, { timeoutMs });
        log(`full reimport ${outcome(full)} in ${secs(full.wallMs)} s`);
        incremental = { ...incremental, full, fullPlan };
      }
    }
    const pool = createPool(config.database);
    cleanups.push(() => pool.end());
    const transfer = {
      first: await runTransfer(pool, first.runId),
      second: second ? await runTransfer(pool, second.runId) : undefined,
    };
    const peakRss = Math.max(...peaks);
    const peakRssTotal = peaks.reduce((a, b) => a + b, 0);
    const cpuFiles = cpu ? filesCpu(first, cpu) : undefined;
    cpu?.stop();
    requestLog?.stop();
    timeline.stop();
    rss.stop();

    sim.resetStats();
    const s3 = new S3Client({
      endpoint: config.s3.endpoint,
      region: config.s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: config.s3.accessKeyId!, secretAccessKey: config.s3.secretAccessKey! },
    });
    cleanups.push(async () => s3.destroy());
    const naiveBucket = 'bench-naive';
    await s3.send(new CreateBucketCommand({ Bucket: naiveBucket }));
    log(`sequential client: ${SAMPLE} records per table`);
    const naive = await runSequential({
      fmUrl: sim.url,
      database: sim.database,
      username: sim.username,
      password: sim.password,
      s3,
      bucket: naiveBucket,
      sample: SAMPLE,
      log,
    });
    const naiveStats = sim.stats();

    report({
      counts,
      first,
      second,
      transfer,
      naive,
      naiveStats,
      worker,
      peakRss,
      peakRssTotal,
      cpuFiles,
      machine,
      totalMs: Date.now() - t0,
    });
    if (reads && requestLog) {
      printFullReport({
        runs: [
          { name: 'first', run: first },
          { name: 'second', run: second },
        ],
        reads,
        faults: FAULTS,
        requests: requestLog,
        cpu,
        machine: { ...machine, cores: availableParallelism() },
        peakRssBytes: peakRss,
      });
    }
    if (second && incremental && requestLog) {
      const full = incremental.full ?? second;
      printIncrementalReport({
        full: { ...full, status: outcome(full) },
        fullChanges: incremental.full ? incremental.fullPlan : undefined,
        incremental: { ...incremental.run, status: outcome(incremental.run) },
        plan: incremental.plan,
        ledger: {
          full: await ledgerSplit(pool, full.runId),
          incremental: await ledgerSplit(pool, incremental.run.runId),
        },
        requests: requestLog,
        machine,
        seed: SEED,
      });
    }
  } finally {
    await cleanUp();
  }
}

function report(r: {
  counts: { documents: number; images: number };
  first: RunFigures;
  second: RunFigures | undefined;
  transfer: { first: RunTransfer; second: RunTransfer | undefined };
  naive: SequentialResult;
  naiveStats: ReturnType<RunningSimulator['stats']>;
  worker: WorkerProcess;
  peakRss: number;
  /** The workers' peaks added up (one worker: its own). */
  peakRssTotal: number;
  cpuFiles: Record<string, number> | undefined;
  machine: { calibrationMs: number; stolenSeconds: number | undefined };
  totalMs: number;
}): void {
  const f = FAULTS;
  console.log(
    `\nfm-reimport files benchmark — ${PRESET} counts (${fmt(r.counts.documents)} documents, ${fmt(r.counts.images)} ` +
      `images), ${PROFILE} profile${args.faults ? ` with ${args.faults}` : ''}, size scale ${SIZE_SCALE}, seed ${SEED}`,
  );
  console.log(
    `engine: FM_MAX_CONCURRENCY ${FM_CONCURRENCY}, ${BATCHES_IN_FLIGHT} batches in flight per phase, ` +
      `${BATCH_SIZE ?? 'default'} files per batch, ` +
      (Object.keys(COOLDOWNS).length
        ? `cooldowns ${COOLDOWNS.cooldownBaseSeconds ?? 'default'} s doubling to ${COOLDOWNS.cooldownMaxSeconds ?? 'default'} s`
        : 'default cooldowns') +
      (WORKERS === 1 ? ', one worker' : `, ${WORKERS} worker processes (peak RSS: the largest of them)`),
  );
  console.log(
    `source limits: ${fmt(f.bandwidthTotalBps / MiB, 1)} MiB/s in total, ${f.maxConcurrentRequests} requests at once, ` +
      `${f.latencyMs}–${f.latencyMs + f.latencyJitterMs} ms latency (mean ${f.latencyMs + f.latencyJitterMs / 2}), ` +
      `502 bursts of ${f.burstLength} at ${f.burstRate * 100}% of requests`,
  );
  console.log(`lower bound = max(bytes ÷ bandwidth, requests × mean latency ÷ ${f.maxConcurrentRequests})`);
  console.log(
    `machine: ${availableParallelism()} cores; calibration ${fmt(r.machine.calibrationMs)} ms (SHA-256 of 64 MiB and ` +
      `JSON round trips, best of 3; lower is faster; compare runs only at similar values)` +
      (r.machine.stolenSeconds !== undefined
        ? `; CPU stolen by the hypervisor during the first reimport ${fmt(r.machine.stolenSeconds, 1)} s`
        : ''),
  );

  for (const [name, run] of [
    ['first', r.first],
    ['second', r.second],
  ] as const) {
    if (!run) {
      console.log(`\n${name} reimport: not run (the first did not complete)`);
      continue;
    }
    console.log(`\n${name} reimport ${run.runId}: ${outcome(run)}, ${secs(run.wallMs)} s`);
    console.table(phaseTable(run));
  }
  console.log('\nwhere a files phase of the first reimport spends its time (from its history):');
  console.table(filesPhaseBreakdown(r.first));
  if (r.second) {
    console.log('the same for the second reimport (every file already stored: relinks):');
    console.table(filesPhaseBreakdown(r.second));
  }

  const ft = filesTotals(r.first);
  const st = r.second ? filesTotals(r.second) : undefined;
  const rt = r.transfer.second;
  const speedup = ft.wallMs > 0 ? r.naive.estimatedMs / ft.wallMs : 0;
  const ratio = ft.bound.boundMs > 0 ? ft.wallMs / ft.bound.boundMs : 0;
  const histories = [...r.first.executions, ...(r.second?.executions ?? [])];
  const largest = histories.reduce<ExecutionFacts | undefined>(
    (m, e) => (m && m.events >= e.events ? m : e),
    undefined,
  );

  console.log(
    'sequential client (one request at a time; sample timed, extrapolated to every record, 502 waits left out):',
  );
  console.table(
    keyed(
      r.naive.tables.map((t) => ({
        layout: t.layout,
        records: fmt(t.records),
        'list s': secs(t.listMs),
        sampled: t.sampled,
        'sample s': secs(t.sampleMs),
        'ms/record': fmt((t.sampleMs - t.overloadWaitMs) / Math.max(1, t.sampled), 1),
        downloaded: t.downloaded,
        'MB down': fmt(t.bytes / MB, 1),
        empty: t.empty,
        failed: t.failed,
        '502 waits': t.overloadWaits,
        'waited s': secs(t.overloadWaitMs),
        'estimated min': fmt(t.estimatedMs / 60_000, 1),
      })),
      'layout',
    ),
  );
  console.log(
    `  sequential requests: ${fmt(r.naiveStats.requests.total)}; 502s answered: ` +
      `${fmt((r.naiveStats.faults.burst ?? 0) + (r.naiveStats.faults.concurrency_502 ?? 0))}`,
  );

  if (r.cpuFiles) {
    const files = Math.max(1, ft.files);
    console.log(
      `\nCPU during the files phases of the first reimport (${secs(ft.wallMs)} s on ${availableParallelism()} cores; ` +
        'each part with its child processes):',
    );
    console.table(
      keyed(
        Object.entries(r.cpuFiles).map(([part, s]) => ({
          part,
          'CPU s': fmt(s, 1),
          cores: fmt(s / Math.max(0.001, ft.wallMs / 1000), 2),
          'ms per file': fmt((s * 1000) / files, 2),
        })),
        'part',
      ),
    );
  }

  console.log(`\nexecutions (one row per history; continue-as-new runs are rows of their own): ${histories.length}`);
  console.table(
    histories.map((e) => ({
      workflow: e.workflowId,
      type: e.type,
      status: e.status,
      events: e.events,
      'history KB': e.historyBytes !== undefined ? fmt(e.historyBytes / 1024) : '',
    })),
  );

  const na = !ft.complete;
  const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const faults = Object.entries(ft.faults)
    .filter(([k]) => k !== 'latency' && k !== 'bandwidth_wait')
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ');
  const rows: [figure: string, value: string, target?: string, result?: string][] = [
    [
      'files phases wall time',
      `${secs(ft.wallMs)} s`,
      '',
      !ft.implemented ? 'not implemented' : na ? 'did not complete' : '',
    ],
    ['files stored', `${fmt(ft.files)} of ${fmt(ft.records)} records`],
    ['files/s', fmt((ft.files * 1000) / Math.max(1, ft.wallMs), 1)],
    ['MB/s downloaded', fmt(ft.downloaded / MB / Math.max(0.001, ft.wallMs / 1000), 1)],
    ['FileMaker requests', fmt(ft.requests)],
    ['502s absorbed', fmt(ft.overloads)],
    ['faults injected', faults || 'none'],
    ['cooldowns taken', fmt(ft.cooldowns)],
    [
      'source lower bound',
      `${secs(ft.bound.boundMs)} s (bytes ${secs(ft.bound.bandwidthMs)} s, requests ${secs(ft.bound.latencyMs)} s)`,
    ],
    [
      'FileMaker kept busy',
      `${fmt(ft.inFlightMs / Math.max(1, ft.wallMs), 1)} of ${SOURCE_CONCURRENCY} requests in flight on average`,
    ],
    ['ratio to lower bound', na ? 'n/a' : fmt(ratio, 2), '≤ 1.3', na ? 'n/a' : mark(ratio <= 1.3)],
    ['sequential client (estimated)', `${fmt(r.naive.estimatedMs / 60_000, 1)} min`],
    ['speed-up over sequential', na ? 'n/a' : `${fmt(speedup, 1)}×`, '≥ 10×', na ? 'n/a' : mark(speedup >= 10)],
    ['worker peak RSS (after start-up)', `${fmt(r.peakRss / MB)} MB`, '< 300 MB', mark(r.peakRss < 300 * MB)],
    ['worker RSS when ready (idle)', `${fmt(r.worker.readyRssBytes / MB)} MB`],
    [
      'worker RSS growth, files phases',
      ft.peakRssBytes > 0 ? `${fmt((ft.peakRssBytes - r.worker.readyRssBytes) / MB)} MB over idle` : 'n/a',
    ],
    ['worker peak RSS (incl. start-up)', `${fmt(Math.max(r.peakRss, r.worker.startupPeakBytes) / MB)} MB`],
    ...(WORKERS > 1
      ? [[`${WORKERS} workers' peak RSS added up`, `${fmt(r.peakRssTotal / MB)} MB`] as [string, string]]
      : []),
    [
      'largest history',
      largest ? `${fmt(largest.events)} events (${largest.workflowId})` : 'n/a',
      '≤ 10,000',
      largest ? mark(largest.events <= 10_000) : 'n/a',
    ],
    [
      're-run bytes downloaded for files',
      st && rt
        ? `${fmt(st.downloaded)} B (transfer_log ${fmt(rt.filesBytes)} B; source sent ${fmt(st.containerBytes)} ` +
          `container bytes during the files phases; ${fmt(st.relinked)} relinked)`
        : 'not run',
      '0',
      na || !st || !rt || !r.second?.result
        ? 'n/a'
        : mark(st.downloaded === 0 && rt.filesBytes === 0 && st.containerBytes === 0),
    ],
    ...(
      [
        ['first', r.transfer.first],
        ['re-run', rt],
      ] as const
    ).flatMap(([name, t]) =>
      t
        ? [
            [
              `${name} pre-flight probe (not files)`,
              `${fmt(t.probe.odataBytes + t.probe.dataApiBytes)} B: ${fmt(t.probe.odataBytes)} over $value, ` +
                `${fmt(t.probe.dataApiBytes)} through the Data API`,
            ] as [string, string],
          ]
        : [],
    ),
  ];
  console.log(`\nsummary (files phases = documents + images of the first reimport; total bench ${secs(r.totalMs)} s)`);
  console.table(
    keyed(
      rows.map(([figure, value, target = '', result = '']) => ({ figure, value, target, result })),
      'figure',
    ),
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
