/**
 * The worker's Prometheus endpoint (METRICS_ADDRESS) after a small reimport on the real dev server, PostgreSQL, MinIO
 * and the simulator: one scrape holds Temporal's runtime metrics and fm-reimport's own, and ours equal what the
 * FileMaker client counted, what the run's report says of its cooldowns, what the transfer log holds and what the
 * ledger says. No label carries a record id.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { createDeps } from '../../src/activities/deps';
import type { ActivityDeps } from '../../src/activities/deps';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startWorker, type RunningWorker } from '../../src/worker';
import type { RunProgress } from '../../src/workflows/messages';
import type { ReimportResult } from '../../src/workflows/reimport';
import { prepareRun, type TestRun } from '../helpers/run';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (`name{a="b"} 1`); comments skipped. */
function parseExposition(text: string): Sample[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(l);
      assert.ok(m, `an exposition line: ${l}`);
      const labels = Object.fromEntries(
        [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
      );
      return { name: m[1]!, labels: labels as Record<string, string>, value: Number(m[3]) };
    });
}

const sum = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((res) => server.close(() => res()));
  return port;
}

describe('worker metrics', () => {
  let prepared: TestRun;
  let deps: ActivityDeps;
  let worker: RunningWorker;
  let address: string;

  before(async () => {
    prepared = await prepareRun({ preset: 'tiny', seed: 21, sizeScale: 0.1 }, 'metrics');
    address = `127.0.0.1:${await freePort()}`;
    // An overload answer reaches the engine at once (no short repeats): one forced 503 is one durable cooldown.
    const config = loadConfig({
      ...prepared.env,
      METRICS_ADDRESS: address,
      METRICS_SAMPLE_SECONDS: '1',
      FM_OVERLOAD_RETRIES: '0',
    });
    const logger = createLogger({ level: 'error', format: 'json' });
    deps = await createDeps(config, logger);
    worker = await startWorker(config, logger, { deps });
  });

  after(async () => {
    await worker?.shutdown();
    await deps?.close();
    await prepared?.close();
  });

  test('one scrape holds Temporal runtime metrics and the run’s FileMaker, quota and ledger figures', async () => {
    const runId = `run-${randomUUID()}`;
    const handle = await prepared.client.workflow.start('reimport', {
      taskQueue: prepared.taskQueue,
      workflowId: runId,
      args: [{ phases: ['backup', 'patients', 'documents'], settings: { fileBatchSize: 6 } }],
    });
    // Once the pre-flight is over (a phase is current), FileMaker answers the next request 503: a phase cools down.
    for (;;) {
      const progress = await handle.query<{ currentPhase?: string }>('progress');
      if (progress.currentPhase) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await fetch(`${prepared.sim.adminUrl}/faults`, {
      method: 'POST',
      body: JSON.stringify({ failNextRequests: { status: 503, count: 1 } }),
    });
    const result = (await handle.result()) as ReimportResult;
    assert.equal(result.status, 'completed');
    // The run is over: nothing moves the counters any more; wait for a sample after the last request.
    await new Promise((r) => setTimeout(r, 2500));
    const stats = deps.fm.stats();
    const res = await fetch(`http://${address}/metrics`);
    assert.equal(res.status, 200);
    const samples = parseExposition(await res.text());

    // Temporal Core's own series: the reimport and its child completed, activities ran, requests reached the server.
    assert.ok(sum(samples, 'temporal_workflow_completed') >= 2, 'temporal_workflow_completed counts the run');
    assert.ok(sum(samples, 'temporal_activity_execution_latency_count') > 0, 'activity latencies are recorded');
    assert.ok(sum(samples, 'temporal_request') > 0, 'client requests to the server are counted');

    // Ours equal what the FileMaker client counted, kind by kind.
    assert.ok(stats.totalRequests > 0);
    assert.equal(sum(samples, 'fm_reimport_filemaker_requests_total'), stats.totalRequests);
    for (const [kind, n] of Object.entries(stats.requests))
      assert.equal(sum(samples, 'fm_reimport_filemaker_requests_total', { kind }), n, `requests of kind ${kind}`);
    assert.ok(stats.bytesReceived.containers > 0, 'the documents phase downloaded files');
    for (const kind of ['metadata', 'containers'] as const)
      assert.equal(
        sum(samples, 'fm_reimport_filemaker_bytes_received_total', { kind }),
        stats.bytesReceived[kind],
        `${kind} bytes`,
      );
    assert.equal(stats.overloads, 1, 'the forced 503 reached the engine');
    assert.equal(sum(samples, 'fm_reimport_filemaker_overloads_total'), 1);
    // The cooldowns, phase by phase, as the run's progress counts them.
    const progress = await handle.query<RunProgress>('progress');
    assert.equal(progress.phases.filter((p) => p.cooldowns > 0).length, 1, 'one phase cooled down');
    for (const p of progress.phases)
      assert.equal(
        sum(samples, 'fm_reimport_cooldowns_total', { phase: p.phase }),
        p.cooldowns,
        `${p.phase} cooldowns`,
      );
    assert.ok(sum(samples, 'fm_reimport_cooldown_seconds_total') >= 1, 'cooldown seconds are counted');
    assert.equal(sum(samples, 'fm_reimport_filemaker_requests_in_flight'), 0, 'nothing in flight after the run');
    assert.equal(sum(samples, 'fm_reimport_filemaker_max_concurrency'), stats.maxConcurrency);

    // The quota as the transfer log counts it, and the budget left of FM_TRANSFER_BUDGET (144 GB by default).
    const logged = await prepared.pool.query<{ b: string }>(
      `select coalesce(sum(case when settled then bytes else greatest(bytes, reserved_bytes) end), 0)::text as b
         from transfer_log where at >= date_trunc('year', now())`,
    );
    const used = Number(logged.rows[0]!.b);
    assert.ok(used > 0, 'the run spent quota');
    assert.equal(sum(samples, 'fm_reimport_transfer_used_bytes'), used);
    assert.equal(sum(samples, 'fm_reimport_transfer_budget_left_bytes'), 144e9 - used);

    // The run's ledger by table and state, entry for entry.
    const ledger = await prepared.pool.query<{ source_table: string; state: string; n: number }>(
      'select source_table, state, count(*)::int as n from import_ledger where run_id = $1 group by 1, 2',
      [runId],
    );
    assert.ok(ledger.rows.some((r) => r.source_table === 'API_Docs' && r.state === 'imported'));
    for (const r of ledger.rows)
      assert.equal(
        sum(samples, 'fm_reimport_ledger_entries', { source_table: r.source_table, state: r.state }),
        r.n,
        `${r.source_table} ${r.state}`,
      );
    assert.equal(
      sum(samples, 'fm_reimport_ledger_entries'),
      ledger.rows.reduce((a, r) => a + r.n, 0),
    );

    // Labels name kinds, tables, phases and states only: no run id, no record id.
    const ids = new Set(
      (await prepared.pool.query<{ id: string }>('select filemaker_id as id from import_ledger')).rows.map((r) => r.id),
    );
    for (const s of samples.filter((x) => x.name.startsWith('fm_reimport_')))
      for (const v of Object.values(s.labels)) {
        assert.ok(!ids.has(v.toLowerCase()), `${s.name} carries a record id`);
        assert.ok(!v.includes(runId), `${s.name} carries the run id`);
      }
  });
});
