/**
 * The documents and images phases end to end on the real dev server, PostgreSQL, MinIO and the FileMaker simulator
 * (tiny preset): every container lands in S3 with the simulator's ground-truth SHA-256 or ends skipped/failed with
 * its reason; the waterfall falls back past broken containers; thumbnails for JPEG/PNG, HEIC recorded as
 * unsupported; a second run downloads 0 bytes; a spent transfer budget pauses the run cleanly until it is raised;
 * a server restart (every token and container URL dead) mid-run and stale URLs lose nothing and duplicate nothing;
 * the images phase from the FileMaker Pro export; a cancel during a files phase rolls back only after its batches
 * stopped; an object replaced under the run fails reconciliation and rolls the run back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { exportImages } from '../../sim/export';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { type ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { deleteObjects, headObject } from '../../src/s3';
import type { ReimportResult } from '../../src/workflows/reimport';
import type { RunProgress } from '../../src/workflows/messages';
import {
  assertBytesReported,
  assertFilesLanded,
  assertImagesLanded,
  containerBytes,
  expectedDocuments,
  expectedImages,
  importedKeys,
  probeBytes,
  setup,
  start,
  truthContainers,
  type Setup,
} from '../helpers/files';

describe('files phases on a clean FileMaker', () => {
  let s: Setup;
  let firstRun: string;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 11, sizeScale: 0.1 });
  });
  after(async () => {
    await s?.close();
  });

  test('a dry run estimates the bytes to download and writes nothing', { timeout: 300_000 }, async () => {
    const before = await containerBytes(s);
    const result = (await (await start(s, `dry-${randomUUID()}`, { dryRun: true })).result()) as ReimportResult;
    assert.equal(result.status, 'dry_run', 'dry run');
    const docs = expectedDocuments(await truthContainers(s, 'API_Docs'));
    const withFile = [...docs.values()].filter((c) => c.state !== 'empty').length;
    const estimate = result.phases.find((p) => p.phase === 'documents')?.bytesDownloaded ?? 0;
    // Nothing is stored yet: every document with a container is estimated at the clinic's average (512 KiB).
    assert.equal(estimate, withFile * 512 * 1024, 'documents estimate');
    assert.equal((await containerBytes(s)) - before, 0, 'the dry run read no container');
    assert.deepEqual(await importedKeys(s), [], 'no object written');
    const rows = await s.pool.query<{ n: number }>('select count(*)::int as n from documents');
    assert.equal(rows.rows[0]!.n, 0, 'no row written');
  });

  test(
    'every container lands with its source checksum, or ends skipped/failed with its reason',
    { timeout: 300_000 },
    async () => {
      firstRun = `run-${randomUUID()}`;
      const result = (await (await start(s, firstRun)).result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'run completed');
      await assertFilesLanded(s, firstRun);
      const docs = result.phases.find((p) => p.phase === 'documents');
      assert.ok(docs && (docs.bytesDownloaded ?? 0) > 0, 'documents downloaded bytes');
      await assertBytesReported(s, firstRun, result);
    },
  );

  /** The file batches (importFiles activities) a run's files phase scheduled, from its history. */
  async function fileBatches(runId: string, phase: string): Promise<number> {
    const events = (await s.client.workflow.getHandle(`${runId}/${phase}`).fetchHistory()).events ?? [];
    return events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'importFiles').length;
  }

  test('a second run relinks every file and downloads 0 bytes', { timeout: 300_000 }, async () => {
    const before = await containerBytes(s);
    const runId = `run-${randomUUID()}`;
    // Two batches in flight: every file is settled already, so each phase reads its table in about four relink
    // batches (12 and 10 records) instead of batches of 6.
    const settings = { fileBatchSize: 6, concurrency: 2, cooldownBaseSeconds: 1 };
    const result = (await (await start(s, runId, { settings })).result()) as ReimportResult;
    assert.equal(result.status, 'completed', 'second run completed');
    // The pre-flight's probe reads one sample container per files table, through the Data API as well (and may see
    // a damaged sample's error page first): no file of the phases is among the bytes.
    const probed = await probeBytes(s, runId, 'dataapi');
    const sent = (await containerBytes(s)) - before;
    assert.ok(sent >= probed && sent - probed < 4096, `no container bytes left FileMaker but the probe's (${sent})`);
    for (const phase of ['documents', 'images']) {
      const p = result.phases.find((x) => x.phase === phase);
      assert.equal(p?.bytesDownloaded, 0, `${phase}: 0 bytes downloaded`);
      assert.ok((p?.relinked ?? 0) > 0, `${phase}: files relinked`);
      const [first, second] = [await fileBatches(firstRun, phase), await fileBatches(runId, phase)];
      assert.ok(second <= 4 && second < first, `${phase}: ${second} relink batches, ${first} in the first run`);
    }
    await assertFilesLanded(s, runId);
  });
});

