/**
 * `npm start`: the main job on embedded defaults. Brings up the local stack (Temporal with its Web UI and a codec
 * server, PostgreSQL, MinIO), the FileMaker simulator with its demo data set, migrations and a worker; starts a full
 * reimport, shows its progress, prints the Web UI link and the final report, and stays up for inspection until
 * Ctrl-C, which stops everything it started. Endpoints set in the environment are used instead of local ones.
 */
import { parseEnv } from '../src/config';

async function main(): Promise<void> {
  // Validate first, before loading anything heavy: a bad value fails within a second, naming the variable.
  try {
    parseEnv(process.env);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const path = await import('node:path');
  const join = (...parts: string[]) => path.join(...parts);
  const { mkdirSync, existsSync, readFileSync, writeFileSync } = await import('node:fs');
  const { startStack } = await import('./stack');
  const { startSimulator, tokenCommand } = await import('../sim/server');
  const { loadConfig } = await import('../src/config');
  const { createLogger } = await import('../src/logger');
  const { migrate } = await import('../src/store/migrate');
  const { startWorker } = await import('../src/worker');
  const { connectClient, startReimport, formatResult } = await import('../src/client/operations');
  const { webUiLink } = await import('../src/client/cli');
  const { watchProgress } = await import('../src/client/progress-bars');
  const { generateKeySpec, payloadCodecFromConfig, startCodecServer } = await import('../src/codec');

  const stateDir = join(__dirname, '..', '.stack', 'local');
  mkdirSync(stateDir, { recursive: true });
  const cleanups: (() => Promise<void>)[] = [];
  let stopping = false;
  const watching = new AbortController();
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping…');
    watching.abort();
    // Nothing may end the process before the stack's detached services are stopped.
    process.on('uncaughtException', (err) => console.error(`while stopping: ${err.message}`));
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => console.error(String(e)));
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    // Payload encryption: a local key kept in the state folder, so the Web UI decodes through the codec server.
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (!env.PAYLOAD_KEYS && !env.PAYLOAD_KEYS_FILE) {
      const keyFile = join(stateDir, 'payload-keys');
      if (!existsSync(keyFile)) writeFileSync(keyFile, generateKeySpec() + '\n', { mode: 0o600 });
      env.PAYLOAD_KEYS = readFileSync(keyFile, 'utf8').trim();
    }
    const codecPort = Number(env.CODEC_SERVER_PORT ?? 8888);
    const codecUrl = `http://127.0.0.1:${codecPort}`;
    // Registered before it resolves: the services are detached processes, so a Ctrl-C while they are still
    // starting must wait for them and stop them too.
    const starting = startStack({ stateDir, uiCodecEndpoint: codecUrl });
    cleanups.push(async () => (await starting).stop());
    const stack = await starting;
    Object.assign(env, stack.env);

    if (!env.FM_URL) {
      // FM_AUTH=claris-id: the simulator is a FileMaker Cloud host and hands out the Claris ID tokens itself.
      const fmid = env.FM_AUTH === 'claris-id';
      const sim = await startSimulator({
        preset: 'demo',
        profile: 'fmcloud',
        sizeScale: 0.05,
        auth: fmid ? 'fmid' : 'basic',
      });
      cleanups.push(() => sim.close());
      Object.assign(env, {
        FM_URL: sim.url,
        FM_DATABASE: sim.database,
        ...(fmid
          ? {
              FM_CLARIS_ID_TOKEN_COMMAND: tokenCommand(sim.adminUrl),
            }
          : { FM_USERNAME: sim.username, FM_PASSWORD: sim.password }),
      });
      console.log(`FileMaker simulator (demo data, fmcloud profile${fmid ? ', Claris ID' : ''}): ${sim.url}`);
    }
    const config = loadConfig(env, 'worker');
    const logger = createLogger({ level: env.LOG_LEVEL ?? 'warn', format: 'json', name: 'fm-reimport' });

    const codec = await startCodecServer({
      codec: payloadCodecFromConfig(config),
      port: codecPort,
      corsOrigins: stack.temporalUiUrl ? [stack.temporalUiUrl] : [],
      logger,
    });
    cleanups.push(() => codec.close());

    await migrate(config.database.url);
    const worker = await startWorker(config, logger);
    cleanups.push(() => worker.shutdown());

    // The client's connection is not closed on the way out, only dropped with the process: the SDK's gRPC retry
    // timer throws "Channel has been shut down" (uncaught) when the connection closes under a call it is retrying.
    const { client } = await connectClient(config);
    const handle = await startReimport(client, config, { input: {} });
    const ui = config.temporal.uiUrl ?? stack.temporalUiUrl;
    console.log(`\nreimport started: ${handle.workflowId}`);
    if (ui) console.log(`Temporal Web UI: ${webUiLink(ui, config.temporal.namespace, handle.workflowId)}`);
    console.log(`codec server: ${codec.url}\n`);
    // After Ctrl-C the watch is aborted and the services go away under pending calls: that is the stop, not the run.
    const stopped = new Promise<never>(() => undefined);
    await watchProgress(client, handle.workflowId, { intervalMs: 1000, signal: watching.signal }).catch(
      (err: unknown) => {
        if (!stopping) throw err;
      },
    );
    if (stopping) return stopped;
    try {
      console.log('\n' + formatResult(await handle.result()));
    } catch (err) {
      if (stopping) return stopped;
      console.log(`\nthe run did not complete: ${(err as Error).message}`);
    }
    if (ui) console.log(`\nTemporal Web UI: ${webUiLink(ui, config.temporal.namespace, handle.workflowId)}`);
    console.log('Everything stays up for inspection. Press Ctrl-C to stop.');
    await new Promise<never>(() => undefined);
  } catch (err) {
    if (stopping) return;
    console.error(err instanceof Error ? err.message : String(err));
    await stop(1);
  }
}

void main();
