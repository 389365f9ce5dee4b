/**
 * The reimport survives what production throws at it, on the real dev server, PostgreSQL, MinIO and the FileMaker
 * simulator (tiny): a worker killed with SIGKILL mid-phase and replaced completes with nothing lost or duplicated,
 * and the `hostile` FileMaker profile costs time, not records (same rows as a clean-profile run).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { migrate } from '../../src/store/migrate';
import { startWorker, type RunningWorker } from '../../src/worker';
import { SOURCE_TABLES, type SourceTableName } from '../../src/domain/tables';
import { CORE_TARGET_OF } from '../helpers/targets';
import type { RunProgress } from '../../src/workflows/messages';
import type { ReimportResult } from '../../src/workflows/reimport';
import { createTestBucket, createTestDatabase, stackEnv } from '../helpers/stack';
import { spawnWorkerProcess } from '../helpers/run';

const CORE = ['patients', 'appointments', 'notes', 'referrers'] as const;
const PHASES = ['backup', 'delete', ...CORE, 'validation'];
const TARGET_OF = CORE_TARGET_OF as Readonly<Record<string, string>>;
const CORE_TABLES = (Object.keys(SOURCE_TABLES) as SourceTableName[]).filter((t) =>
  (CORE as readonly string[]).includes(SOURCE_TABLES[t].phase),
);

/** Polls `fn` until it returns a value other than undefined, or fails naming `what`. */
async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function truthIds(sim: RunningSimulator, table: string): Promise<Set<string>> {
  const res = await fetch(`${sim.adminUrl}/truth/tables/${table}`);
  const body = (await res.json()) as { records: { fieldData: Record<string, unknown> }[] };
  return new Set(body.records.map((r) => String(r.fieldData.id).trim().toLowerCase()).filter(Boolean));
}

/**
 * Per core table, what landed for a run: lost ids (a source id without a terminal ledger state, or imported without
 * its row), and the counts a duplicate or a loss would break.
 */
async function landed(pool: pg.Pool, sim: RunningSimulator, runId: string) {
  const out: Record<
    string,
    { truth: number; rows: number; distinct: number; kept: number; dropped: number; lost: string[] }
  > = {};
  for (const table of CORE_TABLES) {
    const target = TARGET_OF[table]!;
    const truth = await truthIds(sim, table);
    const ledger = await pool.query<{ filemaker_id: string; state: string }>(
      'select filemaker_id, state from import_ledger where run_id = $1 and source_table = $2',
      [runId, table],
    );
    const state = new Map(ledger.rows.map((r) => [r.filemaker_id, r.state]));
    const rows = await pool.query<{ filemaker_id: string; import_run_id: string | null }>(
      `select filemaker_id, import_run_id from ${target}`,
    );
    const present = new Map(rows.rows.map((r) => [r.filemaker_id, r.import_run_id]));
    const lost: string[] = [];
    for (const id of truth) {
      const s = state.get(id);
      if (!s || !['imported', 'unlinked', 'skipped', 'failed'].includes(s)) lost.push(`${id}: ledger ${s ?? 'none'}`);
      else if ((s === 'imported' || s === 'unlinked') && present.get(id) !== runId) lost.push(`${id}: no row`);
    }
    const dropped = [...state.values()].filter((s) => s === 'skipped' || s === 'failed').length;
    out[table] = {
      truth: truth.size,
      rows: rows.rows.length,
      distinct: present.size,
      kept: truth.size - dropped,
      dropped,
      lost,
    };
  }
  return out;
}

function assertNothingLostOrDuplicated(result: Awaited<ReturnType<typeof landed>>, label: string) {
  for (const [table, r] of Object.entries(result)) {
    assert.deepEqual(r.lost, [], `${label} ${table}: every source id terminal, imported ones have their row`);
    assert.equal(r.rows, r.distinct, `${label} ${table}: no duplicate filemaker_id`);
    assert.equal(r.rows, r.kept, `${label} ${table}: rows = source ids − skipped − failed`);
    assert.ok(r.truth > 0, `${label} ${table}: the source has records`);
  }
}

