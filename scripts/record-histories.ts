/**
 * `npm run record-histories`: runs representative tiny reimports on the real stack and the FileMaker simulator and
 * stores the history of every execution (the parent and each phase child, every continue-as-new run) in
 * `test/fixtures/histories/`, where test/e2e/replay.test.ts replays them against the current workflow code — so a
 * change that is not replay-safe for runs already in flight fails the tests.
 *
 *   npm run record-histories                    record every scenario
 *   npm run record-histories -- core            only the scenarios named
 *   npm run record-histories -- --phases=backup,patients,validation    other phases than every phase
 *
 * Scenarios: `core` (every phase, with a pause/resume, a concurrency change and an overload cooldown mid-run),
 * `dry-run`, `rollback` (a database fault in appointments, rolled back). Uses the stack in the environment
 * (TEMPORAL_ADDRESS, DATABASE_URL, S3_ENDPOINT) or starts a private one under `.stack/record-histories`.
 * Histories hold ids, counts and keys only: the simulator's data is synthetic and payloads carry no patient data.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import pg from 'pg';
import { startSimulator, type RunningSimulator } from '../sim/server';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { migrate } from '../src/store/migrate';
import { startWorker } from '../src/worker';
import { PHASES } from '../src/domain/tables';
import type { PhaseProgress, RunProgress } from '../src/workflows/messages';
import { startStack } from './stack';

export const HISTORIES_DIR = join(__dirname, '..', 'test', 'fixtures', 'histories');

/** One recorded execution, as stored in a fixture file. */
export interface RecordedHistory {
  scenario: string;
  workflowId: string;
  runId: string;
  workflowType: string;
  /** Number of events in this execution's history. */
  events: number;
  /**
   * The history as protobufjs' JSON object form (int64 as strings, enums by name, bytes in base64); load it with
   * `historyFromFixture`. Not the SDK's historyToJSON form: in this install @temporalio/common and @temporalio/proto
   * each carry their own protobufjs, and historyToJSON/historyFromJSON throw "type must be a Type".
   */
  history: { events: Record<string, unknown>[] };
}

export type Scenario = 'core' | 'dry-run' | 'rollback';
export const SCENARIOS: readonly Scenario[] = ['core', 'dry-run', 'rollback'];

export interface RecordContext {
  client: Client;
  taskQueue: string;
  sim: RunningSimulator;
  pool: pg.Pool;
  /** Phases of the run (default: every phase this build knows). */
  phases?: readonly string[];
}

/**
 * Every execution of `workflowId`, oldest first: the latest run's history, then back along continue-as-new
 * (each started event names the run it continues).
 */
export async function fetchExecutions(
  client: Client,
  scenario: string,
  workflowId: string,
): Promise<RecordedHistory[]> {
  const out: RecordedHistory[] = [];
  let runId: string | undefined;
  for (let guard = 0; guard < 1000; guard++) {
    const handle = client.workflow.getHandle(workflowId, runId);
    const history = await handle.fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const thisRun = runId ?? (await handle.describe()).runId;
    out.unshift({
      scenario,
      workflowId,
      runId: thisRun,
      workflowType: started?.workflowType?.name ?? 'unknown',
      events: history.events?.length ?? 0,
      history: temporal.api.history.v1.History.toObject(history as temporal.api.history.v1.History, {
        longs: String,
        enums: String,
        bytes: String,
      }) as { events: Record<string, unknown>[] },
    });
    runId = started?.continuedExecutionRunId || undefined;
    if (!runId) break;
  }
  return out;
}

/** A stored history back as the protobuf object the replay worker takes. */
export function historyFromFixture(h: Pick<RecordedHistory, 'history'>): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(h.history);
}

