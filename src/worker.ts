/**
 * The worker: wires real dependencies (PostgreSQL pool, S3 client, FileMaker client, notifier, payload codec) once
 * and runs two workers — the main task queue (workflows and metadata/database activities) and the files task queue
 * (container downloads), whose activity rate is limited for the whole cluster so that many workers together never
 * exceed what FileMaker allows.
 */
import { IllegalStateError } from '@temporalio/common';
import { makeTelemetryFilterString, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { loadConfig, type Config } from './config';
import { createLogger, temporalLoggerFor, type Logger, type TemporalLogLevel } from './logger';
import { createActivities, type ActivityDeps } from './activities';
import { dataConverterFor, payloadCodecFromConfig } from './codec';
import { temporalConnectionOptions } from './tls';
import { createDeps } from './activities/deps';
import { prometheusTelemetry, startWorkerMetrics } from './metrics';

export interface RunningWorker {
  /** Resolves when both workers have stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Installs Temporal's process-wide Runtime once: the SDK's and Core's logs go into our pino logger (the SDK's own
 * chatter only from `sdkLevel`, WARN by default), and the SDK does not listen for signals — the process that starts
 * the worker owns shutdown (two owners meant a second `shutdown()` on an already stopping worker, an
 * IllegalStateError on every Ctrl-C). Returns false when a Runtime already exists (for example one a test
 * environment created), which is then left as it is.
 */
export function installTemporalRuntime(
  logger: Logger,
  opts: { sdkLevel?: TemporalLogLevel; metricsAddress?: string } = {},
): boolean {
  const sdkLevel = opts.sdkLevel ?? 'WARN';
  try {
    Runtime.install({
      logger: temporalLoggerFor(logger, {
        sdkLevel,
        // The files worker polls activities only, by design; the SDK warns about that on every start.
        ignore: (message) => message === 'No workflows registered, not polling for workflow tasks',
      }),
      shutdownSignals: [],
      telemetryOptions: {
        logging: { forward: {}, filter: makeTelemetryFilterString({ core: sdkLevel, other: 'ERROR' }) },
        // Core serves Prometheus itself; our own metrics join it through the Runtime's meter (src/metrics.ts).
        ...(opts.metricsAddress ? { metrics: prometheusTelemetry(opts.metricsAddress) } : {}),
      },
    });
    return true;
  } catch (err) {
    if (err instanceof IllegalStateError) {
      if (opts.metricsAddress) logger.warn('a Temporal Runtime was already installed: METRICS_ADDRESS is not served');
      return false;
    }
    throw err;
  }
}

/** Starts the workers for `config`; `deps` may be given by tests, otherwise real ones are created and closed here. */
export async function startWorker(
  config: Config,
  logger: Logger,
  opts: { deps?: ActivityDeps; workflowsPath?: string; identity?: string } = {},
): Promise<RunningWorker> {
  installTemporalRuntime(logger, { metricsAddress: config.metrics.address });
  const deps = opts.deps ?? (await createDeps(config, logger));
  const metrics = config.metrics.address
    ? startWorkerMetrics({
        meter: Runtime.instance().metricMeter,
        fm: deps.fm,
        pool: deps.pool,
        logger: logger.child({ component: 'metrics' }),
        transferBudgetBytes: config.filemaker.transferBudgetBytes,
        transferUsedBeforeBytes: config.filemaker.transferUsedBytes,
        sampleMs: config.metrics.sampleSeconds * 1000,
      })
    : undefined;
  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  const dataConverter = config.payloadKeys ? dataConverterFor(payloadCodecFromConfig(config)) : undefined;
  const activities = createActivities(deps);
  const common: Partial<WorkerOptions> = {
    connection,
    namespace: config.temporal.namespace,
    dataConverter,
    ...(opts.identity ? { identity: opts.identity } : {}),
    // On SIGTERM/SIGINT, give in-flight activities time to heartbeat and finish their current file.
    shutdownGraceTime: '20s',
    // Heartbeats reach the server at least this often (else every 80 % of the heartbeat timeout, up to 4 minutes):
    // a cancel is only seen in a heartbeat's answer, and the rollback waits for writing activities to stop.
    maxHeartbeatThrottleInterval: '2s',
    ...(metrics ? { interceptors: { activity: [metrics.activityInterceptor] } } : {}),
  };
  const main = await Worker.create({
    ...common,
    taskQueue: config.temporal.taskQueue,
    // A prebuilt bundle spares the worker the bundler's memory (see `npm run bundle`).
    ...(config.temporal.workflowBundle && !opts.workflowsPath
      ? { workflowBundle: { codePath: config.temporal.workflowBundle } }
      : { workflowsPath: opts.workflowsPath ?? require.resolve('./workflows') }),
    activities,
    maxConcurrentActivityTaskExecutions: 20,
  });
  const files = await Worker.create({
    ...common,
    taskQueue: `${config.temporal.taskQueue}-files`,
    activities,
    // Per worker: batch activities in flight; each holds up to maxConcurrency FileMaker requests (shared semaphore).
    maxConcurrentActivityTaskExecutions: Math.max(1, config.filemaker.maxConcurrency),
    // For the whole task queue, across every worker: batch starts per second.
    maxTaskQueueActivitiesPerSecond: config.filemaker.requestsPerSecond,
  });
  logger.info(
    {
      taskQueue: config.temporal.taskQueue,
      namespace: config.temporal.namespace,
      encrypted: Boolean(dataConverter),
      metrics: config.metrics.address ? `http://${config.metrics.address}/metrics` : undefined,
    },
    'worker started',
  );
  const done = Promise.all([main.run(), files.run()]).then(async () => {
    // A last sample before the pool closes: the run's final counts reach the exporter.
    await metrics?.stop();
    await connection.close();
    if (!opts.deps) await deps.close();
  });
  let stopping: Promise<void> | undefined;
  return {
    done,
    // Idempotent: a second Ctrl-C or a cleanup after a signal must not call Worker.shutdown() twice.
    shutdown: () =>
      (stopping ??= (async () => {
        for (const w of [main, files]) if (w.getState() === 'RUNNING') w.shutdown();
        await done;
      })()),
  };
}

async function main() {
  let config: Config;
  try {
    config = loadConfig(process.env, 'worker');
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const logger = createLogger({ level: config.log.level, format: config.log.format, name: 'fm-reimport-worker' });
  const worker = await startWorker(config, logger);
  // The Runtime does not handle signals (see installTemporalRuntime): this process owns shutdown.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down the worker');
      void worker.shutdown();
    });
  }
  await worker.done;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
