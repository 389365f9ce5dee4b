/**
 * The worker's own metrics against a recording meter: FileMaker counters exported as differences (never twice),
 * cooldowns counted from the `notify` activity's first attempt, and a ledger state a table has left reads 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MetricMeter, MetricTags } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { FileMakerStats } from '../../src/filemaker';
import { createLogger } from '../../src/logger';
import { startWorkerMetrics } from '../../src/metrics';
import type { Pool } from '../../src/store/db';

/** Every value a metric received: counters summed, gauges last set, per name and labels. */
function recordingMeter() {
  const values = new Map<string, number>();
  const key = (name: string, tags: MetricTags = {}) =>
    `${name}${JSON.stringify(Object.fromEntries(Object.entries(tags).sort()))}`;
  const metric = (name: string, apply: (old: number, v: number) => number) => ({
    name,
    add: (v: number, tags?: MetricTags) => values.set(key(name, tags), apply(values.get(key(name, tags)) ?? 0, v)),
    set: (v: number, tags?: MetricTags) => values.set(key(name, tags), v),
    record: () => undefined,
    withTags: () => {
      throw new Error('not used');
    },
  });
  const meter = {
    createCounter: (name: string) => metric(name, (a, b) => a + b),
    createGauge: (name: string) => metric(name, (_a, b) => b),
    createHistogram: (name: string) => metric(name, (_a, b) => b),
    withTags: () => meter,
  } as unknown as MetricMeter;
  return { meter, get: (name: string, tags?: MetricTags) => values.get(key(name, tags)) };
}

const stats = (over: Partial<FileMakerStats>): FileMakerStats => ({
  requests: {},
  totalRequests: 0,
  bytesReceived: { metadata: 0, containers: 0, total: 0 },
  retries: 0,
  logins: 0,
  relogins: 0,
  overloads: 0,
  overloadsAbsorbed: 0,
  badResponses: 0,
  repairedJson: 0,
  staleContainerUrls: 0,
  suspectContainers: 0,
  inFlight: 0,
  peakInFlight: 0,
  maxConcurrency: 6,
  ...over,
});

test('FileMaker counters are exported as differences, cooldowns once per episode, left ledger states as 0', async () => {
  const { meter, get } = recordingMeter();
  let current = stats({ requests: { records: 5 }, overloads: 1, inFlight: 3 });
  let ledger = [{ source_table: 'API_Docs', state: 'pending', n: 4 }];
  const pool = {
    query: (sql: string) => Promise.resolve({ rows: sql.includes('transfer_log') ? [{ b: '1000' }] : ledger }),
  } as unknown as Pool;
  const metrics = startWorkerMetrics({
    meter,
    fm: { stats: () => current },
    pool,
    logger: createLogger({ level: 'silent' }),
    transferBudgetBytes: 5000,
    transferUsedBeforeBytes: 500,
    sampleMs: 3_600_000,
  });
  await metrics.sample();
  current = stats({
    requests: { records: 7, container: 2 },
    bytesReceived: { metadata: 10, containers: 300, total: 310 },
    overloads: 1,
  });
  ledger = [{ source_table: 'API_Docs', state: 'imported', n: 4 }];
  await metrics.sample();

  assert.equal(get('fm_reimport_filemaker_requests_total', { kind: 'records' }), 7);
  assert.equal(get('fm_reimport_filemaker_requests_total', { kind: 'container' }), 2);
  assert.equal(get('fm_reimport_filemaker_bytes_received_total', { kind: 'containers' }), 300);
  assert.equal(get('fm_reimport_filemaker_overloads_total'), 1);
  assert.equal(get('fm_reimport_filemaker_requests_in_flight'), 0);
  assert.equal(get('fm_reimport_transfer_used_bytes'), 1500);
  assert.equal(get('fm_reimport_transfer_budget_left_bytes'), 3500);
  assert.equal(get('fm_reimport_ledger_entries', { source_table: 'API_Docs', state: 'imported' }), 4);
  assert.equal(get('fm_reimport_ledger_entries', { source_table: 'API_Docs', state: 'pending' }), 0);

  const cooldown = {
    type: 'cooldown_long',
    runId: 'r',
    workflowId: 'r/documents',
    phase: 'documents',
    cooldownSeconds: 8,
  };
  const run = async (activityType: string, attempt: number, event: unknown) => {
    const ctx = { info: { activityType, attempt } } as unknown as Parameters<ActivityInterceptorsFactory>[0];
    const execute = metrics.activityInterceptor(ctx).inbound?.execute;
    assert.ok(execute);
    await execute({ args: [event], headers: {} }, () => Promise.resolve(undefined));
  };
  await run('notify', 1, cooldown);
  await run('notify', 2, cooldown); // a retried delivery is the same cooldown
  await run('notify', 1, { ...cooldown, type: 'phase_completed' });
  await run('fetchChunk', 1, cooldown);
  assert.equal(get('fm_reimport_cooldowns_total', { phase: 'documents' }), 1);
  assert.equal(get('fm_reimport_cooldown_seconds_total', { phase: 'documents' }), 8);
  await metrics.stop();
});