describe('files phases under faults', () => {
  let s: Setup;
  before(async () => {
    // The Data API's container URLs (302 + cookie handshake) are what a restart and short URL lifetimes break.
    s = await setup(
      { preset: 'tiny', seed: 12, sizeScale: 0.1, faults: { latencyMs: 15 } },
      { FM_CONTAINER_API: 'dataapi' },
    );
  });
  after(async () => {
    await s?.close();
  });

  test(
    'a spent transfer budget pauses the run before the download; raising it completes with nothing lost',
    { timeout: 300_000 },
    async () => {
      const runId = `run-${randomUUID()}`;
      // Enough for some documents, far from all files.
      const handle = await start(s, runId, { transferBudgetBytes: 600_000 });
      let paused = false;
      for (let i = 0; i < 240 && !paused; i++) {
        await delay(500);
        const p = await handle.query<{ phases: { pausedForQuota?: boolean }[] }>('progress');
        paused = p.phases.some((x) => x.pausedForQuota === true);
      }
      assert.ok(paused, 'the run reports a pause for the transfer budget');
      const used = await s.pool.query<{ b: string }>(
        `select coalesce(sum(case when settled then bytes else greatest(bytes, reserved_bytes) end), 0)::text as b
         from transfer_log`,
      );
      assert.ok(Number(used.rows[0]!.b) <= 600_000, 'the budget was never passed');
      await handle.executeUpdate('setTransferBudget', { args: [10 * 1024 ** 3] });
      const result = (await handle.result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'run completed after the budget was raised');
      await assertFilesLanded(s, runId);
    },
  );

  test(
    'a FileMaker restart mid-run (tokens, cookies and URLs dead) and short URL lifetimes lose nothing',
    { timeout: 300_000 },
    async () => {
      // Objects from the previous test would be relinked: start from an empty bucket so files really download.
      await deleteObjects(s.s3, s.bucket, await importedKeys(s));
      await fetch(`${s.sim.adminUrl}/faults`, {
        method: 'POST',
        body: JSON.stringify({ containerUrlTtlMs: 1500, latencyMs: 25 }),
      });
      const runId = `run-${randomUUID()}`;
      const handle = await start(s, runId);
      let restarted = false;
      for (let i = 0; i < 240 && !restarted; i++) {
        await delay(250);
        const l = await s.pool.query<{ n: number }>(
          `select count(*)::int as n from import_ledger where run_id = $1 and source_table = 'API_Docs'`,
          [runId],
        );
        if (l.rows[0]!.n >= 5) {
          await fetch(`${s.sim.adminUrl}/restart`, { method: 'POST' });
          restarted = true;
        }
      }
      assert.ok(restarted, 'the restart happened during the documents phase');
      const result = (await handle.result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'run completed');
      await assertFilesLanded(s, runId);
    },
  );
});

describe('images from the FileMaker Pro export', () => {
  let s: Setup;
  let dir: string;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 13, sizeScale: 0.1 });
    dir = await mkdtemp(join(tmpdir(), 'fm-export-'));
    await exportImages(s.sim.dataset, dir);
  });
  after(async () => {
    await s?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(
    'imports every exported image without a container download; the Data API run after it downloads 0 bytes',
    {
      timeout: 300_000,
    },
    async () => {
      const before = await containerBytes(s);
      const runId = `run-${randomUUID()}`;
      const phases = ['backup', 'delete', 'patients', 'images', 'validation'];
      const handle = await start(s, runId, { phases, imagesFrom: { kind: 'folder', path: dir } });
      const result = (await handle.result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'export run completed');
      assert.equal((await containerBytes(s)) - before, 0, 'no container bytes left FileMaker');
      await assertImagesLanded(s, runId, true);
      const fields = await s.pool.query<{ f: string }>('select distinct source_field as f from images');
      assert.deepEqual(
        fields.rows.map((r) => r.f),
        ['filemaker_pro_export'],
        'images say they came from the export',
      );

      // Over the Data API afterwards: the exported bytes are the containers' bytes, so every image is relinked.
      const apiRun = `run-${randomUUID()}`;
      const api = (await (await start(s, apiRun, { phases })).result()) as ReimportResult;
      assert.equal(api.status, 'completed', 'Data API run completed');
      const images = api.phases.find((p) => p.phase === 'images');
      const truth = expectedImages(await truthContainers(s, 'API_Images'));
      const stored = [...truth.values()].filter((e) => e.pick).length;
      assert.equal(images?.relinked, stored, 'every exported image relinked, none downloaded again');
      if (![...truth.values()].some((e) => !e.pick && e.anyBroken)) {
        assert.equal(images?.bytesDownloaded, 0, 'images: 0 bytes downloaded after the export import');
      }
    },
  );
});

