/** Client-side operations shared by the CLI, `npm start` and tests. */
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { loadConfig, type Config } from '../config';
import { dataConverterFor, payloadCodecFromConfig } from '../codec';
import { temporalConnectionOptions } from '../tls';
import { formatDelta, sumDeltas } from '../domain/delta';
import type { RunProgress } from '../workflows/messages';
import type { TableDeltas } from '../workflows/progress';
import { reimportInputSchema, describeIssues, type ReimportInput } from '../workflows/options';
import type { ReimportResult } from '../workflows/reimport';
import {
  CUTOVER_ID_PATTERN,
  cutoverInputSchema,
  finalImportId,
  type CutoverInput,
  type CutoverResult,
} from '../workflows/cutover-input';
import { cutoverSearchAttributes, runStartMetadata } from '../workflows/search-attributes';

export async function connectClient(config: Config = loadConfig(process.env, 'client')) {
  const connection = await Connection.connect(temporalConnectionOptions(config));
  const dataConverter = config.payloadKeys ? dataConverterFor(payloadCodecFromConfig(config)) : undefined;
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  return { client, config, close: () => connection.close() };
}

/** Runs `fn` with a connected client (see connectClient) and closes the connection after it, also when it throws. */
export async function withClient<T>(fn: (connected: { client: Client; config: Config }) => Promise<T>): Promise<T> {
  const { client, config, close } = await connectClient();
  try {
    return await fn({ client, config });
  } finally {
    await close();
  }
}

/**
 * A run's input as the workflow receives it (unset options dropped), validated here too so that a typo fails before
 * anything is started or scheduled.
 */
export function reimportInput(raw: ReimportInput): ReimportInput {
  const input = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  const parsed = reimportInputSchema.safeParse(input);
  if (!parsed.success) throw new Error(`invalid options: ${describeIssues(parsed.error)}`);
  return input;
}

/** Starts a reimport after validating its input (see `reimportInput`). */
export async function startReimport(
  client: Client,
  config: Config,
  opts: { runId?: string; input: ReimportInput },
): Promise<WorkflowHandle> {
  const input = reimportInput(opts.input);
  const runId = opts.runId ?? `reimport-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  return client.workflow.start('reimport', {
    taskQueue: config.temporal.taskQueue,
    workflowId: runId,
    args: [input],
    // One reimport of an id at a time; a finished id cannot be reused by accident.
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    // Status, phase and dry-run as search attributes for the Web UI's filters, and a one-line summary; a server that
    // lacks the attributes refuses the start and names them (README, "In the Temporal Web UI").
    ...runStartMetadata(reimportInputSchema.parse(input)),
  });
}

/**
 * Starts a cut-over after validating its input and id (the id names its final run, `<id>-import`). Default id:
 * `cutover-<timestamp>`.
 */
export async function startCutover(
  client: Client,
  config: Config,
  opts: { cutoverId?: string; input: CutoverInput },
): Promise<WorkflowHandle> {
  const parsed = cutoverInputSchema.safeParse(opts.input);
  if (!parsed.success) throw new Error(`invalid options: ${describeIssues(parsed.error)}`);
  const cutoverId = opts.cutoverId ?? `cutover-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  if (!CUTOVER_ID_PATTERN.test(cutoverId)) throw new Error('--id: letters, digits and ._:- only');
  return client.workflow.start('cutover', {
    taskQueue: config.temporal.taskQueue,
    workflowId: cutoverId,
    args: [opts.input],
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    staticSummary: `Cut-over: freeze check, final incremental import ${finalImportId(cutoverId)}, certificate`,
    // The final import then starts with a run's search attributes, as a run the client starts does.
    typedSearchAttributes: cutoverSearchAttributes(),
  });
}

