/**
 * The operator's commands: start, status, pause, resume, cancel, rollback, report, doctor (and the codec server).
 * Each has an equivalent `temporal workflow ...` command in the README.
 */
import { Command, InvalidArgumentError } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config';
import { createLogger } from '../logger';
import { connectClient, formatResult, readReport, startReimport } from './operations';
import { PHASES } from '../domain/tables';
import type { ReimportResult } from '../workflows/reimport';

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function phaseList(value: string): string[] {
  const list = value.split(',').map((s) => s.trim());
  const bad = list.filter((p) => !(PHASES as readonly string[]).includes(p));
  if (bad.length) throw new InvalidArgumentError(`unknown phase(s) ${bad.join(', ')}; known: ${PHASES.join(', ')}`);
  return list;
}

const program = new Command('fm-reimport').description('Operate FileMaker → Nexus reimport runs on Temporal');

program
  .command('start')
  .description('start a reimport run')
  .option('--id <runId>', 'workflow id of the run (default: reimport-<timestamp>)')
  .option('--phases <list>', `comma-separated phases (default all: ${PHASES.join(',')})`, phaseList)
  .option('--resume-from <phase>', 'skip the phases before this one')
  .option('--dry-run', 'metadata only: no writes, no container bytes', false)
  .option('--write-back', 'PATCH NexusExportDate after each file is stored', false)
  .option('--concurrency <n>', 'chunks/batches in flight per phase', int)
  .option('--chunk-size <n>', 'records per chunk', int)
  .option('--file-batch-size <n>', 'files per batch activity', int)
  .option('--transfer-budget <bytes>', 'annual FileMaker transfer budget for this run', int)
  .option('--no-wait', 'return once started')
  .action(async (o: Record<string, unknown>) => {
    const { client, config, close } = await connectClient();
    try {
      const settings = Object.fromEntries(
        Object.entries({ concurrency: o.concurrency, chunkSize: o.chunkSize, fileBatchSize: o.fileBatchSize }).filter(
          ([, v]) => v !== undefined,
        ),
      );
      const handle = await startReimport(client, config, {
        runId: o.id as string | undefined,
        input: {
          phases: o.phases as never,
          resumeFrom: o.resumeFrom as never,
          dryRun: Boolean(o.dryRun),
          writeBack: Boolean(o.writeBack),
          settings,
          transferBudgetBytes: o.transferBudget as number | undefined,
        },
      });
      console.log(`started ${handle.workflowId}`);
      if (config.temporal.uiUrl)
        console.log(`Web UI: ${webUiLink(config.temporal.uiUrl, config.temporal.namespace, handle.workflowId)}`);
      if (o.wait !== false) {
        const result = (await handle.result()) as ReimportResult;
        console.log(formatResult(result));
      }
    } finally {
      await close();
    }
  });

program
  .command('status <runId>')
  .description('live progress bars of a run (Ctrl-C to stop watching)')
  .option('--once', 'print once and exit')
  .option('--web', 'serve the read-only dashboard instead')
  .option('--port <n>', 'dashboard port', int)
  .action(async (runId: string, o: { once?: boolean; web?: boolean; port?: number }) => {
    const { client, config, close } = await connectClient();
    try {
      if (o.web) {
        const { serveDashboard } = await import('./dashboard');
        const d = await serveDashboard({ client, config, runId, port: o.port ?? 0 });
        console.log(`dashboard: ${d.url}`);
        await new Promise<void>((res) => process.once('SIGINT', () => void d.close().then(res)));
        return;
      }
      const { watchProgress } = await import('./progress-bars');
      await watchProgress(client, runId, { once: Boolean(o.once) });
    } finally {
      await close();
    }
  });

for (const [name, description] of [
  ['pause', 'pause a run between batches'],
  ['resume', 'resume a paused run'],
] as const) {
  program
    .command(`${name} <runId>`)
    .description(description)
    .action(async (runId: string) => {
      const { client, close } = await connectClient();
      try {
        await client.workflow.getHandle(runId).signal(name);
        console.log(`${name} sent to ${runId}`);
      } finally {
        await close();
      }
    });
}

program
  .command('cancel <runId>')
  .description('cancel a run; it rolls the database back and deletes the objects it created')
  .action(async (runId: string) => {
    const { client, close } = await connectClient();
    try {
      await client.workflow.getHandle(runId).cancel();
      console.log(`cancel requested for ${runId}; it rolls back before it ends`);
    } finally {
      await close();
    }
  });

