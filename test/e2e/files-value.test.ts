/**
 * OData's `$value` answering 2xx with something that is not the container (the filename as text/plain, an empty 200,
 * base64 text), end to end on the real dev server, PostgreSQL, MinIO and the simulator (tiny preset): no wrong bytes
 * are stored. When the pre-flight's probe finds `$value` unusable the whole run reads containers through the Data API
 * and the report says so; a single suspect answer in a run that uses `$value` is read again through the Data API.
 *
 * The first two tests stand the lying server in with a client whose `$value` download answers CONTAINER_SUSPECT
 * (typed against FileMakerClient, given to the worker as its dependency). The last one turns on the simulator's own
 * `odataValueVariant` fault.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FileMakerError } from '../../src/errors';
import { FM_ERRORS, type FileMakerClient } from '../../src/filemaker';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { createDeps } from '../../src/activities/deps';
import { deleteObjects } from '../../src/s3';
import { startWorker } from '../../src/worker';
import type { ReimportResult } from '../../src/workflows/reimport';
import type { RunProgress } from '../../src/workflows/messages';
import {
  assertFilesLanded,
  completedRun,
  containerBytes,
  importedKeys,
  setup,
  start,
  type Setup,
} from '../helpers/files';
import { prepareRun } from '../helpers/run';

interface Lying {
  /** `$value` answers passed through before the lying starts (the pre-flight probes one per files table). */
  passThrough: number;
  calls: number;
}

/**
 * The worker's FileMaker client, except that `$value` downloads (after the first `passThrough`) read the answer and
 * throw CONTAINER_SUSPECT, as the client does for a 2xx body that cannot be the container.
 */
async function setupLying(lying: Lying): Promise<Setup> {
  const run = await prepareRun({ preset: 'tiny', seed: 31, sizeScale: 0.1 }, 'files-value');
  const config = loadConfig({ ...run.env, LOG_LEVEL: 'error' });
  const logger = createLogger({ level: 'error', format: 'json' });
  const deps = await createDeps(config, logger);
  const real = deps.fm;
  const downloadODataContainer: FileMakerClient['downloadODataContainer'] = async (...args) => {
    const dl = await real.downloadODataContainer(...args);
    if (++lying.calls <= lying.passThrough) return dl;
    for await (const _ of dl.body); // the suspect answer is read, and dropped
    throw new FileMakerError('container answer is not the container', undefined, dl.status, {
      code: FM_ERRORS.CONTAINER_SUSPECT,
    });
  };
  deps.fm = new Proxy(real, {
    get(target, prop) {
      if (prop === 'downloadODataContainer') return downloadODataContainer;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const worker = await startWorker(config, logger, { deps });
  return {
    ...run,
    worker,
    async close() {
      await worker.shutdown();
      await deps.close();
      await run.close();
    },
  };
}

/** The phase summaries of the run's report as stored in `reimport_runs`. */
async function reportOf(s: Setup, runId: string) {
  const r = await s.pool.query<{
    summary: {
      containerPath?: string;
      containerPathReason?: string;
      phases: { phase: string; byReason: Record<string, number> }[];
    };
  }>('select summary from reimport_runs where run_id = $1', [runId]);
  return r.rows[0]!.summary;
}

describe('$value that is not the container: a client answering CONTAINER_SUSPECT', () => {
  const lying: Lying = { passThrough: 0, calls: 0 };
  let s: Setup;
  before(async () => {
    s = await setupLying(lying);
  });
  after(async () => {
    await s?.close();
  });

  test(
    'the pre-flight finds $value unusable: every file comes through the Data API and the report says so',
    { timeout: 300_000 },
    async () => {
      const { runId, result, handle } = await completedRun(s);
      assert.equal(result.containerPath, 'dataapi', 'the run read containers through the Data API');
      assert.equal(result.containerPathReason, FM_ERRORS.CONTAINER_SUSPECT, 'because $value was suspect');
      const progress = await handle.query<RunProgress>('progress');
      assert.equal(progress.containerPath, 'dataapi', 'progress names the path');
      const report = await reportOf(s, runId);
      assert.equal(report.containerPath, 'dataapi', 'the stored report names the path');
      assert.equal(report.containerPathReason, FM_ERRORS.CONTAINER_SUSPECT, 'and the reason');
      assert.equal(lying.calls, 1, 'one $value request: the probe, none in the phases');
      assert.ok((await containerBytes(s)) > 0, 'the files came through the Data API');
      await assertFilesLanded(s, runId);
    },
  );

  test(
    'after a probe that passed, each suspect answer is read again through the Data API and counted; its bytes are never stored',
    { timeout: 300_000 },
    async () => {
      // The probe reads one sample of documents and one of images over $value: those two are the container.
      Object.assign(lying, { passThrough: 2, calls: 0 });
      // Objects of the previous test would be relinked: start from an empty bucket so files really download.
      await deleteObjects(s.s3, s.bucket, await importedKeys(s));
      const runId = `run-${randomUUID()}`;
      const result = (await (await start(s, runId)).result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'run completed');
      assert.equal(result.containerPath, 'odata', 'the probe found $value usable');
      assert.equal(result.containerPathReason, 'PROBED');
      const report = await reportOf(s, runId);
      for (const phase of ['documents', 'images']) {
        const suspect = report.phases.find((p) => p.phase === phase)?.byReason[FM_ERRORS.CONTAINER_SUSPECT] ?? 0;
        assert.ok(suspect > 0, `${phase}: suspect answers counted (${suspect})`);
      }
      assert.ok(lying.calls > 2, 'the phases asked $value');
      await assertFilesLanded(s, runId);
    },
  );
});

describe('$value variants of the simulator (odataValueVariant)', () => {
  let s: Setup;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 32, sizeScale: 0.1 });
  });
  after(async () => {
    await s?.close();
  });

  test(
    'with each $value variant on, no wrong bytes are stored: the files come through the Data API and the report says so',
    { timeout: 900_000 },
    async () => {
      for (const variant of ['filename', 'empty', 'base64']) {
        const res = await fetch(`${s.sim.adminUrl}/faults`, {
          method: 'POST',
          body: JSON.stringify({ odataValueVariant: variant }),
        });
        const faults = (await res.json()) as { odataValueVariant?: string };
        assert.equal(faults.odataValueVariant, variant, 'the simulator serves the variant');
        // Objects of the previous variant would be relinked: start from an empty bucket so files really download.
        await deleteObjects(s.s3, s.bucket, await importedKeys(s));
        const runId = `run-${randomUUID()}`;
        const result = (await (await start(s, runId)).result()) as ReimportResult;
        assert.equal(result.status, 'completed', `${variant}: run completed`);
        assert.equal(result.containerPath, 'dataapi', `${variant}: containers through the Data API`);
        assert.ok(
          result.containerPathReason === FM_ERRORS.CONTAINER_SUSPECT ||
            result.containerPathReason === 'ODATA_VALUE_MISMATCH',
          `${variant}: the reason is $value's answer (${result.containerPathReason ?? ''})`,
        );
        await assertFilesLanded(s, runId);
      }
      await fetch(`${s.sim.adminUrl}/faults`, { method: 'POST', body: JSON.stringify({ odataValueVariant: 'bytes' }) });
      await deleteObjects(s.s3, s.bucket, await importedKeys(s));
      const runId = `run-${randomUUID()}`;
      const result = (await (await start(s, runId)).result()) as ReimportResult;
      assert.equal(result.containerPath, 'odata', 'bytes: $value is used');
      await assertFilesLanded(s, runId);
    },
  );
});
