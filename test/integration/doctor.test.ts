// `doctor` against the FileMaker simulator (and, for the transfer budget, a migrated database on the stack's
// PostgreSQL): the rows it prints are checked against the simulator's ground truth, and the truth, the simulator's
// records and the database are compared before and after to show that it wrote nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'undici';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { createLogger } from '../../src/logger';
import {
  createFileMakerClient,
  createTokenCache,
  type ClarisIdTokenSource,
  type FileMakerClient,
} from '../../src/filemaker';
import { SOURCE_TABLE_NAMES } from '../../src/domain/tables';
import { migrate } from '../../src/store/migrate';
import { createPool } from '../../src/store/db';
import { PROBE_TABLE, probeContainerPath } from '../../src/activities/container-probe';
import { formatDoctor, runDoctor, type DoctorReport } from '../../src/client/doctor';
import { readOnlyPool } from '../../src/store/db';
import { createTestDatabase } from '../helpers/stack';

const FILEMAKER = { containerApi: 'odata', transferBudgetBytes: 144e9, transferUsedBytes: 2e9 } as const;

async function truth<T>(sim: RunningSimulator, path: string): Promise<T> {
  const res = await request(`${sim.adminUrl}${path}`);
  assert.equal(res.statusCode, 200, path);
  return (await res.body.json()) as T;
}

/** Every record of every source table with its modId: a PATCH anywhere changes it. */
async function allRecords(sim: RunningSimulator): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const t of SOURCE_TABLE_NAMES) out.push(await truth(sim, `/truth/tables/${encodeURIComponent(t)}`));
  return out;
}

function clientFor(
  url: string,
  sim: RunningSimulator,
  password = sim.password,
  clarisId?: ClarisIdTokenSource,
): FileMakerClient {
  return createFileMakerClient({
    url,
    database: sim.database,
    username: sim.username,
    password,
    clarisId,
    maxConcurrency: 4,
    logger: createLogger({ level: 'silent' }),
    requestTimeoutMs: 10_000,
  });
}

async function doctor(
  sim: RunningSimulator,
  opts: { url?: string; password?: string; pool?: ReturnType<typeof readOnlyPool> } = {},
): Promise<{ report: DoctorReport; fm: FileMakerClient }> {
  const fm = clientFor(opts.url ?? sim.url, sim, opts.password);
  try {
    return { report: await runDoctor({ fm, pool: opts.pool, filemaker: FILEMAKER, auth: 'Basic' }), fm };
  } finally {
    await fm.close();
  }
}

const row = (r: DoctorReport, check: string) => {
  const c = r.checks.find((x) => x.check === check);
  assert.ok(c, `a row for ${check}`);
  return c;
};

