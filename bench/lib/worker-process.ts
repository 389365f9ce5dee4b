/**
 * The worker as a process of its own, for the benchmark: configured from the environment exactly as `npm run worker`
 * is, so its memory (read from /proc by the parent) is the worker's alone. Prints one JSON line `{"ready":true}` on
 * stdout once both task queues are polled; stops gracefully on SIGTERM/SIGINT.
 */
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startWorker } from '../../src/worker';

async function main(): Promise<void> {
  const config = loadConfig(process.env, 'worker');
  const logger = createLogger({ level: config.log.level, format: 'json', name: 'bench-worker' });
  const worker = await startWorker(config, logger);
  const stop = () => void worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
  await worker.done;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
