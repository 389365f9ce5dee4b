/**
 * The worker's own metrics. Temporal Core serves Prometheus at METRICS_ADDRESS (`/metrics`) with its runtime
 * metrics (`temporal_*`); ours are created on the same Runtime's metric meter, so one scrape gets both.
 *
 * - FileMaker client counters (requests by kind, overloads, bytes received, retries, logins, bad answers) and its
 *   requests in flight: sampled from `FileMakerClient.stats()`, which counts per process; counters get the
 *   difference since the last sample.
 * - Durable cooldowns: counted when the `notify` activity carries a phase's `cooldown_long` event (every cooldown
 *   schedules one; the notifier filters short ones later), on its first attempt only.
 * - The transfer quota used this year and what is left of the worker's FM_TRANSFER_BUDGET, and the newest run's
 *   ledger entries by table and state: read from PostgreSQL on each sample, so every worker reports the same values
 *   (aggregate them with max, not sum).
 *
 * Labels are table, phase, request kind and ledger state names only: never a record id or a field value.
 */
import type { MetricCounter, MetricGauge, MetricMeter, NumericMetricValueType } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { FileMakerClient, FileMakerStats } from './filemaker';
import type { Logger } from './logger';
import type { Pool } from './store/db';
import { newestRunLedgerCounts } from './store/ledger-counts';
import { transferUsedThisYear } from './store/transfer';

export interface WorkerMetricsOptions {
  meter: MetricMeter;
  fm: Pick<FileMakerClient, 'stats'>;
  pool: Pool;
  logger: Logger;
  /** The worker's FM_TRANSFER_BUDGET and FM_TRANSFER_USED (bytes spent before fm-reimport kept a log). */
  transferBudgetBytes: number;
  transferUsedBeforeBytes: number;
  sampleMs: number;
}

export interface WorkerMetrics {
  /** Counts cooldowns as the worker runs the `notify` activity; give it to both workers' `interceptors.activity`. */
  activityInterceptor: ActivityInterceptorsFactory;
  /** Reads every source once now (the timer does so every `sampleMs`). */
  sample(): Promise<void>;
  /** Stops the timer after a last sample, so the final counts of a run are exported. */
  stop(): Promise<void>;
}

type CounterName = 'overloads' | 'overloadsAbsorbed' | 'retries' | 'logins' | 'relogins' | 'badResponses';

const COUNTERS: Record<CounterName, [string, string]> = {
  overloads: ['fm_reimport_filemaker_overloads_total', 'FileMaker overloads reported to the engine (after repeats)'],
  overloadsAbsorbed: [
    'fm_reimport_filemaker_overloads_absorbed_total',
    'FileMaker overload answers absorbed by a short repeat',
  ],
  retries: ['fm_reimport_filemaker_retries_total', 'FileMaker requests repeated by the client'],
  logins: ['fm_reimport_filemaker_logins_total', 'FileMaker Data API logins'],
  relogins: ['fm_reimport_filemaker_relogins_total', 'FileMaker logins that replaced an expired or killed token'],
  badResponses: ['fm_reimport_filemaker_bad_responses_total', 'FileMaker answers that were not the expected JSON'],
};

type GaugeName = 'inFlight' | 'maxConcurrency' | 'transferUsed' | 'transferLeft' | 'ledger';

const GAUGES: Record<GaugeName, [name: string, type: NumericMetricValueType, unit: string, help: string]> = {
  inFlight: ['fm_reimport_filemaker_requests_in_flight', 'int', '', 'FileMaker requests now'],
  maxConcurrency: ['fm_reimport_filemaker_max_concurrency', 'int', '', 'FileMaker requests this worker allows at once'],
  transferUsed: [
    'fm_reimport_transfer_used_bytes',
    'float',
    'bytes',
    'FileMaker transfer quota used this calendar year (all runs, plus FM_TRANSFER_USED)',
  ],
  transferLeft: [
    'fm_reimport_transfer_budget_left_bytes',
    'float',
    'bytes',
    "What is left of the worker's FM_TRANSFER_BUDGET this year (a run's own budget may differ)",
  ],
  ledger: [
    'fm_reimport_ledger_entries',
    'int',
    '',
    "The newest run's ledger entries (records; files in the files phases) by source table and state",
  ],
};

