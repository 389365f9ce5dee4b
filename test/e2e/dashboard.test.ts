import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { chromium, type Page } from 'playwright-core';
import { loadConfig } from '../../src/config';
import { serveDashboard } from '../../src/client/dashboard';
import { connectClient, startReimport } from '../../src/client/operations';
import type { RunProgress } from '../../src/workflows/messages';
import { CHROMIUM_ARGS, ensureChromium } from '../../scripts/ensure-chromium';
import pg from 'pg';
import type { WorkflowHandle } from '@temporalio/client';
import { startSimulator } from '../../sim/server';
import { generateKeySpec } from '../../src/codec';
import { createLogger } from '../../src/logger';
import { migrate } from '../../src/store/migrate';
import { startWorker } from '../../src/worker';
import { createTestBucket, createTestDatabase, stackEnv } from '../helpers/stack';

const UI_URL = 'http://127.0.0.1:8233';
const ARTIFACTS = join(__dirname, '..', '..', 'artifacts');

const field = (page: Page, phase: string, name: string) =>
  page.locator(`li[data-phase="${phase}"] [data-field="${name}"]`);
const count = async (page: Page, phase: string, name: string) =>
  Number((await field(page, phase, name).textContent())!.replace(/,/g, ''));

async function poll<T>(read: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`nothing changed within ${timeoutMs} ms`);
    await delay(100);
  }
}

