/**
 * Operator controls of a running reimport, on the real dev server, PostgreSQL, MinIO and the FileMaker simulator
 * (tiny): pause/resume (nothing is read from FileMaker or written while paused), dry-run (nothing written anywhere,
 * counts per phase and table), the report object in S3, and a concurrency change while running.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import type { RunningSimulator } from '../../sim/server';
import type { RunningWorker } from '../../src/worker';
import { KEY_PREFIX } from '../../src/domain/keys';
import { SOURCE_TABLES, type SourceTableName } from '../../src/domain/tables';
import { CORE_TARGET_OF } from '../helpers/targets';
import type { RunProgress } from '../../src/workflows/messages';
import type { Settings } from '../../src/workflows/options';
import type { PhaseResult } from '../../src/workflows/phase';
import type { ReimportResult } from '../../src/workflows/reimport';
import { prepareRun, startTestWorker, type TestRun } from '../helpers/run';

const CORE = ['patients', 'appointments', 'notes', 'referrers'] as const;
const CORE_TABLES = (Object.keys(SOURCE_TABLES) as SourceTableName[]).filter((t) =>
  (CORE as readonly string[]).includes(SOURCE_TABLES[t].phase),
);
/** Every table a core run writes, plus the kept contact details. */
const WRITTEN_TABLES = [
  'clinics',
  'patients',
  'contact_details',
  'appointments',
  'notes',
  'sms_messages',
  'companies',
  'referrers',
  'patient_referrers',
  'referrer_companies',
];
const TERMINAL = ['imported', 'unlinked', 'skipped', 'failed'];
type StateCounts = { imported: number; unlinked: number; skipped: number; failed: number };

