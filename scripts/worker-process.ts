/**
 * The worker as a process of its own, for tests that kill it (SIGKILL) mid-run and for the benchmark that reads its
 * memory: configured only through the environment, exactly like `npm run worker`, and printing one JSON line
 * `{"ready":true,"pid":…}` on stdout once it polls. Compiled into dist/ by `npm run build:js`, it runs as production
 * runs the worker (`npm run worker:prod`: plain node with the same flags; see scripts/worker-launch.ts).
 *
 * FM_REIMPORT_MEMORY_LOG_MS=1000 writes the process's memory by kind (MB) and the main thread's event-loop
 * utilization to stderr once a period.
 */
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { startWorker } from '../src/worker';

async function main() {
  const config = loadConfig(process.env, 'worker');
  const logger = createLogger({ level: config.log.level, format: 'json', name: 'worker-process' });
  const worker = await startWorker(config, logger, { identity: `worker-process-${process.pid}` });
  process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
  const every = Number(process.env.FM_REIMPORT_MEMORY_LOG_MS ?? 0);
  if (every > 0) {
    const mb = (n: number) => Math.round(n / 1048576);
    let elu = performance.eventLoopUtilization();
    setInterval(() => {
      const m = process.memoryUsage();
      const memory = { rss: mb(m.rss), heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external) };
      // How busy the main thread was since the last line (1 = never idle: everything on it waits in line).
      const now = performance.eventLoopUtilization();
      const eventLoop = Math.round(performance.eventLoopUtilization(now, elu).utilization * 100) / 100;
      elu = now;
      process.stderr.write(`${JSON.stringify({ memory, eventLoop })}\n`);
    }, every).unref();
  }
  const stop = () => {
    void worker.shutdown().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await worker.done;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
