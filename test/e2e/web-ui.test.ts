/**
 * The Temporal Web UI used fully, in Chromium: two runs that end differently (one completed, one paused then
 * cancelled, so rolled back) carry their status, phase and dry-run flag as search attributes, and the UI's run list
 * filtered by `FmReimportStatus` shows only the matching run. Also the phase children's static summaries, the
 * handlers' descriptions the UI lists, and the runs' histories replaying with their upserts. The shared test stack runs headless: this file starts a dev server with its UI.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_ARGS, ensureChromium } from '../../scripts/ensure-chromium';
import { startTemporal } from '../../scripts/stack';
import { pauseSignal } from '../../src/workflows/messages';
import {
  DRY_RUN_ATTRIBUTE,
  PHASE_ATTRIBUTE,
  STATUS_ATTRIBUTE,
  runStartMetadata,
} from '../../src/workflows/search-attributes';
import { reimportInputSchema, type ReimportInput } from '../../src/workflows/options';
import type { RunningWorker } from '../../src/worker';
import { prepareRun, startTestWorker, type TestRun } from '../helpers/run';

const TEMPORAL_STATE = join(__dirname, '..', '..', '.stack', `webui-${process.pid}`);
let temporal: Awaited<ReturnType<typeof startTemporal>>;
let prepared: TestRun;
let worker: RunningWorker;
let connection: Connection;
let client: Client;
let browser: Browser;

before(async () => {
  temporal = await startTemporal({ stateDir: TEMPORAL_STATE, ui: true }, () => undefined);
  prepared = await prepareRun({ preset: 'tiny', seed: 7 }, 'webui');
  const env = { ...prepared.env, TEMPORAL_ADDRESS: temporal.env.TEMPORAL_ADDRESS! };
  worker = await startTestWorker({ ...prepared, env });
  connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
  client = new Client({ connection });
  browser = await chromium.launch({ executablePath: ensureChromium(), args: [...CHROMIUM_ARGS] });
});

after(async () => {
  await browser?.close();
  await worker?.shutdown();
  await connection?.close();
  await prepared?.close();
  await temporal?.stop();
  rmSync(TEMPORAL_STATE, { recursive: true, force: true });
});

/** Starts a run as a client does: its input, its search attributes and its summary. */
const startOptions = (workflowId: string, input: ReimportInput) => ({
  taskQueue: prepared.taskQueue,
  workflowId,
  args: [input],
  ...runStartMetadata(reimportInputSchema.parse(input)),
});

async function attributes(handle: WorkflowHandle) {
  const d = await handle.describe();
  const sa = d.typedSearchAttributes;
  return { status: sa.get(STATUS_ATTRIBUTE), phase: sa.get(PHASE_ATTRIBUTE), dryRun: sa.get(DRY_RUN_ATTRIBUTE) };
}

/** The workflow ids the Web UI lists for `query`, once the list shows `expected` (visibility is eventually consistent). */
async function listed(query: string, expected: string): Promise<string[]> {
  const page = await browser.newPage();
  try {
    const url = `${temporal.ui!}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;
    const until = Date.now() + 20_000;
    for (;;) {
      await page.goto(url);
      const links = page.locator('table a[href*="/workflows/"]');
      try {
        await page
          .locator(`a[href*="/workflows/${encodeURIComponent(expected)}/"]`)
          .first()
          .waitFor({ timeout: 3000 });
      } catch {
        if (Date.now() > until) throw new Error(`the Web UI did not list ${expected} for ${query}`);
        continue;
      }
      const hrefs = await links.evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? ''));
      const ids = hrefs.map((h) => /\/workflows\/([^/]+)\//.exec(h)?.[1]).filter((x): x is string => x !== undefined);
      return [...new Set(ids.map(decodeURIComponent))].sort();
    }
  } finally {
    await page.close();
  }
}

test(
  'the Web UI filters the run list by the run status search attribute: only the matching run is listed',
  { timeout: 120_000 },
  async () => {
    const tag = randomUUID().slice(0, 8);
    const completedId = `webui-completed-${tag}`;
    const rolledBackId = `webui-rolled-back-${tag}`;

    const completed = await client.workflow.start('reimport', startOptions(completedId, { phases: ['patients'] }));
    // Paused from its first workflow task, so it is still before its first phase when it is cancelled: rolled back.
    const rolledBack = await client.workflow.signalWithStart('reimport', {
      ...startOptions(rolledBackId, { phases: ['patients'] }),
      signal: pauseSignal,
      signalArgs: [{ reason: 'web ui test' }],
    });

    await completed.result();
    assert.deepEqual(await attributes(completed), { status: 'completed', phase: 'patients', dryRun: false });

    for (let i = 0; (await attributes(rolledBack)).status !== 'paused'; i++) {
      assert.ok(i < 100, 'the paused run shows FmReimportStatus "paused"');
      await delay(100);
    }
    await rolledBack.cancel();
    await assert.rejects(rolledBack.result(), WorkflowFailedError);
    assert.deepEqual(await attributes(rolledBack), { status: 'rolled_back', phase: undefined, dryRun: false });

    // The run and its children carry a summary the run's tree shows; the handlers carry the descriptions the UI lists.
    assert.equal(await (await completed.describe()).staticSummary(), 'Reimport: patients');
    const child = await client.workflow.getHandle(`${completedId}/patients`).describe();
    assert.equal(await child.staticSummary(), `Phase patients of run ${completedId}`);
    assert.match((await child.staticDetails()) ?? '', /^Tables: .*API_Contacts/);
    const batches = ((await client.workflow.getHandle(`${completedId}/patients`).fetchHistory()).events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'importChunk')
      .map((e) => e.userMetadata?.summary && defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary));
    assert.ok(batches.length > 0);
    for (const b of batches) assert.match(b ?? '', /^API_\w+ \d+–\d+ of \d+$/);
    const metadata = await completed.query<{
      definition: { queryDefinitions: { name: string; description?: string }[] };
      currentDetails?: string;
    }>('__temporal_workflow_metadata');
    const progress = metadata.definition.queryDefinitions.find((q) => q.name === 'progress');
    assert.match(progress?.description ?? '', /Progress of the run/);
    assert.match(metadata.currentDetails ?? '', /^Completed\n- patients: [\d,]+ read, [\d,]+ imported/);

    // The upserts are commands of the history: the runs' histories replay with the code that wrote them.
    const replays = Worker.runReplayHistories(
      { workflowsPath: require.resolve('../../src/workflows'), replayName: 'webui-replay' },
      await Promise.all(
        [completed, rolledBack].map(async (h) => ({ workflowId: h.workflowId, history: await h.fetchHistory() })),
      ),
    );
    let replayed = 0;
    for await (const r of replays) {
      assert.equal(r.error, undefined, `${r.workflowId} replays`);
      replayed++;
    }
    assert.equal(replayed, 2);

    // This dev server holds only these two runs and their children (which carry no status).
    assert.deepEqual(await listed('FmReimportStatus="completed"', completedId), [completedId]);
    assert.deepEqual(await listed('FmReimportStatus="rolled_back"', rolledBackId), [rolledBackId]);
  },
);