/** A raw request, so the Host header can be set (fetch does not allow it). */
function rawGet(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test(
  'the dashboard shows a live run in Chromium: progress advances, cooldown and quota pause, Web UI links',
  { timeout: 90_000 },
  async () => {
    const env = await stackEnv();
    const config = loadConfig({ TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS, TEMPORAL_UI_URL: UI_URL }, 'client');
    const testEnv = await TestWorkflowEnvironment.createFromExistingServer({ address: env.TEMPORAL_ADDRESS });
    const taskQueue = `dashboard-${randomUUID()}`;
    const worker = await Worker.create({
      connection: testEnv.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../fixtures/progress-workflow'),
    });
    const { client, close: closeClient } = await connectClient(config);
    const runId = `reimport-dashboard-${randomUUID().slice(0, 8)}`;
    const browser = await chromium.launch({ executablePath: ensureChromium(), args: [...CHROMIUM_ARGS] });
    const signoff = async () => ({ by: 'Practice Manager', at: '2026-12-01T09:00:00.000Z' });
    const dashboard = await serveDashboard({ client, config, runId, port: 0, signoff });
    try {
      // The server side: read-only, strict CSP, loopback names only.
      const home = await fetch(dashboard.url);
      assert.equal(home.status, 200);
      const csp = home.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal((await fetch(new URL('api/progress', dashboard.url), { method: 'POST' })).status, 405);
      assert.equal(await rawGet(dashboard.url, 'attacker.example:80'), 421);

      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      mkdirSync(ARTIFACTS, { recursive: true });

      await worker.runUntil(async () => {
        const handle = await testEnv.client.workflow.start('reimport', { taskQueue, workflowId: runId, args: [{}] });
        try {
          await page.goto(dashboard.url);

          // Watch for the cooldown from the start: it lasts about 2 s in the middle of the patients phase.
          const cooldownSeen = page
            .waitForSelector('li[data-phase="patients"] [data-field="cooldown"]:has-text("cooling down until")', {
              timeout: 20_000,
            })
            .then(() => page.screenshot({ path: join(ARTIFACTS, 'dashboard-cooldown.png') }));

          // Two reads of the same phase's done-count, a poll or more apart: the page updates by itself.
          await page.waitForSelector('li[data-phase="patients"][data-status="running"]', { timeout: 20_000 });
          // The certificate is written by the operator's command (it holds patient data); the sign-off is shown.
          assert.match((await page.textContent('#run-signoff')) ?? '', /^Practice Manager, /);
          assert.equal(
            await page.textContent('#run-certificate'),
            `npm run client -- certificate ${runId} --out ${runId}.html --pdf ${runId}.pdf`,
          );
          const first = await count(page, 'patients', 'done');
          const second = await poll(async () => {
            const n = await count(page, 'patients', 'done');
            return n !== first ? n : undefined;
          }, 10_000);
          assert.ok(second > first, `done-count of patients should advance: ${first} then ${second}`);
          assert.equal(await count(page, 'patients', 'total'), 240);
          await cooldownSeen;

          // Documents pause for the transfer budget; the run shows it too.
          await page.waitForSelector(
            'li[data-phase="documents"] [data-field="pause"]:text-is("paused for transfer budget")',
            { timeout: 30_000 },
          );
          await page.waitForSelector('#run-status:text-is("paused for quota")', { timeout: 5_000 });

          // Finished phases show what the workflow reports: counts and failures by reason code.
          const progress = await handle.query<RunProgress>('progress');
          const patients = progress.phases.find((p) => p.phase === 'patients')!;
          assert.equal(patients.status, 'completed');
          assert.equal(await count(page, 'patients', 'done'), patients.done);
          const reasons = await page.$$eval('li[data-phase="patients"] tr[data-reason]', (rows) =>
            rows.map((r) => [r.getAttribute('data-reason'), Number(r.lastElementChild?.textContent)]),
          );
          assert.deepEqual(Object.fromEntries(reasons), patients.byReason);
          assert.ok(Object.keys(patients.byReason).length > 0);

          // Links into the Web UI: the run, and each started phase at its `<run>/<phase>` child, which exists.
          const runHref = await page.getAttribute('#run-link', 'href');
          assert.equal(runHref, `${UI_URL}/namespaces/default/workflows/${encodeURIComponent(runId)}`);
          for (const phase of ['backup', 'patients', 'appointments', 'documents']) {
            const href = await field(page, phase, 'link').getAttribute('href');
            assert.ok(href, `${phase} has a Web UI link`);
            const prefix = `${UI_URL}/namespaces/default/workflows/`;
            assert.ok(href.startsWith(prefix), href);
            const workflowId = decodeURIComponent(href.slice(prefix.length));
            assert.equal(workflowId, `${runId}/${phase}`);
            const described = await testEnv.client.workflow.getHandle(workflowId).describe();
            assert.equal(described.type, 'progressPhase');
          }
          assert.equal(
            await field(page, 'images', 'link').getAttribute('href'),
            null,
            'a pending phase has no link yet',
          );

          // The recent-runs list includes this run.
          await page.waitForSelector(`#runs-body tr.current`, { timeout: 20_000 });

          await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
          assert.deepEqual(problems, [], 'no script errors or CSP violations in the page');
        } catch (err) {
          await page
            .screenshot({ path: join(ARTIFACTS, 'dashboard-failure.png'), fullPage: true })
            .catch(() => undefined);
          if (problems.length) console.error('page errors:', problems);
          throw err;
        } finally {
          await handle.terminate('dashboard test done').catch(() => undefined);
        }
      });
    } finally {
      await browser.close();
      await dashboard.close();
      await closeClient();
      await testEnv.teardown();
    }
  },
);

test(
  'the dashboard follows a real tiny reimport in Chromium: the patients done-count advances as rows land',
  { timeout: 240_000 },
  async () => {
    const env = await stackEnv();
    const db = await createTestDatabase();
    const bucket = await createTestBucket();
    await migrate(db.url);
    // Latency on every FileMaker request and small chunks one at a time stretch the tiny run's patients phase over
    // several seconds, so the page is seen in the middle of it.
    const sim = await startSimulator({ preset: 'tiny', seed: 5, faults: { latencyMs: 120 } });
    const config = loadConfig({
      ...env,
      DATABASE_URL: db.url,
      S3_BUCKET: bucket,
      FM_URL: sim.url,
      FM_DATABASE: sim.database,
      FM_USERNAME: sim.username,
      FM_PASSWORD: sim.password,
      TEMPORAL_TASK_QUEUE: `dashboard-real-${randomUUID()}`,
      TEMPORAL_UI_URL: UI_URL,
      PAYLOAD_KEYS: generateKeySpec('dashboard-test'),
    });
    const worker = await startWorker(config, createLogger({ level: 'warn', format: 'json' }));
    const { client, close: closeClient } = await connectClient(config);
    const pool = new pg.Pool({ connectionString: db.url });
    const runId = `reimport-dashboard-real-${randomUUID().slice(0, 8)}`;
    const browser = await chromium.launch({ executablePath: ensureChromium(), args: [...CHROMIUM_ARGS] });
    const dashboard = await serveDashboard({ client, config, runId, port: 0 });
    let handle: WorkflowHandle | undefined;
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      mkdirSync(ARTIFACTS, { recursive: true });
      try {
        // Every phase, as an operator starts it; the page is open before the run begins.
        await page.goto(dashboard.url);
        handle = await startReimport(client, config, {
          runId,
          input: { settings: { chunkSize: 5, concurrency: 1, cooldownBaseSeconds: 0.2, cooldownMaxSeconds: 1 } },
        });
        await page.waitForSelector('li[data-phase="patients"][data-status="running"]', { timeout: 60_000 });
        const first = await poll(async () => {
          const n = await count(page, 'patients', 'done');
          return n > 0 ? n : undefined;
        }, 30_000);
        const second = await poll(async () => {
          const n = await count(page, 'patients', 'done');
          return n > first ? n : undefined;
        }, 20_000);
        const total = await count(page, 'patients', 'total');
        assert.ok(second > first, `done-count of patients advances: ${first} then ${second}`);
        assert.ok(second <= total, `done ${second} never passes the total ${total}`);
        await page.screenshot({ path: join(ARTIFACTS, 'dashboard-real-run.png'), fullPage: true });

        // The page agrees with the workflow and with the rows in PostgreSQL once the phase is done.
        await page.waitForSelector('li[data-phase="patients"][data-status="completed"]', { timeout: 120_000 });
        const patients = (await handle.query<RunProgress>('progress')).phases.find((p) => p.phase === 'patients')!;
        await poll(async () => ((await count(page, 'patients', 'done')) === patients.done ? true : undefined), 5_000);
        assert.equal(await count(page, 'patients', 'total'), patients.total, 'the page shows the workflow total');
        const rows = await pool.query<{ n: number }>('select count(*)::int as n from patients');
        assert.ok(rows.rows[0]!.n > 0, `patient rows landed: ${rows.rows[0]!.n}`);
        assert.ok(rows.rows[0]!.n <= patients.done, `no more rows (${rows.rows[0]!.n}) than records done`);
        assert.deepEqual(problems, [], 'no script errors or CSP violations in the page');
      } catch (err) {
        await page
          .screenshot({ path: join(ARTIFACTS, 'dashboard-real-run-failure.png'), fullPage: true })
          .catch(() => undefined);
        if (problems.length) console.error('page errors:', problems);
        throw err;
      }
    } finally {
      // The later phases (files) are not what this test is about: stop the run here.
      await handle?.terminate('dashboard test done').catch(() => undefined);
      await browser.close();
      await dashboard.close();
      await worker.shutdown();
      await closeClient();
      await pool.end();
      await sim.close();
    }
  },
);