describe('reimport resilience', () => {
  let env: Record<string, string>;
  let connection: Connection;
  let client: Client;

  before(async () => {
    env = await stackEnv();
    connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
    client = new Client({ connection });
  });

  after(async () => {
    await connection?.close();
  });

  const progressOf = (h: WorkflowHandle) => h.query<RunProgress>('progress');

  describe('a worker killed with SIGKILL mid-phase', () => {
    let sim: RunningSimulator;
    let pool: pg.Pool;
    let workerEnv: NodeJS.ProcessEnv;
    let taskQueue: string;
    const children: ChildProcess[] = [];

    before(async () => {
      const db = await createTestDatabase();
      const bucket = await createTestBucket();
      await migrate(db.url);
      sim = await startSimulator({ preset: 'tiny', seed: 5 });
      taskQueue = `sigkill-${randomUUID()}`;
      pool = new pg.Pool({ connectionString: db.url });
      workerEnv = {
        ...process.env,
        ...env,
        DATABASE_URL: db.url,
        S3_BUCKET: bucket,
        FM_URL: sim.url,
        FM_DATABASE: sim.database,
        FM_USERNAME: sim.username,
        FM_PASSWORD: sim.password,
        TEMPORAL_TASK_QUEUE: taskQueue,
        LOG_LEVEL: 'warn',
        LOG_FORMAT: 'json',
      };
    });

    after(async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await pool?.end();
      await sim?.close();
    });

    const spawnWorker = () => spawnWorkerProcess(workerEnv, children);

    test('is replaced by a new worker and the run completes with nothing lost or duplicated', async () => {
      const first = await spawnWorker();
      // Slow answers keep the run inside appointments/notes long enough to kill it there.
      sim.setFaults({ latencyMs: 100 });
      const runId = `sigkill-${randomUUID()}`;
      const handle = await client.workflow.start('reimport', {
        taskQueue,
        workflowId: runId,
        args: [{ phases: PHASES, settings: { chunkSize: 3, concurrency: 3 } }],
      });
      const killedIn = await waitFor('appointments or notes mid-phase with a FileMaker request in flight', async () => {
        const p = await progressOf(handle);
        const ph = p.phases.find(
          (x) => (x.phase === 'appointments' || x.phase === 'notes') && x.status === 'running' && x.done > 0,
        );
        return ph && ph.done < ph.total && sim.stats().inFlight > 0 ? ph.phase : undefined;
      });
      first.kill('SIGKILL');
      await new Promise<void>((resolve) => (first.exitCode !== null ? resolve() : first.once('exit', () => resolve())));
      assert.equal(first.signalCode, 'SIGKILL', 'the first worker died of SIGKILL');
      const atKill = (
        await pool.query<{ n: number }>(`select count(*)::int as n from import_ledger where run_id = $1`, [runId])
      ).rows[0]!.n;
      sim.setFaults({ latencyMs: 0 });

      const second = await spawnWorker();
      const startedAgain = Date.now();
      const result = (await handle.result()) as ReimportResult;
      const recoveryMs = Date.now() - startedAgain;
      second.kill('SIGTERM');
      assert.equal(result.status, 'completed', `the run completes after the kill in ${killedIn}`);
      const atEnd = (
        await pool.query<{ n: number }>(`select count(*)::int as n from import_ledger where run_id = $1`, [runId])
      ).rows[0]!.n;
      assert.ok(atEnd > atKill, `the replacement worker did the rest (${atKill} → ${atEnd} ledger rows)`);
      assertNothingLostOrDuplicated(await landed(pool, sim, runId), 'after SIGKILL');
      const runRow = await pool.query<{ status: string }>('select status from reimport_runs where run_id = $1', [
        runId,
      ]);
      assert.equal(runRow.rows[0]?.status, 'completed', 'the run row says completed');
      // Activities in flight on the dead worker are retried only after their heartbeat timeout.
      console.log(`sigkill: killed in ${killedIn}; completed ${Math.round(recoveryMs / 1000)} s after the new worker`);
    });
  });

  describe('the hostile FileMaker profile', () => {
    let pool: pg.Pool;
    const sims: RunningSimulator[] = [];
    const workers: RunningWorker[] = [];
    let dbUrl: string;
    let bucket: string;

    before(async () => {
      const db = await createTestDatabase();
      dbUrl = db.url;
      bucket = await createTestBucket();
      await migrate(db.url);
      pool = new pg.Pool({ connectionString: db.url });
    });

    after(async () => {
      for (const w of workers) await w.shutdown();
      await pool?.end();
      for (const s of sims) await s.close();
    });

    /** A simulator with `profile` and a worker on its own task queue pointed at it; runs one core reimport. */
    const runAgainst = async (profile: 'clean' | 'hostile') => {
      // A tiny run is over before the profile's 2-minute server restart: restart every 3 s so it lands mid-run.
      const sim = await startSimulator({
        preset: 'tiny',
        seed: 21,
        profile,
        faults: profile === 'hostile' ? { restartEveryMs: 3000 } : {},
      });
      sims.push(sim);
      const taskQueue = `${profile}-${randomUUID()}`;
      const config = loadConfig({
        ...env,
        DATABASE_URL: dbUrl,
        S3_BUCKET: bucket,
        FM_URL: sim.url,
        FM_DATABASE: sim.database,
        FM_USERNAME: sim.username,
        FM_PASSWORD: sim.password,
        TEMPORAL_TASK_QUEUE: taskQueue,
        LOG_LEVEL: 'warn',
      });
      const worker = await startWorker(config, createLogger({ level: 'warn', format: 'json' }));
      workers.push(worker);
      const runId = `${profile}-${randomUUID()}`;
      const startedAt = Date.now();
      const result = (await client.workflow.execute('reimport', {
        taskQueue,
        workflowId: runId,
        args: [
          {
            phases: PHASES,
            settings: { chunkSize: 7, cooldownBaseSeconds: 0.5, cooldownMaxSeconds: 4 },
          },
        ],
      })) as ReimportResult;
      return { sim, runId, result, ms: Date.now() - startedAt };
    };

    const contents = async () => {
      const out: Record<string, { rows: number; fp: string }> = {};
      for (const t of Object.values(TARGET_OF)) {
        // contact_details rows get a random id on every insert (not a deterministic key like the target tables).
        const drop = t === 'contact_details' ? " - 'id'" : '';
        const r = await pool.query<{ rows: number; fp: string }>(
          `select count(*)::int as rows,
                  md5(coalesce(string_agg(md5((to_jsonb(t) - 'created_at' - 'updated_at' - 'import_run_id'${drop})::text),
                    '' order by filemaker_id), '')) as fp
             from ${t} t`,
        );
        out[t] = r.rows[0]!;
      }
      return out;
    };

    const ledgerStates = async (runId: string) => {
      const r = await pool.query<{ source_table: string; state: string; reason_code: string | null; n: number }>(
        `select source_table, state, reason_code, count(*)::int as n from import_ledger where run_id = $1
          group by 1, 2, 3 order by 1, 2, 3`,
        [runId],
      );
      return r.rows;
    };

    test('costs time, not records: the same rows as a clean-profile run, no duplicates', async () => {
      const clean = await runAgainst('clean');
      assert.equal(clean.result.status, 'completed', 'the clean run completes');
      const cleanContents = await contents();
      const cleanStates = await ledgerStates(clean.runId);
      assertNothingLostOrDuplicated(await landed(pool, clean.sim, clean.runId), 'clean');

      const hostile = await runAgainst('hostile');
      assert.equal(hostile.result.status, 'completed', 'the hostile run completes');
      const faults = hostile.sim.stats().faults;
      const injected = Object.entries(faults)
        .filter(([k]) => k !== 'latency')
        .reduce((s, [, n]) => s + n, 0);
      assert.ok(injected > 0, `the hostile simulator injected faults: ${JSON.stringify(faults)}`);

      assertNothingLostOrDuplicated(await landed(pool, hostile.sim, hostile.runId), 'hostile');
      assert.deepEqual(await contents(), cleanContents, 'hostile run: table contents identical to the clean run');
      assert.deepEqual(await ledgerStates(hostile.runId), cleanStates, 'hostile run: same ledger states and reasons');
      console.log(
        `hostile: clean ${Math.round(clean.ms / 1000)} s, hostile ${Math.round(hostile.ms / 1000)} s, faults ${JSON.stringify(faults)}`,
      );
    });
  });
});