export function startWorkerMetrics(opts: WorkerMetricsOptions): WorkerMetrics {
  const { meter, logger } = opts;
  const requests = meter.createCounter('fm_reimport_filemaker_requests_total', '', 'FileMaker requests sent, by kind');
  const bytes = meter.createCounter(
    'fm_reimport_filemaker_bytes_received_total',
    'bytes',
    'Body bytes received from FileMaker (what the transfer quota counts), by kind: metadata or containers',
  );
  const counters = Object.fromEntries(
    Object.entries(COUNTERS).map(([k, [name, help]]) => [k, meter.createCounter(name, '', help)]),
  ) as Record<CounterName, MetricCounter>;
  const { inFlight, maxConcurrency, transferUsed, transferLeft, ledger } = Object.fromEntries(
    Object.entries(GAUGES).map(([k, [name, type, unit, help]]) => [k, meter.createGauge(name, type, unit, help)]),
  ) as Record<GaugeName, MetricGauge>;
  const cooldowns = meter.createCounter('fm_reimport_cooldowns_total', '', 'Durable cooldowns after overloads');
  const cooldownSeconds = meter.createCounter(
    'fm_reimport_cooldown_seconds_total',
    'seconds',
    'Seconds of durable cooldown started',
  );
  let last: FileMakerStats | undefined;
  const ledgerLabels = new Map<string, { source_table: string; state: string }>();
  let databaseFailing = false;

  const sampleFileMaker = () => {
    const now = opts.fm.stats();
    for (const [kind, n] of Object.entries(now.requests)) {
      const before = last?.requests[kind as keyof FileMakerStats['requests']] ?? 0;
      if (n > before) requests.add(n - before, { kind });
    }
    for (const kind of ['metadata', 'containers'] as const) {
      const d = now.bytesReceived[kind] - (last?.bytesReceived[kind] ?? 0);
      if (d > 0) bytes.add(d, { kind });
    }
    for (const k of Object.keys(COUNTERS) as CounterName[]) {
      const d = now[k] - (last?.[k] ?? 0);
      if (d > 0) counters[k].add(d);
    }
    inFlight.set(now.inFlight);
    maxConcurrency.set(now.maxConcurrency);
    last = now;
  };

  const sampleDatabase = async () => {
    const used = (await transferUsedThisYear(opts.pool)) + opts.transferUsedBeforeBytes;
    transferUsed.set(used);
    transferLeft.set(opts.transferBudgetBytes - used);
    const counts = await newestRunLedgerCounts(opts.pool);
    // A state a table has left (pending → imported) must read 0, not its last count.
    const seen = new Set<string>();
    for (const c of counts) {
      const key = `${c.sourceTable}\u0000${c.state}`;
      seen.add(key);
      const labels = { source_table: c.sourceTable, state: c.state };
      ledgerLabels.set(key, labels);
      ledger.set(c.count, labels);
    }
    for (const [key, labels] of ledgerLabels) if (!seen.has(key)) ledger.set(0, labels);
  };

  let running: Promise<void> | undefined;
  const sample = () =>
    (running ??= (async () => {
      try {
        sampleFileMaker();
        await sampleDatabase();
        if (databaseFailing) logger.info('metrics: the database answers again');
        databaseFailing = false;
      } catch (err) {
        // A sample that fails is skipped, logged once per outage; it never disturbs the activities.
        if (!databaseFailing) logger.warn({ err: (err as Error).message }, 'metrics: a sample failed');
        databaseFailing = true;
      } finally {
        running = undefined;
      }
    })());

  const timer = setInterval(() => void sample(), opts.sampleMs);
  timer.unref();
  void sample();

  const countCooldown = (event: unknown) => {
    const e = event as { type?: unknown; phase?: unknown; cooldownSeconds?: unknown } | null | undefined;
    if (e?.type !== 'cooldown_long') return;
    const phase = typeof e.phase === 'string' && /^[a-z_]+$/.test(e.phase) ? e.phase : 'unknown';
    cooldowns.add(1, { phase });
    if (typeof e.cooldownSeconds === 'number' && e.cooldownSeconds > 0)
      cooldownSeconds.add(Math.round(e.cooldownSeconds), { phase });
  };

  return {
    activityInterceptor: (ctx) => ({
      inbound: {
        execute: (input, next) => {
          if (ctx.info.activityType === 'notify' && ctx.info.attempt === 1) countCooldown(input.args[0]);
          return next(input);
        },
      },
    }),
    sample,
    async stop() {
      clearInterval(timer);
      await sample();
    },
  };
}

/** Temporal Core's Prometheus exporter at `address` (host:port); our metrics join it through the Runtime's meter. */
export function prometheusTelemetry(address: string) {
  return { prometheus: { bindAddress: address } };
}
