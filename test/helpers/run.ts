/**
 * What an end-to-end test needs for a reimport: its own migrated database and bucket, a FileMaker simulator, a task
 * queue, and the worker environment pointing at them — for a worker in this process (`startTestWorker`) or in a
 * child process (`spawnWorkerProcess`, for tests that kill it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { ensureBuilt, productionWorkerLaunch } from '../../scripts/worker-launch';
import { startSimulator, tokenCommand, type RunningSimulator, type SimulatorOptions } from '../../sim/server';
import { loadConfig } from '../../src/config';
import { createLogger, type Logger } from '../../src/logger';
import { migrate } from '../../src/store/migrate';
import { startWorker, type RunningWorker } from '../../src/worker';
import { createTestBucket, createTestDatabase, s3ClientFor, stackEnv } from './stack';

const ROOT = join(__dirname, '..', '..');

export interface TestRun {
  sim: RunningSimulator;
  databaseUrl: string;
  bucket: string;
  taskQueue: string;
  /** The stack's endpoints plus this run's database, bucket, simulator and task queue, as a worker reads them. */
  env: Record<string, string>;
  client: Client;
  connection: Connection;
  pool: pg.Pool;
  s3: S3Client;
  /** Closes the clients and the simulator (database and bucket are dropped when the test process ends). */
  close(): Promise<void>;
}

export async function prepareRun(sim: SimulatorOptions, name: string): Promise<TestRun> {
  const stack = await stackEnv();
  const db = await createTestDatabase();
  const bucket = await createTestBucket();
  await migrate(db.url);
  const simulator = await startSimulator(sim);
  const taskQueue = `${name}-${randomUUID()}`;
  const connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
  const pool = new pg.Pool({ connectionString: db.url });
  const s3 = await s3ClientFor();
  return {
    sim: simulator,
    databaseUrl: db.url,
    bucket,
    taskQueue,
    env: {
      ...stack,
      DATABASE_URL: db.url,
      S3_BUCKET: bucket,
      FM_URL: simulator.url,
      FM_DATABASE: simulator.database,
      ...(simulator.auth === 'fmid'
        ? // A FileMaker Cloud host: Claris ID tokens from the simulator's admin port, no account.
          { FM_AUTH: 'claris-id', FM_CLARIS_ID_TOKEN_COMMAND: tokenCommand(simulator.adminUrl) }
        : { FM_USERNAME: simulator.username, FM_PASSWORD: simulator.password }),
      TEMPORAL_TASK_QUEUE: taskQueue,
    },
    client: new Client({ connection }),
    connection,
    pool,
    s3,
    async close() {
      await connection.close();
      await pool.end();
      await simulator.close();
      s3.destroy();
    },
  };
}

/** A worker in this process for the run (its logs at `level`, default warn). */
export async function startTestWorker(
  run: TestRun,
  level: 'error' | 'warn' | 'info' | 'debug' = 'warn',
): Promise<RunningWorker> {
  const config = loadConfig({ ...run.env, LOG_LEVEL: level });
  return startWorker(config, createLogger({ level, format: 'json' }));
}

/**
 * A worker in a process of its own (scripts/worker-process.ts), resolved once it polls. Push it to `children`
 * so the test can kill what is left at the end. `built`: compiled JavaScript with the production flags of
 * `npm run worker:prod`, for tests that measure the worker's memory.
 */
export async function spawnWorkerProcess(
  env: NodeJS.ProcessEnv,
  children: ChildProcess[],
  opts: { built?: boolean } = {},
): Promise<ChildProcess> {
  let args = ['--import', 'tsx', join('scripts', 'worker-process.ts')];
  let launchEnv: Record<string, string> = {};
  if (opts.built) {
    const launch = productionWorkerLaunch();
    args = [...launch.nodeArgs, ensureBuilt()];
    launchEnv = launch.env;
  }
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...env, ...launchEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker process did not become ready in 60 s')), 60_000);
    child.once('exit', (code, signal) => reject(new Error(`worker process exited (${code ?? signal})`)));
    lines.on('line', (line) => {
      if (line.includes('"ready":true')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

/** A worker's JSON logger whose lines are kept in `lines`, for tests that search what the worker logged. */
export function capturingLogger(level: 'error' | 'warn' | 'info' | 'debug' = 'debug'): {
  logger: Logger;
  lines: string[];
} {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logger: createLogger({ level, format: 'json', destination }), lines };
}
