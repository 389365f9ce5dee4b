/** Shared by the files-phase end-to-end tests: a stack-backed setup and assertions against the simulator's truth. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { SimulatorOptions } from '../../sim/server';
import { KEY_PREFIX } from '../../src/domain/keys';
import { headObject, inventory } from '../../src/s3';
import type { RunningWorker } from '../../src/worker';
import type { ReimportResult } from '../../src/workflows/reimport';
import { prepareRun, startTestWorker, type TestRun } from './run';

export const PHASES = ['backup', 'delete', 'patients', 'documents', 'images', 'validation'];
export const WATERFALL = ['image_Full', 'image_Ex_large', 'image_large', 'image_medium', 'image_small'];

export interface TruthContainer {
  id: string;
  field: string;
  state: 'ok' | 'empty' | 'broken';
  size?: number;
  sha256?: string;
  /** The type of the bytes (what is stored), whatever FileMaker declares. */
  contentType?: string;
  extension?: string;
}

/** A container with something to store: a zero-byte file counts as empty. */
export const holdsFile = (c: TruthContainer): boolean => c.state !== 'empty' && c.size !== 0;

/** A prepared run with a worker in this process. */
export interface Setup extends TestRun {
  worker?: RunningWorker;
}

/** `env` adds worker settings, e.g. `FM_CONTAINER_API: 'dataapi'` for the Data API's container handshake. */
export async function setup(sim: SimulatorOptions, env: Record<string, string> = {}): Promise<Setup> {
  const run = await prepareRun(sim, 'files');
  Object.assign(run.env, env);
  const worker = await startTestWorker(run, 'error');
  return {
    ...run,
    worker,
    async close() {
      await worker.shutdown();
      await run.close();
    },
  };
}

export const start = (s: Setup, id: string, input: Record<string, unknown> = {}) =>
  s.client.workflow.start('reimport', {
    taskQueue: s.taskQueue,
    workflowId: id,
    args: [{ phases: PHASES, settings: { fileBatchSize: 6, cooldownBaseSeconds: 1 }, ...input }],
  });

/** Runs a reimport to its end and asserts it completed; returns its id and result. */
export async function completedRun(s: Setup, input: Record<string, unknown> = {}, runId = `run-${randomUUID()}`) {
  const handle = await start(s, runId, input);
  const result = (await handle.result()) as ReimportResult;
  assert.equal(result.status, 'completed', 'run completed');
  return { runId, result, handle };
}

export const truthContainers = async (s: Setup, table: string): Promise<TruthContainer[]> => {
  const res = await fetch(`${s.sim.adminUrl}/truth/containers?table=${table}`);
  const body = (await res.json()) as { containers: TruthContainer[] };
  return body.containers.map((c) => ({ ...c, id: c.id.trim().toLowerCase() }));
};

export const containerBytes = async (s: Setup): Promise<number> => {
  const res = await fetch(`${s.sim.adminUrl}/stats`);
  return ((await res.json()) as { bytes: { container: number } }).bytes.container;
};

/**
 * Bytes the run's pre-flight probe received from FileMaker over one path (`dataapi`: the container URLs the
 * simulator counts as container bytes), as the transfer quota counts them.
 */
export const probeBytes = async (s: Setup, runId: string, path: 'odata' | 'dataapi'): Promise<number> => {
  const r = await s.pool.query<{ b: string }>(
    `select coalesce(sum(bytes), 0)::text as b from transfer_log
      where run_id = $1 and source_table = 'preflight' and filemaker_id = $2`,
    [runId, `probe@${path}`],
  );
  return Number(r.rows[0]!.b);
};

/** Keys of the objects under the import prefix in the test's bucket. */
export const importedKeys = async (s: Setup): Promise<string[]> => {
  const keys: string[] = [];
  for await (const o of inventory(s.s3, s.bucket, `${KEY_PREFIX}/`)) keys.push(o.key);
  return keys;
};