/** The parent's history and every child's (ids `<run>/<phase>`), in run order. */
export async function fetchRunHistories(client: Client, scenario: string, runId: string): Promise<RecordedHistory[]> {
  const parent = await fetchExecutions(client, scenario, runId);
  const out = [...parent];
  const children = new Set<string>();
  for (const exec of parent) {
    for (const e of exec.history.events as {
      childWorkflowExecutionStartedEventAttributes?: { workflowExecution?: { workflowId?: string } };
    }[]) {
      const id = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
      if (id) children.add(id);
    }
  }
  for (const id of children) out.push(...(await fetchExecutions(client, scenario, id)));
  return out;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Runs one scenario to its end and returns its histories. `core` exercises the operator messages and a durable
 * cooldown, so their handlers and timers are in the recorded history.
 */
export async function recordScenario(ctx: RecordContext, scenario: Scenario, runId: string) {
  const phases = ctx.phases ?? PHASES;
  const start = (input: Record<string, unknown>): Promise<WorkflowHandle> =>
    ctx.client.workflow.start('reimport', {
      taskQueue: ctx.taskQueue,
      workflowId: runId,
      args: [{ phases, settings: { chunkSize: 7, cooldownBaseSeconds: 0.5, cooldownMaxSeconds: 2 }, ...input }],
    });

  if (scenario === 'core') {
    ctx.sim.setFaults({ latencyMs: 250 });
    try {
      const handle = await start({ settings: { chunkSize: 5, cooldownBaseSeconds: 0.5, cooldownMaxSeconds: 2 } });
      let ended: string | undefined;
      handle.result().then(
        () => (ended = 'completed'),
        (err: unknown) =>
          (ended = `failed: ${err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err)}`),
      );
      // Any import phase caught between its first and its last batch will do: a machine busy elsewhere can let one
      // phase of the tiny clinic finish between two polls, never all three.
      const pausable = ['patients', 'appointments', 'notes'].filter((p) => phases.includes(p));
      await waitFor('an import phase to make progress', async () => {
        if (ended) throw new Error(`the run ended before an import phase could be paused (${ended})`);
        const p = await handle.query<RunProgress>('progress');
        const running = p.phases.find((x) => pausable.includes(x.phase) && x.status === 'running');
        if (!running) return undefined;
        // The child's own progress: its reports to the parent are throttled.
        const own = await ctx.client.workflow
          .getHandle(`${runId}/${running.phase}`)
          .query<PhaseProgress>('phaseProgress')
          .catch(() => undefined);
        return own && own.done > 0 && own.done < own.total ? true : undefined;
      });
      await handle.signal('pause');
      await sleep(1000);
      await handle.executeUpdate('setSettings', { args: [{ concurrency: 2 }] });
      // More overload answers in a row than the client repeats (3): the phase cools down on a durable timer and
      // halves its window.
      ctx.sim.setFaults({ failNextRequests: { status: 503, count: 8, api: 'data' } });
      await handle.signal('resume');
      await handle.result();
    } finally {
      ctx.sim.setFaults({ latencyMs: 0, failNextRequests: null });
    }
  } else if (scenario === 'dry-run') {
    await (await start({ dryRun: true })).result();
  } else {
    // A database fault only this run's appointment writes hit: the chunk fails for good and the run rolls back.
    await ctx.pool.query(`
      create or replace function record_histories_fail() returns trigger language plpgsql as $$
      begin
        if new.import_run_id = '${runId.replace(/'/g, "''")}' then
          raise exception 'injected appointments failure' using errcode = 'XX000';
        end if;
        return new;
      end $$;
      drop trigger if exists record_histories_fail on appointments;
      create trigger record_histories_fail before insert or update on appointments
        for each row execute function record_histories_fail();`);
    try {
      const handle = await start({});
      const failed = await handle.result().then(
        () => false,
        () => true,
      );
      if (!failed) throw new Error('the rollback scenario completed instead of rolling back');
    } finally {
      await ctx.pool.query('drop trigger if exists record_histories_fail on appointments');
    }
  }
  return fetchRunHistories(ctx.client, scenario, runId);
}

/** File name of a recorded execution: `<scenario>.<workflow id after the run id>[.<n>].json`. */
export function fixtureName(h: RecordedHistory, runId: string, index: number): string {
  const rest = h.workflowId === runId ? 'reimport' : h.workflowId.slice(runId.length + 1).replace(/[^a-z0-9-]/gi, '_');
  return `${h.scenario}.${rest}${index > 0 ? `.${index + 1}` : ''}.json`;
}

async function main() {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const phasesArg = process.argv.find((a) => a.startsWith('--phases='));
  const phases = phasesArg ? phasesArg.slice('--phases='.length).split(',') : undefined;
  for (const w of wanted) if (!SCENARIOS.includes(w as Scenario)) throw new Error(`unknown scenario ${w}`);
  const scenarios = wanted.length ? (wanted as Scenario[]) : [...SCENARIOS];

  const e = process.env;
  let stopStack: (() => Promise<void>) | undefined;
  let env: Record<string, string | undefined> = e;
  if (!(e.TEMPORAL_ADDRESS && e.DATABASE_URL && e.S3_ENDPOINT)) {
    const stack = await startStack({
      stateDir: join(__dirname, '..', '.stack', 'record-histories'),
      fresh: true,
      ui: false,
    });
    stopStack = () => stack.stop();
    env = { ...e, ...stack.env };
  }
  const suffix = Date.now().toString(36);
  const dbName = `record_histories_${suffix}`;
  const admin = new pg.Client({ connectionString: env.DATABASE_URL });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const dbUrl = new URL(env.DATABASE_URL!);
  dbUrl.pathname = `/${dbName}`;
  const bucket = `record-histories-${suffix}`;
  const s3 = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID ?? '', secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? '' },
  });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));

  await migrate(dbUrl.toString());
  const sim = await startSimulator({ preset: 'tiny', seed: 7 });
  const taskQueue = `record-histories-${suffix}`;
  const config = loadConfig({
    ...env,
    DATABASE_URL: dbUrl.toString(),
    S3_BUCKET: bucket,
    FM_URL: sim.url,
    FM_DATABASE: sim.database,
    FM_USERNAME: sim.username,
    FM_PASSWORD: sim.password,
    TEMPORAL_TASK_QUEUE: taskQueue,
    LOG_LEVEL: 'warn',
    // Recorded payloads must replay without keys.
    PAYLOAD_KEYS: '',
    PAYLOAD_KEYS_FILE: '',
  });
  const worker = await startWorker(config, createLogger({ level: 'warn', format: 'json' }));
  const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS! });
  const client = new Client({ connection });
  const pool = new pg.Pool({ connectionString: dbUrl.toString() });
  try {
    mkdirSync(HISTORIES_DIR, { recursive: true });
    for (const scenario of scenarios) {
      const runId = `recorded-${scenario}-${suffix}`;
      const histories = await recordScenario({ client, taskQueue, sim, pool, phases }, scenario, runId);
      for (const f of readdirSync(HISTORIES_DIR)) {
        if (f.startsWith(`${scenario}.`) && f.endsWith('.json')) rmSync(join(HISTORIES_DIR, f));
      }
      const seen = new Map<string, number>();
      for (const h of histories) {
        const n = seen.get(h.workflowId) ?? 0;
        seen.set(h.workflowId, n + 1);
        writeFileSync(join(HISTORIES_DIR, fixtureName(h, runId, n)), `${JSON.stringify(h)}\n`);
      }
      const largest = histories.reduce((a, b) => (b.events > a.events ? b : a));
      console.log(
        `${scenario}: ${histories.length} executions recorded; largest ${largest.workflowId} with ${largest.events} events`,
      );
    }
  } finally {
    await worker.shutdown();
    await connection.close();
    await pool.end();
    await sim.close();
    // Not `with (force)`: terminating a connection some pool still holds would crash this process with its error.
    await admin
      .query(`drop database if exists ${dbName}`)
      .catch((err: unknown) => console.warn(`database ${dbName} left behind: ${String(err)}`));
    await admin.end();
    for (;;) {
      const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (list.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    }
    await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
    s3.destroy();
    await stopStack?.();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