/** A proxy in front of the simulator that answers the requests `answer` takes (returns true for) itself. */
async function proxy(
  sim: RunningSimulator,
  answer: (path: string, res: ServerResponse) => boolean,
): Promise<{ url: string; server: Server }> {
  const target = new URL(sim.url);
  const server = createServer((req, res) => {
    if (answer(decodeURIComponent((req.url ?? '').split('?')[0]!), res)) {
      req.resume();
      return;
    }
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

void test('doctor on a clean simulator: every FileMaker check ok, the figures are the source truth, nothing written', async () => {
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean' });
  try {
    const before = await allRecords(sim);
    const { report, fm } = await doctor(sim);
    const table = formatDoctor(report);
    for (const c of report.checks) assert.ok(table.includes(c.check) && table.includes(c.detail), c.check);

    assert.equal(report.ok, true, table);
    for (const c of report.checks.filter((x) => x.check !== 'transfer budget')) assert.equal(c.result, 'ok', table);
    // Without PostgreSQL the budget says so and counts only what the configuration says was spent before.
    assert.equal(row(report, 'transfer budget').result, 'warn');
    assert.match(row(report, 'transfer budget').detail, /DATABASE_URL unset: only FM_TRANSFER_USED \(2\.0 GB\)/);
    assert.deepEqual(report.choices.slice(0, 3), [
      'OData names: quoted where Claris requires',
      'manifest: ROWID key paging',
      'containers: OData $value',
    ]);

    // The paged manifest saw every record of its table, the OData row every record of every table.
    const paging = /^(\w+): (\d+) rows in pages of \d+, \$count (\d+)$/.exec(row(report, 'manifest paging').detail);
    assert.ok(paging, row(report, 'manifest paging').detail);
    const paged = await truth<{ records: unknown[] }>(sim, `/truth/tables/${paging[1]}`);
    assert.equal(Number(paging[2]), paged.records.length);
    const total = (before as { records: unknown[] }[]).reduce((a, t) => a + t.records.length, 0);
    assert.match(
      row(report, 'tables (OData)').detail,
      new RegExp(`12 tables, ${total.toLocaleString('en-US')} records`),
    );

    // The sample is a real container of the source, its size and SHA-256 as the simulator holds them.
    const sample = /^(\w+)\.(\w+): ([\d,]+) bytes \S+, SHA-256 ([0-9a-f]{12})… equal/.exec(
      row(report, 'sample container').detail,
    );
    assert.ok(sample, row(report, 'sample container').detail);
    const containers = await truth<{ containers: { field: string; size?: number; sha256?: string }[] }>(
      sim,
      `/truth/containers?table=${sample[1]}`,
    );
    assert.ok(
      containers.containers.some(
        (c) =>
          c.field === sample[2] && c.size === Number(sample[3]!.replace(/,/g, '')) && c.sha256?.startsWith(sample[4]!),
      ),
      'the sample matches a container of the source',
    );

    // Nothing written: no PATCH sent, every record (and its modId) as before.
    assert.equal(fm.stats().requests.patch, undefined);
    assert.deepEqual(await allRecords(sim), before);
  } finally {
    await sim.close();
  }
});

/** A migrated database of the stack's PostgreSQL, made once for the tests that need one. */
let database: Promise<string> | undefined;
const migratedDatabase = () =>
  (database ??= createTestDatabase().then(async ({ url }) => {
    await migrate(url);
    return url;
  }));

// The simulator's own `$value` variants, as the real servers answered; and the clean one.
for (const variant of [undefined, 'filename', 'empty', 'base64'] as const) {
  void test(`doctor names the container path and reason the run's pre-flight takes with odataValueVariant=${variant ?? 'none'}`, async () => {
    const sim = await startSimulator({
      preset: 'tiny',
      profile: 'clean',
      ...(variant ? { faults: { odataValueVariant: variant } } : {}),
    });
    const pool = createPool({ url: await migratedDatabase(), caFile: undefined, poolMax: 2 });
    const runId = `preflight-${variant ?? 'none'}`;
    const fm = clientFor(sim.url, sim);
    try {
      const { report } = await doctor(sim);
      const c = row(report, 'sample container');
      assert.equal(report.ok, true, formatDoctor(report));

      // The pre-flight, as a run calls it, against the same host: its reads reserved and settled in the transfer log.
      await pool.query(`insert into reimport_runs (run_id, workflow_id, status) values ($1, $1, 'running')`, [runId]);
      const logger = createLogger({ level: 'silent' });
      const preflight = await probeContainerPath({ fm, pool, logger, config: { filemaker: FILEMAKER } }, runId, [
        'API_Docs',
        'API_Images',
      ]);
      const logged = await pool.query<{ filemaker_id: string; bytes: string; settled: boolean }>(
        `select filemaker_id, bytes::text, settled from transfer_log where run_id = $1 and source_table = $2`,
        [runId, PROBE_TABLE],
      );
      assert.ok(logged.rows.length > 0 && logged.rows.every((r) => r.settled), 'the reads reserved and settled');
      assert.ok(
        logged.rows.some((r) => r.filemaker_id === 'probe@dataapi' && Number(r.bytes) > 0),
        'the sample read through the Data API is logged',
      );

      if (variant === undefined) {
        assert.deepEqual(preflight, { path: 'odata', reason: 'PROBED' });
        assert.equal(c.result, 'ok', c.detail);
        assert.equal(c.choice, 'containers: OData $value');
        return;
      }
      assert.equal(preflight.path, 'dataapi');
      assert.equal(c.choice, 'containers: Data API', c.detail);
      assert.equal(c.result, 'warn');
      // The reason code the run's report will carry, and what the run does about it.
      assert.equal(/\$value unusable \((\w+)\)/.exec(c.detail)?.[1], preflight.reason, c.detail);
      assert.match(c.detail, /a run's pre-flight finds the same and reads every container through the Data API/);
      assert.match(c.detail, /FM_CONTAINER_API=dataapi skips that probe/);
      assert.doesNotMatch(c.detail, /set FM_CONTAINER_API/);
    } finally {
      await fm.close();
      await pool.end();
      await sim.close();
    }
  });
}

void test('doctor fails when a layout lacks a field the mappers read', async () => {
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean' });
  const layout = `/fmi/data/vLatest/databases/${sim.database}/layouts/API_Messages`;
  // The layout's metadata without MessageBody, as on a file where the field was renamed.
  const p = await proxy(sim, (path, res) => {
    if (path !== layout) return false;
    void (async () => {
      const up = await request(`${sim.url}${encodeURI(path)}`, { headers: { authorization: `Bearer ${token}` } });
      const env = (await up.body.json()) as { response: { fieldMetaData: { name: string }[] } };
      env.response.fieldMetaData = env.response.fieldMetaData.filter((f) => f.name !== 'MessageBody');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(env));
    })();
    return true;
  });
  let token = '';
  try {
    const fm = clientFor(p.url, sim);
    try {
      // The proxy reads the layout with a session of its own.
      const login = await request(`${sim.url}/fmi/data/vLatest/databases/${sim.database}/sessions`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${sim.username}:${sim.password}`).toString('base64')}`,
          'content-type': 'application/json',
        },
        body: '{}',
      });
      await login.body.dump();
      token = String(login.headers['x-fm-data-access-token']);
      const report = await runDoctor({ fm, pool: undefined, filemaker: FILEMAKER, auth: 'Basic' });
      const c = row(report, 'layouts and fields (Data API)');
      assert.equal(c.result, 'fail');
      assert.equal(c.detail, 'API_Messages lacks MessageBody');
      assert.equal(report.ok, false);
    } finally {
      await fm.close();
    }
  } finally {
    await new Promise((resolve) => p.server.close(resolve));
    await sim.close();
  }
});

void test('doctor logs in with Claris ID on a FileMaker Cloud host and reads it as on a Basic one', async () => {
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean', auth: 'fmid' });
  try {
    const issue = async () => {
      const res = await request(`${sim.adminUrl}/fmid/tokens`, { method: 'POST' });
      return ((await res.body.json()) as { token: string }).token;
    };
    const fm = clientFor(sim.url, sim, '', createTokenCache(issue));
    try {
      const report = await runDoctor({ fm, pool: undefined, filemaker: FILEMAKER, auth: 'FMID' });
      assert.equal(row(report, 'login (FMID)').result, 'ok');
      for (const c of report.checks.filter((x) => x.check !== 'transfer budget'))
        assert.equal(c.result, 'ok', `${c.check}: ${c.detail}`);
      assert.ok(report.choices.includes('containers: OData $value'));
    } finally {
      await fm.close();
    }
    // Without a token the same host refuses the login.
    const { report } = await doctor(sim);
    assert.equal(row(report, 'login (Basic)').result, 'fail');
  } finally {
    await sim.close();
  }
});

void test('doctor stops at a refused login and fails', async () => {
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean' });
  try {
    const { report } = await doctor(sim, { password: 'not-the-password' });
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.map((c) => [c.check, c.result]),
      [
        ['server', 'ok'],
        ['login (Basic)', 'fail'],
      ],
    );
    assert.match(row(report, 'login (Basic)').detail, /FILEMAKER_AUTH_FAILED/);
    assert.equal(sim.stats().sessions.created, 0);
  } finally {
    await sim.close();
  }
});