export interface LedgerRow {
  filemaker_id: string;
  state: string;
  reason_code: string | null;
  s3_key: string | null;
  sha256: string | null;
  bytes: string | null;
}

export const ledger = async (s: Setup, runId: string, table: string): Promise<Map<string, LedgerRow>> => {
  const r = await s.pool.query<LedgerRow>(
    `select filemaker_id, state, reason_code, s3_key, sha256, bytes::text from import_ledger
      where run_id = $1 and source_table = $2`,
    [runId, table],
  );
  return new Map(r.rows.map((x) => [x.filemaker_id, x]));
};

/** What each document should end as, from the ground truth. */
export const expectedDocuments = (truth: TruthContainer[]) =>
  new Map(truth.filter((c) => c.field === 'Doc').map((c) => [c.id, c]));

/** The image container the waterfall must pick: the first non-empty one that is not broken. */
export function expectedImages(truth: TruthContainer[]): Map<string, { pick?: TruthContainer; anyBroken: boolean }> {
  const byId = new Map<string, TruthContainer[]>();
  for (const c of truth) byId.set(c.id, [...(byId.get(c.id) ?? []), c]);
  const out = new Map<string, { pick?: TruthContainer; anyBroken: boolean }>();
  for (const [id, cs] of byId) {
    const ordered = WATERFALL.map((f) => cs.find((c) => c.field === f)).filter((c) => c && holdsFile(c));
    out.set(id, {
      pick: ordered.find((c) => c!.state === 'ok'),
      anyBroken: ordered.some((c) => c!.state === 'broken'),
    });
  }
  return out;
}

/**
 * The run's report counts, per files phase, every byte the transfer quota counts for the run (`transfer_log`): also
 * the bytes of attempts that broke off or died with their worker.
 */
export async function assertBytesReported(
  s: Setup,
  runId: string,
  result: { phases: { phase: string; bytesDownloaded?: number }[] },
): Promise<void> {
  const r = await s.pool.query<{ source_table: string; b: string }>(
    `select source_table, sum(case when settled then bytes else greatest(bytes, reserved_bytes) end)::text as b
       from transfer_log where run_id = $1 group by source_table`,
    [runId],
  );
  const spent = new Map(r.rows.map((x) => [x.source_table, Number(x.b)]));
  for (const [phase, table] of [
    ['documents', 'API_Docs'],
    ['images', 'API_Images'],
  ] as const) {
    const reported = result.phases.find((x) => x.phase === phase)?.bytesDownloaded;
    assert.equal(reported, spent.get(table) ?? 0, `${phase}: the bytes reported are the bytes the quota counts`);
  }
}

/** Every file of the run is where the ledger says, with the ground truth's bytes; no id twice; states as expected. */
export async function assertFilesLanded(s: Setup, runId: string): Promise<void> {
  await assertDocumentsLanded(s, runId);
  await assertImagesLanded(s, runId, false);
}