describe('cancelling a run in a files phase', () => {
  let s: Setup;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 19, sizeScale: 0.1 });
  });
  after(async () => {
    await s?.close();
  });

  test(
    'the rollback waits for the batches in flight: no document row or object of the run is left, also seconds later',
    { timeout: 300_000 },
    async () => {
      // Slow answers and long batches: when the cancel comes, a batch has seconds of downloads left.
      await fetch(`${s.sim.adminUrl}/faults`, { method: 'POST', body: JSON.stringify({ latencyMs: 1000 }) });
      const runId = `run-${randomUUID()}`;
      const handle = await start(s, runId, { settings: { fileBatchSize: 20, cooldownBaseSeconds: 1 } });
      let cancelled = false;
      for (let i = 0; i < 600 && !cancelled; i++) {
        await delay(100);
        const l = await s.pool.query<{ n: number }>(
          `select count(*)::int as n from import_ledger where run_id = $1 and source_table = 'API_Docs'`,
          [runId],
        );
        if (l.rows[0]!.n >= 2) {
          await handle.cancel();
          cancelled = true;
        }
      }
      assert.ok(cancelled, 'the cancel came during the documents phase');
      await assert.rejects(handle.result());
      const progress = await handle.query<RunProgress>('progress');
      assert.equal(progress.status, 'rolled_back');
      // A batch that went on after the cancel would write its rows and objects now, after the restore.
      await delay(8000);
      const rows = await s.pool.query<{ n: number }>(
        `select (select count(*) from documents)::int + (select count(*) from images)::int as n`,
      );
      assert.equal(rows.rows[0]!.n, 0, 'no document or image row of the cancelled run');
      assert.deepEqual(await importedKeys(s), [], 'no object of the cancelled run');
    },
  );

  test(
    'a stored object replaced mid-phase (same size, our metadata kept) fails reconciliation and the run rolls back',
    { timeout: 300_000 },
    async () => {
      await fetch(`${s.sim.adminUrl}/faults`, { method: 'POST', body: JSON.stringify({ latencyMs: 300 }) });
      const runId = `run-${randomUUID()}`;
      const handle = await start(s, runId, { phases: ['backup', 'delete', 'patients', 'documents', 'validation'] });
      let victim: { filemaker_id: string; s3_key: string } | undefined;
      for (let i = 0; i < 600 && !victim; i++) {
        await delay(100);
        const l = await s.pool.query<{ filemaker_id: string; s3_key: string }>(
          `select filemaker_id, s3_key from import_ledger
            where run_id = $1 and source_table = 'API_Docs' and s3_key is not null and state = 'imported' limit 1`,
          [runId],
        );
        victim = l.rows[0];
      }
      assert.ok(victim, 'a document was stored during the phase');
      await handle.signal('pause');
      for (let i = 0; i < 300; i++) {
        if ((await handle.query<RunProgress>('progress')).status === 'paused') break;
        await delay(100);
      }
      // What a copy tool that carries the metadata over would leave: other bytes of the same size, with S3's own
      // SHA-256 of them, under our recorded `sha256`. Only S3's checksum tells them apart.
      const o = await s.s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: victim.s3_key }));
      const original = Buffer.from(await o.Body!.transformToByteArray());
      const replaced = Buffer.from(original.map((b, i) => (i === original.length >> 1 ? b ^ 0xff : b)));
      await s.s3.send(
        new PutObjectCommand({
          Bucket: s.bucket,
          Key: victim.s3_key,
          Body: replaced,
          ContentType: o.ContentType,
          Metadata: o.Metadata,
          ChecksumAlgorithm: 'SHA256',
        }),
      );
      const head = await headObject(s.s3, s.bucket, victim.s3_key);
      assert.equal(head?.size, original.length, 'same size');
      assert.equal(head?.sha256, undefined, "S3's checksum of the new bytes disowns our recorded SHA-256");
      await fetch(`${s.sim.adminUrl}/faults`, { method: 'POST', body: JSON.stringify({ latencyMs: 0 }) });
      await handle.signal('resume');

      await assert.rejects(handle.result(), (err) => {
        assert.ok(err instanceof WorkflowFailedError, 'the workflow failed');
        assert.equal((err.cause as ApplicationFailure | undefined)?.type, 'RUN_ROLLED_BACK', 'after a rollback');
        return true;
      });
      const progress = await handle.query<RunProgress>('progress');
      assert.equal(progress.status, 'rolled_back', 'the run rolled back');
      const documents = progress.phases.find((p) => p.phase === 'documents');
      assert.equal(documents?.status, 'failed', "the documents phase's reconciliation found the object");
      assert.equal(progress.phases.find((p) => p.phase === 'validation')?.status, 'pending', 'validation never ran');
      const rows = await s.pool.query<{ n: number }>('select count(*)::int as n from documents');
      assert.equal(rows.rows[0]!.n, 0, 'no document row of the rolled-back run');
      assert.deepEqual(await importedKeys(s), [], 'no object of the rolled-back run');
    },
  );
});