describe('operator controls of a running reimport', () => {
  let sim: RunningSimulator;
  let worker: RunningWorker;
  let client: Client;
  let pool: pg.Pool;
  let s3: S3Client;
  let bucket: string;
  let taskQueue: string;
  let run: TestRun;

  before(async () => {
    run = await prepareRun({ preset: 'tiny', seed: 11 }, 'controls');
    ({ sim, client, pool, taskQueue, bucket, s3 } = run);
    worker = await startTestWorker(run);
  });

  after(async () => {
    await worker?.shutdown();
    await run?.close();
  });

  const start = (id: string, input: Record<string, unknown> = {}): Promise<WorkflowHandle> =>
    client.workflow.start('reimport', {
      taskQueue,
      workflowId: id,
      args: [{ phases: ['backup', 'delete', ...CORE, 'validation'], settings: { chunkSize: 7 }, ...input }],
    });

  const progressOf = (h: WorkflowHandle) => h.query<RunProgress>('progress');
  const doneOf = (p: RunProgress) => p.phases.reduce((s, x) => s + x.done, 0);

  /** Polls `fn` until it returns a value other than undefined, or fails naming `what`. */
  const waitFor = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };

  const truthIds = async (table: string): Promise<Set<string>> => {
    const res = await fetch(`${sim.adminUrl}/truth/tables/${table}`);
    const body = (await res.json()) as { records: { fieldData: Record<string, unknown> }[] };
    return new Set(body.records.map((r) => String(r.fieldData.id).trim().toLowerCase()).filter(Boolean));
  };

  const fingerprints = async () => {
    const out: Record<string, string> = {};
    for (const t of WRITTEN_TABLES) {
      const r = await pool.query<{ n: number; fp: string }>(
        `select count(*)::int as n, md5(coalesce(string_agg(md5(to_jsonb(t)::text), '' order by filemaker_id), ''))
           as fp from ${t} t`,
      );
      out[t] = `${r.rows[0]!.n}:${r.rows[0]!.fp}`;
    }
    for (const t of ['reimport_runs', 'source_manifest', 'import_ledger']) {
      const r = await pool.query<{ n: number }>(`select count(*)::int as n from ${t}`);
      out[t] = String(r.rows[0]!.n);
    }
    return out;
  };

  const bucketKeys = async (prefix?: string): Promise<string[]> => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  };

  /** Ledger states of a run per phase, from PostgreSQL. */
  const ledgerCounts = async (runId: string): Promise<Record<string, StateCounts>> => {
    const r = await pool.query<{ source_table: SourceTableName; state: keyof StateCounts; n: number }>(
      'select source_table, state, count(*)::int as n from import_ledger where run_id = $1 group by 1, 2',
      [runId],
    );
    const out: Record<string, StateCounts> = {};
    for (const row of r.rows) {
      const phase = SOURCE_TABLES[row.source_table].phase;
      out[phase] ??= { imported: 0, unlinked: 0, skipped: 0, failed: 0 };
      out[phase][row.state] += row.n;
    }
    return out;
  };

  /** Manifest ids of the run that have no terminal ledger state, and manifest sizes per table. */
  const manifestCheck = async (runId: string) => {
    const open = await pool.query<{ source_table: string; filemaker_id: string }>(
      `select m.source_table, m.filemaker_id from source_manifest m
         left join import_ledger l using (run_id, source_table, filemaker_id)
        where m.run_id = $1 and (l.state is null or l.state <> all($2::text[]))`,
      [runId, TERMINAL],
    );
    const sizes = await pool.query<{ source_table: string; n: number }>(
      'select source_table, count(*)::int as n from source_manifest where run_id = $1 group by 1',
      [runId],
    );
    return { open: open.rows, sizes: Object.fromEntries(sizes.rows.map((r) => [r.source_table, r.n])) };
  };

  /** Ids the ledger says were imported (or unlinked) by the run whose row is absent, or was not written by the run. */
  const notLanded = async (runId: string): Promise<string[]> => {
    const out: string[] = [];
    for (const [table, target] of Object.entries(CORE_TARGET_OF)) {
      const r = await pool.query<{ filemaker_id: string }>(
        `select l.filemaker_id from import_ledger l
          where l.run_id = $1 and l.source_table = $2 and l.state in ('imported', 'unlinked')
            and not exists (select 1 from ${target} t where t.filemaker_id = l.filemaker_id and t.import_run_id = $1)`,
        [runId, table],
      );
      out.push(...r.rows.map((x) => `${table}:${x.filemaker_id}`));
    }
    return out;
  };

  test('pause stops FileMaker reads and writes mid-phase; resume completes with every manifest id terminal', async () => {
    // Slow answers so that the run is still mid-phase when the pause arrives.
    sim.setFaults({ latencyMs: 200 });
    const runId = `pause-${randomUUID()}`;
    // Small chunks, one at a time: appointments take many seconds, and progress reaches the parent every 2 s.
    const handle = await start(runId, { settings: { chunkSize: 2, concurrency: 1 } });
    try {
      const phase = await waitFor('an import phase with progress', async () => {
        const p = await progressOf(handle);
        const running = p.phases.find((x) => x.phase === 'appointments' && x.status === 'running' && x.done > 0);
        return running?.phase;
      });
      await handle.signal('pause');
      const paused = await waitFor('the paused status', async () => {
        const p = await progressOf(handle);
        return p.status === 'paused' ? p : undefined;
      });
      assert.equal(paused.currentPhase, phase, 'the pause landed mid-phase');

      // The chunks already in flight finish; after that FileMaker must see no request at all.
      let last = sim.stats().requests.total;
      await waitFor(
        'FileMaker requests to stop after the in-flight chunks',
        async () => {
          await sleep(1500);
          const now = sim.stats().requests.total;
          const stable = now === last;
          last = now;
          return stable ? true : undefined;
        },
        20_000,
      );
      const before = {
        requests: sim.stats().requests.total,
        done: doneOf(await progressOf(handle)),
        ledger: (
          await pool.query<{ n: number }>('select count(*)::int as n from import_ledger where run_id = $1', [runId])
        ).rows[0]!.n,
      };
      await sleep(4000);
      const p = await progressOf(handle);
      const afterPause = {
        requests: sim.stats().requests.total,
        done: doneOf(p),
        ledger: (
          await pool.query<{ n: number }>('select count(*)::int as n from import_ledger where run_id = $1', [runId])
        ).rows[0]!.n,
      };
      assert.equal(p.status, 'paused', 'still paused after 4 s');
      assert.deepEqual(afterPause, before, 'no FileMaker request, progress or ledger write while paused');
      const phaseP = p.phases.find((x) => x.phase === phase)!;
      assert.ok(phaseP.done < phaseP.total, `paused before the end of ${phase} (${phaseP.done}/${phaseP.total})`);

      await handle.signal('resume');
      const result = (await handle.result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'the resumed run completes');
      const final = await progressOf(handle);
      assert.equal(final.status, 'completed', 'progress says completed');
      assert.ok(doneOf(final) > before.done, 'progress advanced after resume');
      assert.ok(sim.stats().requests.total > before.requests, 'FileMaker was read again after resume');

      const { open, sizes } = await manifestCheck(runId);
      assert.deepEqual(open, [], 'every manifest id has a terminal ledger state');
      for (const table of CORE_TABLES) {
        assert.equal(sizes[table], (await truthIds(table)).size, `${table}: manifest holds every source id`);
      }
      assert.deepEqual(await notLanded(runId), [], 'every imported or unlinked id has its row');
    } finally {
      sim.setFaults({ latencyMs: 0 });
      // A run left behind by a failed assertion would keep writing while the next test looks: end it.
      const { status } = await handle.describe();
      if (status.name === 'RUNNING') await handle.terminate('test cleanup').catch(() => undefined);
    }
  });

  test('a dry-run writes nothing to PostgreSQL or S3 and reports counts per phase and table', async () => {
    // The previous test left imported rows: a dry-run must leave them exactly as they are.
    const dbBefore = await fingerprints();
    assert.ok(Number(dbBefore.reimport_runs) > 0, 'the database holds an earlier run to protect');
    const keysBefore = await bucketKeys();
    const runId = `dry-${randomUUID()}`;
    const handle = await start(runId, { dryRun: true });
    const result = (await handle.result()) as ReimportResult;

    assert.equal(result.status, 'dry_run', 'the run says dry_run');
    assert.equal(result.dryRun, true, 'the result is flagged dry-run');
    assert.deepEqual(await fingerprints(), dbBefore, 'no PostgreSQL table changed');
    assert.deepEqual(await bucketKeys(), keysBefore, 'no S3 object was created or deleted');
    assert.deepEqual(await bucketKeys(`${KEY_PREFIX}/`), [], 'nothing under the import prefix');
    assert.equal(result.reportKey, undefined, 'no report object for a dry-run');

    for (const phase of CORE) {
      const summary = result.phases.find((p) => p.phase === phase);
      assert.ok(summary, `${phase} is in the dry-run result`);
      const child = (await client.workflow.getHandle(`${runId}/${phase}`).result()) as PhaseResult;
      const tables = CORE_TABLES.filter((t) => SOURCE_TABLES[t].phase === phase);
      let truthTotal = 0;
      for (const table of tables) {
        const t = child.tables.find((x) => x.table === table);
        assert.ok(t, `${phase}: the dry-run counts ${table}`);
        const truth = (await truthIds(table)).size;
        truthTotal += truth;
        assert.equal(t.manifest, truth, `${table}: dry-run manifest = source ids`);
        assert.equal(t.imported + t.unlinked + t.skipped + t.failed, truth, `${table}: every id gets a state`);
      }
      assert.equal(
        summary.imported + summary.unlinked + summary.skipped + summary.failed,
        truthTotal,
        `${phase}: per-phase counts cover every source id`,
      );
    }
    for (const phase of ['backup', 'delete', 'validation']) {
      assert.equal(result.phases.find((p) => p.phase === phase)?.status, 'skipped', `${phase} is skipped`);
    }
  });

  test('a dry-run predicts the states a real run then gives, per phase', { timeout: 300_000 }, async () => {
    const dry = (await (await start(`dry-${randomUUID()}`, { dryRun: true })).result()) as ReimportResult;
    const runId = `real-${randomUUID()}`;
    await (await start(runId)).result();
    const real = await ledgerCounts(runId);
    const predicted = Object.fromEntries(
      CORE.map((phase) => {
        const d = dry.phases.find((p) => p.phase === phase)!;
        return [phase, { imported: d.imported, unlinked: d.unlinked, skipped: d.skipped, failed: d.failed }];
      }),
    );
    assert.deepEqual(predicted, real, 'dry-run prediction = what the real run did, for every phase');
  });

  test('the report lands in S3 at reports/{runId}.json and matches the workflow result', async () => {
    const runId = `report-${randomUUID()}`;
    const result = (await (await start(runId)).result()) as ReimportResult;
    assert.equal(result.status, 'completed', 'the run completes');
    assert.equal(result.reportKey, `reports/${runId}.json`, 'the result names the report key');
    const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `reports/${runId}.json` }));
    const stored = JSON.parse(await obj.Body!.transformToString()) as {
      runId: string;
      status: string;
      report: { runId: string; phases: (StateCounts & { phase: string; status: string })[] };
    };
    assert.equal(stored.runId, runId, 'the report names its run');
    assert.equal(stored.status, 'completed', 'the report says completed');
    const pick = (p: StateCounts & { phase: string; status: string }) => ({
      phase: p.phase,
      status: p.status,
      imported: p.imported,
      unlinked: p.unlinked,
      skipped: p.skipped,
      failed: p.failed,
    });
    assert.deepEqual(
      stored.report.phases.map(pick),
      result.phases.map(pick),
      'the stored report has the counts of the result',
    );
    // And both agree with what the ledger holds.
    const ledger = await ledgerCounts(runId);
    for (const phase of CORE) {
      const r = result.phases.find((p) => p.phase === phase)!;
      assert.deepEqual(
        { imported: r.imported, unlinked: r.unlinked, skipped: r.skipped, failed: r.failed },
        ledger[phase],
        `${phase}: reported counts = ledger states`,
      );
    }
    const row = await pool.query<{ summary: { phases: (StateCounts & { phase: string; status: string })[] } }>(
      'select summary from reimport_runs where run_id = $1',
      [runId],
    );
    assert.deepEqual(row.rows[0]?.summary.phases.map(pick), result.phases.map(pick), 'reimport_runs has the same');
  });

  test('setSettings lowers concurrency while running: at most one FileMaker request in flight afterwards', async () => {
    sim.setFaults({ latencyMs: 80 });
    const runId = `settings-${randomUUID()}`;
    const handle = await start(runId, { settings: { chunkSize: 3, concurrency: 4 } });
    const samples: { at: number; inFlight: number }[] = [];
    const sampler = setInterval(() => samples.push({ at: Date.now(), inFlight: sim.stats().inFlight }), 5);
    try {
      await waitFor('more than one FileMaker request in flight at concurrency 4', async () =>
        samples.some((s) => s.inFlight > 1) ? true : undefined,
      );
      const settings = await handle.executeUpdate<Settings, [Partial<Settings>]>('setSettings', {
        args: [{ concurrency: 1 }],
      });
      assert.equal(settings.concurrency, 1, 'the update returns the settings in force');
      assert.equal((await progressOf(handle)).settings.concurrency, 1, 'progress shows the new concurrency');
      // Chunks started before the update finish at the old width.
      await sleep(1500);
      const from = Date.now();
      const result = (await handle.result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'the run completes');
      const after = samples.filter((s) => s.at >= from);
      assert.ok(after.length > 50, `sampled the rest of the run (${after.length} samples)`);
      const max = Math.max(...after.map((s) => s.inFlight));
      assert.ok(max <= 1, `at most one request in flight after setSettings({concurrency: 1}), saw ${max}`);
      const { open } = await manifestCheck(runId);
      assert.deepEqual(open, [], 'every manifest id has a terminal ledger state');
    } finally {
      clearInterval(sampler);
      sim.setFaults({ latencyMs: 0 });
    }
  });
});