export async function assertDocumentsLanded(s: Setup, runId: string): Promise<void> {
  const docs = expectedDocuments(await truthContainers(s, 'API_Docs'));
  const docLedger = await ledger(s, runId, 'API_Docs');
  assert.equal(docLedger.size, docs.size, 'every document has a ledger row');
  for (const [id, c] of docs) {
    const l = docLedger.get(id);
    assert.ok(l, `document ${id} has a ledger row`);
    if (!holdsFile(c)) {
      assert.equal(l.state, 'skipped', `empty document ${id}`);
      assert.equal(l.reason_code, 'EMPTY_CONTAINER', `empty document ${id} reason`);
    } else if (c.state === 'broken') {
      assert.equal(l.state, 'failed', `broken document ${id}`);
      assert.equal(l.reason_code, 'DOWNLOAD_FAILED', `broken document ${id} reason`);
    } else {
      assert.ok(l.state === 'imported' || l.state === 'unlinked', `document ${id} stored, not ${l.state}`);
      assert.equal(l.sha256, c.sha256, `document ${id} ledger sha256 is the source's`);
      const head = await headObject(s.s3, s.bucket, l.s3_key!);
      assert.ok(head, `document ${id} object exists`);
      assert.equal(head.size, c.size, `document ${id} object size`);
      assert.equal(head.sha256, c.sha256, `document ${id} object sha256`);
      assert.equal(head.contentType, c.contentType, `document ${id} content type is its bytes'`);
      assert.ok(l.s3_key!.endsWith(`.${c.extension}`), `document ${id} key extension follows its type`);
    }
  }
  const docRows = await s.pool.query<{ n: number; d: number; stored: number }>(
    `select count(*)::int as n, count(distinct filemaker_id)::int as d,
            count(*) filter (where s3_key is not null and sha256 is not null)::int as stored from documents`,
  );
  assert.equal(docRows.rows[0]!.n, docs.size, 'one documents row per source document (skipped and failed kept)');
  assert.equal(docRows.rows[0]!.d, docs.size, 'no document twice');
  const stored = [...docs.values()].filter((c) => c.state === 'ok' && holdsFile(c)).length;
  assert.equal(docRows.rows[0]!.stored, stored, 'stored documents');
}

/** Images: the waterfall's pick (which is also what the FileMaker Pro export holds) or a reasoned skip/failure. */
export async function assertImagesLanded(s: Setup, runId: string, fromExport: boolean): Promise<void> {
  const images = expectedImages(await truthContainers(s, 'API_Images'));
  const imgLedger = await ledger(s, runId, 'API_Images');
  assert.equal(imgLedger.size, images.size, 'every image has a ledger row');
  const rows = new Map(
    (
      await s.pool.query<{
        filemaker_id: string;
        source_field: string;
        thumbnail_status: string;
        width: number | null;
      }>('select filemaker_id, source_field, thumbnail_status, width from images')
    ).rows.map((r) => [r.filemaker_id, r]),
  );
  for (const [id, e] of images) {
    const l = imgLedger.get(id);
    assert.ok(l, `image ${id} has a ledger row`);
    if (!e.pick) {
      const state = fromExport ? 'skipped' : e.anyBroken ? 'failed' : 'skipped';
      assert.equal(l.state, state, `image ${id} without a good container`);
      if (fromExport) assert.equal(l.reason_code, 'EXPORT_FILE_MISSING', `image ${id} not in the export`);
      continue;
    }
    assert.ok(l.state === 'imported' || l.state === 'unlinked', `image ${id} stored, not ${l.state}`);
    assert.equal(l.sha256, e.pick.sha256, `image ${id} is the waterfall's pick (${e.pick.field})`);
    const head = await headObject(s.s3, s.bucket, l.s3_key!);
    assert.equal(head?.sha256, e.pick.sha256, `image ${id} object sha256`);
    assert.equal(head?.contentType, e.pick.contentType, `image ${id} content type is its bytes'`);
    const row = rows.get(id);
    assert.ok(row, `image ${id} has a row`);
    if (!fromExport) assert.equal(row.source_field, e.pick.field, `image ${id} source field`);
    const expected = e.pick.extension === 'heic' ? 'unsupported_format' : 'created';
    assert.equal(row.thumbnail_status, expected, `image ${id} thumbnail (${e.pick.extension ?? ''})`);
    if (expected === 'created') assert.ok((row.width ?? 0) > 0, `image ${id} width recorded`);
  }
  const imgRows = await s.pool.query<{ n: number; d: number }>(
    'select count(*)::int as n, count(distinct filemaker_id)::int as d from images',
  );
  assert.equal(imgRows.rows[0]!.n, imgRows.rows[0]!.d, 'no image twice');
  assert.equal(imgRows.rows[0]!.n, [...images.values()].filter((e) => e.pick).length, 'one row per stored image');
}