export function formatCutover(r: CutoverResult, bucket?: string): string {
  const lines = [`cut-over ${r.cutoverId}: ${r.status.replace('_', ' ')}`, `final run ${r.runId}`];
  lines.push(`source frozen (read three times, ${r.freezeIntervalSeconds} s apart at first)   records`);
  for (const t of r.tables) lines.push(`  ${t.table.padEnd(30)}${String(t.records).padStart(9)}`);
  lines.push(`certificate: s3://${bucket ?? '…'}/${r.certificateKey}`);
  if (r.reportKey) lines.push(`report: s3://${bucket ?? '…'}/${r.reportKey}`);
  lines.push(`ledger digest ${r.ledgerDigest}`);
  return lines.join('\n');
}

export async function readReport(client: Client, runId: string): Promise<ReimportResult> {
  return (await client.workflow.getHandle(runId).result()) as ReimportResult;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export function formatResult(r: ReimportResult): string {
  const lines = [`run ${r.runId}: ${r.status}${r.dryRun ? ' (dry-run)' : ''}`];
  lines.push('phase          status       imported  unlinked  skipped   failed   downloaded');
  for (const p of r.phases) {
    lines.push(
      `${p.phase.padEnd(14)} ${p.status.padEnd(12)} ${String(p.imported).padStart(8)}  ${String(p.unlinked).padStart(8)}  ${String(p.skipped).padStart(7)}  ${String(p.failed).padStart(7)}   ${mb(p.bytesDownloaded)}`,
    );
  }
  const deltas = r.phases.flatMap((p) => Object.entries(p.delta ?? {}));
  if (deltas.some(([, d]) => d?.previousRunId)) {
    lines.push('since the last completed run   added  changed  unchanged  vanished');
    for (const [table, d] of deltas) {
      if (!d?.previousRunId) continue;
      const cols = [d.added, d.changed, d.unchanged, d.vanished].map((n, i) => String(n).padStart([7, 9, 11, 10][i]!));
      lines.push(`  ${table.padEnd(28)}${cols.join('')}`);
    }
  }
  for (const v of r.vanished ?? []) {
    if (v.vanished > 0)
      lines.push(`gone from FileMaker since ${v.previousRunId}: ${v.table} ${v.vanished} of ${v.previous}`);
  }
  lines.push(`downloaded from FileMaker: ${mb(r.bytesDownloaded)}`);
  if (r.transferLeftAfterBytes !== undefined)
    lines.push(`transfer quota left after a real run: ${mb(r.transferLeftAfterBytes)}`);
  if (r.reportKey) lines.push(`full report: s3://…/${r.reportKey}`);
  return lines.join('\n');
}

/** `since the last run +12 ~3 -1` over a phase's tables, or '' on a first run. */
function sinceLastRun(delta: TableDeltas): string {
  const sum = sumDeltas(Object.values(delta));
  return sum.previousRunId ? `since the last run ${formatDelta(sum)}` : '';
}

export function formatProgress(p: RunProgress): string {
  const lines = [`run ${p.runId}: ${p.status}${p.currentPhase ? ` — ${p.currentPhase}` : ''}`];
  for (const ph of p.phases) {
    const pct = ph.total > 0 ? Math.floor((100 * ph.done) / ph.total) : ph.status === 'completed' ? 100 : 0;
    const extra = [
      ph.cooldownUntil ? `cooling down until ${ph.cooldownUntil}` : '',
      ph.etaSeconds !== undefined ? `ETA ${ph.etaSeconds}s` : '',
      ph.byState.failed ? `${ph.byState.failed} failed` : '',
      ph.delta ? sinceLastRun(ph.delta) : '',
    ]
      .filter(Boolean)
      .join(', ');
    lines.push(`  ${ph.phase.padEnd(13)} ${ph.status.padEnd(10)} ${ph.done}/${ph.total} (${pct}%) ${extra}`);
  }
  return lines.join('\n');
}

/** Link to a workflow in the Temporal Web UI (ids are encoded: phase children are `<run>/<phase>`). */
export function webUiLink(uiUrl: string, namespace: string, workflowId: string): string {
  return `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