program
  .command('set <runId>')
  .description('change settings of a running run')
  .option('--concurrency <n>', 'chunks/batches in flight per phase', int)
  .option('--chunk-size <n>', 'records per chunk', int)
  .option('--file-batch-size <n>', 'files per batch', int)
  .option('--transfer-budget <bytes>', 'new annual transfer budget', int)
  .action(async (runId: string, o: Record<string, number | undefined>) => {
    const { client, close } = await connectClient();
    try {
      const h = client.workflow.getHandle(runId);
      const patch = Object.fromEntries(
        Object.entries({ concurrency: o.concurrency, chunkSize: o.chunkSize, fileBatchSize: o.fileBatchSize }).filter(
          ([, v]) => v !== undefined,
        ),
      );
      if (Object.keys(patch).length)
        console.log(JSON.stringify(await h.executeUpdate('setSettings', { args: [patch] })));
      if (o.transferBudget !== undefined) {
        console.log(`budget: ${String(await h.executeUpdate('setTransferBudget', { args: [o.transferBudget] }))}`);
      }
    } finally {
      await close();
    }
  });

program
  .command('rollback <runId>')
  .description('roll a finished run back: restore its pre-run snapshot and delete the objects it created')
  .action(async (runId: string) => {
    const { client, config, close } = await connectClient();
    try {
      const result: unknown = await client.workflow.execute('rollback', {
        taskQueue: config.temporal.taskQueue,
        workflowId: `${runId}/rollback`,
        args: [{ runId }],
      });
      console.log(JSON.stringify(result, null, 2));
    } finally {
      await close();
    }
  });

program
  .command('report <runId>')
  .description('print the report of a run (from its result, or the stored report)')
  .option('--json', 'the full stored report as JSON')
  .action(async (runId: string, o: { json?: boolean }) => {
    const { client, close } = await connectClient();
    try {
      const report = await readReport(client, runId);
      console.log(o.json ? JSON.stringify(report, null, 2) : formatResult(report));
    } finally {
      await close();
    }
  });

program
  .command('doctor')
  .description('read-only checks of the FileMaker host (and the transfer log) before a first run; writes nothing')
  .option('--json', 'the checks as JSON')
  .action(async (o: { json?: boolean }) => {
    const config = loadConfig(process.env, 'client');
    if (!config.filemaker.url) throw new Error('FM_URL: required, the FileMaker server base URL');
    if (config.filemaker.auth === 'claris-id' && config.filemaker.clarisIdTokenCommand === undefined)
      throw new Error('FM_CLARIS_ID_TOKEN_COMMAND: required with FM_AUTH=claris-id');
    // Log lines go to stderr: stdout is the table (or the JSON) alone.
    const logger = createLogger({ level: config.log.level, name: 'doctor', destination: pino.destination(2) });
    const { fileMakerClientFor } = await import('../activities/deps');
    const { formatDoctor, runDoctor } = await import('./doctor');
    const { readOnlyPool } = await import('../store/db');
    const fm = fileMakerClientFor(config, logger);
    const pool = config.database.url ? readOnlyPool(config.database) : undefined;
    try {
      const auth = config.filemaker.auth === 'claris-id' ? 'FMID' : 'Basic';
      const report = await runDoctor({ fm, pool, filemaker: config.filemaker, auth });
      console.log(o.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
      process.exitCode = report.ok ? 0 : 1;
    } finally {
      await fm.close();
      await pool?.end();
    }
  });

program
  .command('codec-server')
  .description('serve the payload codec for the Web UI and the temporal CLI')
  .action(async () => {
    const config = loadConfig(process.env, 'client');
    const logger = createLogger({ level: config.log.level, format: config.log.format, name: 'codec-server' });
    const { startCodecServer, payloadCodecFromConfig, codecCorsOriginsFor } = await import('../codec');
    const server = await startCodecServer({
      codec: payloadCodecFromConfig(config),
      port: config.codecServerPort,
      corsOrigins: codecCorsOriginsFor(config),
      logger,
    });
    console.log(`codec server: ${server.url}`);
    await new Promise<void>((res) => process.once('SIGINT', () => void server.close().then(res)));
  });

export function webUiLink(uiUrl: string, namespace: string, workflowId: string): string {
  return `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

if (require.main === module) {
  program.parseAsync(process.argv).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
