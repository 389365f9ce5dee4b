/**
 * `npm start`: the main job on embedded defaults. Brings up the local stack (Temporal with its Web UI and a codec
 * server, PostgreSQL, MinIO), the FileMaker simulator with its demo data set, migrations and a worker; starts a full
 * reimport, shows its progress, prints the Web UI link and the final report, and stays up for inspection until
 * Ctrl-C, which stops everything it started. Endpoints set in the environment are used instead of local ones.
 * The terminal shows progress and the report; the worker's log goes to .stack/local/worker.log and Temporal's to
 * .stack/local/temporal/server.log. A closed output (`npm start | head`) stops everything as Ctrl-C does.
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
  const { connectClient, startReimport, formatResult, webUiLink } = await import('../src/client/operations');
  const { watchProgress } = await import('../src/client/progress-bars');
  const { generateKeySpec, payloadCodecFromConfig, startCodecServer } = await import('../src/codec');
  const { startSession } = await import('./terminal');

  const stateDir = join(__dirname, '..', '.stack', 'local');
  mkdirSync(stateDir, { recursive: true });
  const session = startSession({ logFile: join(stateDir, 'worker.log') });
  const { terminal } = session;
  const warningsLine = () => {
    const n = terminal.warnings();
    return `${n} warning${n === 1 ? '' : 's'} in the worker log: ${path.relative(process.cwd(), terminal.logFile)}`;
  };

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
    const starting = startStack({ stateDir, uiCodecEndpoint: codecUrl, log: (l) => terminal.print(`[stack] ${l}`) });
    session.onStop(async () => (await starting).stop());
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
      session.onStop(() => sim.close());
      Object.assign(env, {
        FM_URL: sim.url,
        FM_DATABASE: sim.database,
        ...(fmid
          ? {
              FM_CLARIS_ID_TOKEN_COMMAND: tokenCommand(sim.adminUrl),
            }
          : { FM_USERNAME: sim.username, FM_PASSWORD: sim.password }),
      });
      terminal.print(`FileMaker simulator (demo data, fmcloud profile${fmid ? ', Claris ID' : ''}): ${sim.url}`);
    }
    const config = loadConfig(env, 'worker');
    const logger = createLogger({
      level: env.LOG_LEVEL ?? 'info',
      format: 'json',
      name: 'fm-reimport',
      destination: terminal.logDestination,
    });

    const codec = await startCodecServer({
      codec: payloadCodecFromConfig(config),
      port: codecPort,
      corsOrigins: stack.temporalUiUrl ? [stack.temporalUiUrl] : [],
      logger,
    });
    session.onStop(() => codec.close());

    await migrate(config.database.url);
    const worker = await startWorker(config, logger);
    session.onStop(() => worker.shutdown());

    // The client's connection is not closed on the way out, only dropped with the process: the SDK's gRPC retry
    // timer throws "Channel has been shut down" (uncaught) when the connection closes under a call it is retrying.
    const { client } = await connectClient(config);
    const handle = await startReimport(client, config, { input: {} });
    const ui = config.temporal.uiUrl ?? stack.temporalUiUrl;
    terminal.print(`\nreimport started: ${handle.workflowId}`);
    if (ui) terminal.print(`Temporal Web UI: ${webUiLink(ui, config.temporal.namespace, handle.workflowId)}`);
    terminal.print(`codec server: ${codec.url}`);
    terminal.print(
      `logs: ${path.relative(process.cwd(), terminal.logFile)} (worker), ${path.relative(process.cwd(), join(stateDir, 'temporal', 'server.log'))} (Temporal)\n`,
    );
    // After Ctrl-C the watch is aborted and the services go away under pending calls: that is the stop, not the run.
    const stopped = new Promise<never>(() => undefined);
    await watchProgress(client, handle.workflowId, { intervalMs: 1000, signal: session.signal }).catch(
      (err: unknown) => {
        if (!session.stopping()) throw err;
      },
    );
    if (session.stopping()) return stopped;
    try {
      terminal.print('\n' + formatResult(await handle.result()));
    } catch (err) {
      if (session.stopping()) return stopped;
      terminal.print(`\nthe run did not complete: ${(err as Error).message}`);
    }
    terminal.print(`\n${warningsLine()}`);
    if (ui) terminal.print(`Temporal Web UI: ${webUiLink(ui, config.temporal.namespace, handle.workflowId)}`);
    terminal.print('Everything stays up for inspection. Press Ctrl-C to stop.');
    await new Promise<never>(() => undefined);
  } catch (err) {
    if (session.stopping()) return;
    terminal.note(err instanceof Error ? err.message : String(err));
    terminal.note(warningsLine());
    await session.stop(1);
  }
}

void main();