/** `npm run client -- doctor` as an operator runs it, against the simulator, without PostgreSQL. */
function cli(sim: RunningSimulator, args: string[], password = sim.password) {
  return new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/client/cli.ts', 'doctor', ...args], {
      cwd: join(__dirname, '..', '..'),
      env: {
        ...process.env,
        FM_URL: sim.url,
        FM_DATABASE: sim.database,
        FM_USERNAME: sim.username,
        FM_PASSWORD: password,
        DATABASE_URL: '',
        LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

void test('npm run client -- doctor prints the table and exits 0; --json with a refused login exits 1', async () => {
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean' });
  try {
    const ok = await cli(sim, []);
    assert.equal(ok.code, 0, ok.stdout);
    const lines = ok.stdout.split('\n');
    assert.match(lines[0]!, /^check +result +choice +detail$/);
    for (const check of ['server', 'login (Basic)', 'tables (OData)', 'manifest paging', 'sample container'])
      assert.ok(
        lines.some((l) => l.startsWith(`${check}  `) && / ok {2}/.test(l)),
        `${check} ok in:\n${ok.stdout}`,
      );
    assert.ok(lines.some((l) => l.startsWith('sample container') && l.includes('containers: OData $value')));
    assert.match(ok.stdout, /ready: a run can start/);

    const refused = await cli(sim, ['--json'], 'not-the-password');
    assert.equal(refused.code, 1);
    const report = JSON.parse(refused.stdout) as DoctorReport;
    assert.equal(report.ok, false);
    assert.equal(row(report, 'login (Basic)').result, 'fail');
  } finally {
    await sim.close();
  }
});

void test('doctor reads the transfer log through a read-only connection and writes no row', async () => {
  const { url } = await createTestDatabase();
  await migrate(url);
  const pool = readOnlyPool({ url, caFile: undefined });
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean' });
  try {
    // 5 GB spent this year by an earlier run, written as the files phases write it (outside the doctor's pool).
    const { default: pg } = await import('pg');
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    await writer.query(
      `insert into reimport_runs (run_id, workflow_id, status, finished_at) values ('r1', 'r1', 'completed', now())`,
    );
    await writer.query(
      `insert into transfer_log (run_id, source_table, filemaker_id, field, reserved_bytes, bytes, settled)
       values ('r1', 'API_Docs', 'x', 'Doc', 5000000000, 5000000000, true)`,
    );
    const counts = async () =>
      (
        await writer.query<{ t: string; n: string }>(
          `select 'transfer_log' as t, count(*)::text as n from transfer_log
           union all select 'import_ledger', count(*)::text from import_ledger
           union all select 'reimport_runs', count(*)::text from reimport_runs
           union all select 'source_manifest', count(*)::text from source_manifest`,
        )
      ).rows;
    const rowsBefore = await counts();

    const { report } = await doctor(sim, { pool });
    assert.equal(report.ok, true, formatDoctor(report));
    const budget = row(report, 'transfer budget');
    assert.equal(budget.result, 'ok', budget.detail);
    // 144 GB − (5 GB logged + 2 GB FM_TRANSFER_USED).
    assert.match(budget.detail, /spent 5\.0 GB by fm-reimport this year \+ 2\.0 GB FM_TRANSFER_USED; left 137\.0 GB/);
    assert.equal(budget.choice, 'budget left: 137.0 GB');
    for (const c of report.checks) assert.equal(c.result, 'ok', `${c.check}: ${c.detail}`);

    assert.deepEqual(await counts(), rowsBefore);
    // The doctor's connection refuses writes outright.
    await assert.rejects(pool.query(`delete from transfer_log`), (err: { code?: string }) => err.code === '25006');
    assert.equal((await writer.query('select count(*)::int as n from transfer_log')).rows[0].n, 1);
    await writer.end();
  } finally {
    await pool.end();
    await sim.close();
  }
});
