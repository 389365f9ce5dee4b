/**
 * The operator's commands: start, cutover, schedule, status, pause, resume, cancel, rollback, report, backups,
 * signoff, doctor (and the codec server). Each one that speaks to Temporal has an equivalent `temporal workflow ...`
 * (or `temporal schedule ...`) command in the README; backups and signoff speak to the database.
 */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { Command, InvalidArgumentError } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config';
import { createLogger } from '../logger';
import {
  formatCutover,
  formatResult,
  readReport,
  startCutover,
  startReimport,
  webUiLink,
  withClient,
} from './operations';
import {
  createReimportSchedule,
  describeSchedule,
  formatSchedules,
  isInterval,
  listReimportSchedules,
} from './schedules';
import { PHASES } from '../domain/tables';
import type { ReimportResult } from '../workflows/reimport';
import type { ReimportInput } from '../workflows/options';
import type { CutoverResult } from '../workflows/cutover-input';

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function share(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new InvalidArgumentError('expected a share between 0 and 1, e.g. 0.02');
  }
  return n;
}

function positive(value: string): number {
  const n = int(value);
  if (n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

function phaseList(value: string): string[] {
  const list = value.split(',').map((s) => s.trim());
  const bad = list.filter((p) => !(PHASES as readonly string[]).includes(p));
  if (bad.length) throw new InvalidArgumentError(`unknown phase(s) ${bad.join(', ')}; known: ${PHASES.join(', ')}`);
  return list;
}

const program = new Command('fm-reimport').description('Operate FileMaker → Nexus reimport runs on Temporal');

/** The options of a run, shared by `start` and `schedule create`. */
function withRunOptions(command: Command): Command {
  command
    .option('--phases <list>', `comma-separated phases (default all: ${PHASES.join(',')})`, phaseList)
    .option('--resume-from <phase>', 'skip the phases before this one')
    .option('--incremental', 'read only records changed since the last completed run (no delete phase)', false)
    .option('--dry-run', 'metadata only: no writes, no container bytes', false)
    .option('--write-back', 'PATCH NexusExportDate after each file is stored', false);
  return withRunSettings(command, 'this run');
}

/** The settings of a run, shared by the run options and `cutover` (whose final run they set: `run` names it). */
function withRunSettings(command: Command, run: string): Command {
  return command
    .option('--concurrency <n>', 'chunks/batches in flight per phase', int)
    .option('--chunk-size <n>', 'records per chunk', int)
    .option('--file-batch-size <n>', 'files per batch activity', int)
    .option('--transfer-budget <bytes>', `annual FileMaker transfer budget for ${run}`, int)
    .option('--vanished-threshold <share>', 'share of a table (0-1) that may vanish before the run waits', share);
}

/** The workflow input the run options describe. */
function runInput(o: Record<string, unknown>): ReimportInput {
  const settings = Object.fromEntries(
    Object.entries({ concurrency: o.concurrency, chunkSize: o.chunkSize, fileBatchSize: o.fileBatchSize }).filter(
      ([, v]) => v !== undefined,
    ),
  );
  return {
    phases: o.phases as never,
    resumeFrom: o.resumeFrom as never,
    ...(o.incremental === true ? { mode: 'incremental' as const } : {}),
    dryRun: Boolean(o.dryRun),
    writeBack: Boolean(o.writeBack),
    settings,
    transferBudgetBytes: o.transferBudget as number | undefined,
    vanishedThreshold: o.vanishedThreshold as number | undefined,
  };
}

withRunOptions(
  program
    .command('start')
    .description('start a reimport run')
    .option('--id <runId>', 'workflow id of the run (default: reimport-<timestamp>)'),
)
  .option('--no-wait', 'return once started')
  .action(async (o: Record<string, unknown>) => {
    await withClient(async ({ client, config }) => {
      const handle = await startReimport(client, config, { runId: o.id as string | undefined, input: runInput(o) });
      console.log(`started ${handle.workflowId}`);
      if (config.temporal.uiUrl)
        console.log(`Web UI: ${webUiLink(config.temporal.uiUrl, config.temporal.namespace, handle.workflowId)}`);
      if (o.wait !== false) {
        const result = (await handle.result()) as ReimportResult;
        console.log(formatResult(result));
      }
    });
  });

const cutover = program
  .command('cutover')
  .description('the cut-over: prove FileMaker frozen, run the final incremental import, write its certificate to S3')
  .option('--id <cutoverId>', 'workflow id of the cut-over (default: cutover-<timestamp>); its run is <id>-import')
  .option('--freeze-interval <seconds>', 'seconds between the two reads that must be identical (default 60)', positive)
  .option('--sample <n>', 'patients shown field by field on the certificate (default 5)', int);
withRunSettings(cutover, 'the final run')
  .option('--no-wait', 'return once started')
  .action(async (o: Record<string, unknown>) => {
    const { settings, transferBudgetBytes, vanishedThreshold } = runInput(o);
    const input = {
      freezeIntervalSeconds: o.freezeInterval as number | undefined,
      certificateSample: o.sample as number | undefined,
      import: { settings, transferBudgetBytes, vanishedThreshold },
    };
    await withClient(async ({ client, config }) => {
      const handle = await startCutover(client, config, { cutoverId: o.id as string | undefined, input });
      console.log(`started ${handle.workflowId}`);
      if (config.temporal.uiUrl)
        console.log(`Web UI: ${webUiLink(config.temporal.uiUrl, config.temporal.namespace, handle.workflowId)}`);
      if (o.wait === false) return;
      const { describeFailure } = await import('../workflows/failures');
      const result = (await handle.result().catch((err: unknown) => {
        throw new Error(`cut-over ${handle.workflowId} failed: ${describeFailure(err)}`);
      })) as CutoverResult;
      console.log(formatCutover(result, config.s3.bucket));
    });
  });

const schedule = program
  .command('schedule')
  .description('repeated reimports until cut-over (Temporal Schedules: no overlap, paused after a failed run)');

withRunOptions(
  schedule
    .command('create <scheduleId>')
    .description('create a schedule that starts a reimport every --every or at --cron times')
    .option('--every <duration>', 'interval between runs, e.g. 12h or 1d', (v: string) => {
      if (!isInterval(v)) throw new InvalidArgumentError('expected a duration such as 30m, 12h or 1d');
      return v;
    })
    .option('--cron <expression>', 'cron line, e.g. "0 2 * * *" (at 02:00)')
    .option('--time-zone <tz>', 'time zone of --cron (default CLINIC_TIME_ZONE)')
    .option('--note <text>', 'a note shown with the schedule')
    .option('--paused', 'create it paused', false),
).action(async (scheduleId: string, o: Record<string, unknown>) => {
  if ((o.every === undefined) === (o.cron === undefined)) throw new Error('give --every or --cron (one of them)');
  await withClient(async ({ client, config }) => {
    await createReimportSchedule(client, config, {
      scheduleId,
      cadence:
        o.every !== undefined
          ? { every: o.every as string }
          : { cron: o.cron as string, timeZone: (o.timeZone as string | undefined) ?? config.clinicTimeZone },
      input: runInput(o),
      note: o.note as string | undefined,
      paused: Boolean(o.paused),
    });
    console.log(`created schedule ${scheduleId}${o.paused ? ' (paused)' : ''}`);
  });
});

schedule
  .command('list')
  .description('the reimport schedules: paused or active, next and recent runs')
  .action(async () => {
    await withClient(async ({ client }) => {
      console.log(formatSchedules(await listReimportSchedules(client)));
    });
  });

for (const [name, description, done] of [
  ['pause', 'stop starting runs (a run in progress goes on)', 'paused'],
  ['unpause', 'start runs again (also after a failed run paused it)', 'unpaused'],
  ['trigger', 'start a run now (skipped while one is in progress)', 'triggered'],
  ['delete', 'delete the schedule (runs it started are kept)', 'deleted'],
] as const) {
  const command = schedule.command(`${name} <scheduleId>`).description(description);
  if (name === 'pause' || name === 'unpause') command.option('--note <text>', 'why');
  command.action(async (scheduleId: string, o: { note?: string }) => {
    await withClient(async ({ client }) => {
      await describeSchedule(client, scheduleId);
      const handle = client.schedule.getHandle(scheduleId);
      if (name === 'pause' || name === 'unpause') await handle[name](o.note);
      else if (name === 'trigger') await handle.trigger(ScheduleOverlapPolicy.SKIP);
      else await handle.delete();
      console.log(`${done} schedule ${scheduleId}`);
    });
  });
}

program
  .command('status <runId>')
  .description('live progress bars of a run (Ctrl-C to stop watching)')
  .option('--once', 'print once and exit')
  .option('--web', 'serve the read-only dashboard instead')
  .option('--port <n>', 'dashboard port', int)
  .action(async (runId: string, o: { once?: boolean; web?: boolean; port?: number }) => {
    await withClient(async ({ client, config }) => {
      if (o.web) {
        const { serveDashboard } = await import('./dashboard');
        const { readOnlyPool } = await import('../store/db');
        const { runSignoff } = await import('../store/retention');
        const pool = config.database.url ? readOnlyPool(config.database) : undefined;
        const signoff = pool && (() => runSignoff(pool, runId));
        const d = await serveDashboard({ client, config, runId, port: o.port ?? 0, signoff });
        console.log(`dashboard: ${d.url}`);
        await new Promise<void>((res) => process.once('SIGINT', () => void d.close().then(res)));
        await pool?.end();
        return;
      }
      const { watchProgress } = await import('./progress-bars');
      await watchProgress(client, runId, { once: Boolean(o.once) });
    });
  });

for (const [name, description] of [
  ['pause', 'pause a run between batches'],
  ['resume', 'resume a paused run'],
] as const) {
  program
    .command(`${name} <runId>`)
    .description(description)
    .action(async (runId: string) => {
      await withClient(async ({ client }) => {
        await client.workflow.getHandle(runId).signal(name);
        console.log(`${name} sent to ${runId}`);
      });
    });
}

program
  .command('cancel <runId>')
  .description('cancel a run; it rolls the database back and deletes the objects it created')
  .action(async (runId: string) => {
    await withClient(async ({ client }) => {
      await client.workflow.getHandle(runId).cancel();
      console.log(`cancel requested for ${runId}; it rolls back before it ends`);
    });
  });

program
  .command('set <runId>')
  .description('change settings of a running run')
  .option('--concurrency <n>', 'chunks/batches in flight per phase', int)
  .option('--chunk-size <n>', 'records per chunk', int)
  .option('--file-batch-size <n>', 'files per batch', int)
  .option('--transfer-budget <bytes>', 'new annual transfer budget', int)
  .action(async (runId: string, o: Record<string, number | undefined>) => {
    await withClient(async ({ client }) => {
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
    });
  });

program
  .command('confirm-vanished <runId>')
  .description('let a run that waits because records vanished from FileMaker go on to delete (they are archived)')
  .action(async (runId: string) => {
    await withClient(async ({ client }) => {
      console.log(await client.workflow.getHandle(runId).executeUpdate('confirmVanished', { args: [] }));
    });
  });

program
  .command('rollback <runId>')
  .description('roll a finished run back: restore its pre-run snapshot and delete the objects it created')
  .action(async (runId: string) => {
    await withClient(async ({ client, config }) => {
      const result: unknown = await client.workflow.execute('rollback', {
        taskQueue: config.temporal.taskQueue,
        workflowId: `${runId}/rollback`,
        args: [{ runId }],
      });
      console.log(JSON.stringify(result, null, 2));
    });
  });

program
  .command('report <runId>')
  .description('print the report of a run (from its result, or the stored report)')
  .option('--json', 'the full stored report as JSON')
  .action(async (runId: string, o: { json?: boolean }) => {
    await withClient(async ({ client }) => {
      const report = await readReport(client, runId);
      console.log(o.json ? JSON.stringify(report, null, 2) : formatResult(report));
    });
  });

const backups = program
  .command('backups')
  .description("the runs' backups, kept by a policy: the last BACKUP_KEEP_RUNS completed runs and any not signed off");

backups
  .command('list')
  .description('every run with its backup and whether the policy keeps it')
  .option('--keep <n>', 'completed runs always kept (default BACKUP_KEEP_RUNS)', positive)
  .option('--json', 'as JSON')
  .action(async (o: { keep?: number; json?: boolean }) => {
    const config = loadConfig(process.env, 'client');
    const { withDatabase, formatBackups } = await import('./backups');
    const { listBackups } = await import('../store/retention');
    const listing = await withDatabase(config, (pool) => listBackups(pool, o.keep ?? config.database.backupKeepRuns));
    console.log(o.json ? JSON.stringify(listing, null, 2) : formatBackups(listing));
  });

backups
  .command('prune')
  .description('drop the backups the policy no longer keeps (a completed run prunes this way by itself)')
  .option('--keep <n>', 'completed runs always kept (default BACKUP_KEEP_RUNS)', positive)
  .option('--dry-run', 'only say what would be dropped', false)
  .action(async (o: { keep?: number; dryRun: boolean }) => {
    const config = loadConfig(process.env, 'client');
    const { withDatabase, formatPrune } = await import('./backups');
    const { pruneBackups } = await import('../store/retention');
    const keep = o.keep ?? config.database.backupKeepRuns;
    const result = await withDatabase(config, (pool) => pruneBackups(pool, keep, { dryRun: o.dryRun }));
    console.log(formatPrune(result, o.dryRun));
  });

program
  .command('certificate <runId>')
  .description("write the run's reconciliation certificate (HTML, optionally PDF); it holds patient data")
  .requiredOption('--out <file.html>', 'where to write the page (readable by its owner only)')
  .option('--pdf <file.pdf>', 'also print it to PDF with headless Chromium (CHROMIUM_PATH, default chromium)')
  .option('--sample <n>', 'patients shown field by field, chosen by the run id', int, 5)
  .action(async (runId: string, o: { out: string; pdf?: string; sample: number }) => {
    const config = loadConfig(process.env, 'client');
    if (!config.filemaker.url) throw new Error('FM_URL: required, the sample is read again from FileMaker');
    // Log lines go to stderr and never carry the page's content.
    const logger = createLogger({ level: config.log.level, name: 'certificate', destination: pino.destination(2) });
    const { fileMakerClientFor } = await import('../activities/deps');
    const { withDatabase } = await import('./backups');
    const { buildCertificate, printCertificate, renderCertificate, writeCertificate } = await import('../certificate');
    const fm = fileMakerClientFor(config, logger);
    try {
      const certificate = await withDatabase(config, (pool) =>
        buildCertificate({ pool, fm, runId, sample: o.sample, timeZone: config.clinicTimeZone }),
      );
      await writeCertificate(o.out, renderCertificate(certificate));
      if (o.pdf) await printCertificate(o.out, o.pdf, process.env.CHROMIUM_PATH || 'chromium');
      console.log(`certificate of ${runId}: ${o.out}${o.pdf ? ` and ${o.pdf}` : ''}`);
      console.log(`ledger digest ${certificate.facts.digest} (${certificate.facts.ledgerRows} rows)`);
    } finally {
      await fm.close();
    }
  });

program
  .command('signoff <runId>')
  .description('record who accepted a completed run, and when (its backup may then be pruned once superseded)')
  .requiredOption('--by <name>', 'the name of the person who accepts the run')
  .action(async (runId: string, o: { by: string }) => {
    const config = loadConfig(process.env, 'client');
    const { withDatabase } = await import('./backups');
    const { signOff } = await import('../store/retention');
    const signed = await withDatabase(config, (pool) => signOff(pool, runId, o.by));
    console.log(`${runId} signed off by ${signed.signedOffBy} at ${signed.at}`);
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
      host: config.codecServerHost,
      corsOrigins: codecCorsOriginsFor(config),
      logger,
    });
    console.log(`codec server: ${server.url}`);
    await new Promise<void>((res) => process.once('SIGINT', () => void server.close().then(res)));
  });

if (require.main === module) {
  program.parseAsync(process.argv).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
