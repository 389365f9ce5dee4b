/**
 * The files phases after the source changed, end to end on the real dev server, PostgreSQL, MinIO and the simulator
 * (tiny preset): a container whose bytes were replaced in FileMaker between two runs (a new modId) is downloaded
 * again and its object replaced, counted in the report; every other file is relinked without a byte from FileMaker;
 * a write-back alone (NexusExportDate, whose PATCH changes the modId) does not make the next run download again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { headObject } from '../../src/s3';
import type { ReimportResult } from '../../src/workflows/reimport';
import {
  assertFilesLanded,
  expectedDocuments,
  expectedImages,
  ledger,
  setup,
  start,
  truthContainers,
  type Setup,
} from '../helpers/files';

/** Replaces one container's bytes in the simulator, as a re-scan under the same record would (the modId moves on). */
function replaceContainer(s: Setup, table: string, id: string, field: string): void {
  const rec = [...s.sim.dataset.table(table)!.scan()].find((r) => String(r.fields.id).trim().toLowerCase() === id);
  assert.ok(rec, `${table} ${id} is in the simulator`);
  s.sim.mutate([{ op: 'replaceContainer', table, recordId: rec.recordId, field }]);
}

/** Transfer quota the run spent per files table (from `transfer_log`, as the quota counts it). */
async function spentByTable(s: Setup, runId: string): Promise<Record<string, number>> {
  const r = await s.pool.query<{ source_table: string; b: string }>(
    `select source_table, sum(case when settled then bytes else greatest(bytes, reserved_bytes) end)::text as b
       from transfer_log where run_id = $1 group by source_table`,
    [runId],
  );
  return Object.fromEntries(r.rows.map((x) => [x.source_table, Number(x.b)]));
}

const run = async (s: Setup, input: Record<string, unknown> = {}) => {
  const runId = `run-${randomUUID()}`;
  const result = (await (await start(s, runId, input)).result()) as ReimportResult;
  assert.equal(result.status, 'completed', 'run completed');
  return {
    runId,
    result,
    docs: result.phases.find((p) => p.phase === 'documents')!,
    images: result.phases.find((p) => p.phase === 'images')!,
  };
};

describe('files phases after the source changed', () => {
  let s: Setup;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 21, sizeScale: 0.1 });
  });
  after(async () => {
    await s?.close();
  });

  test(
    'a container replaced between two runs is downloaded again and counted; every other file is relinked',
    { timeout: 400_000 },
    async () => {
      const first = await run(s);
      await assertFilesLanded(s, first.runId);

      const docTruth = expectedDocuments(await truthContainers(s, 'API_Docs'));
      const imgTruth = expectedImages(await truthContainers(s, 'API_Images'));
      const firstDocs = await ledger(s, first.runId, 'API_Docs');
      const firstImgs = await ledger(s, first.runId, 'API_Images');
      const doc = [...docTruth.values()].find((c) => c.state === 'ok' && firstDocs.get(c.id)?.state === 'imported')!;
      const [imgId, img] = [...imgTruth].find(([id, e]) => e.pick && firstImgs.get(id)?.state === 'imported')!;
      replaceContainer(s, 'API_Docs', doc.id, 'Doc');
      replaceContainer(s, 'API_Images', imgId, img.pick!.field);
      const newDoc = expectedDocuments(await truthContainers(s, 'API_Docs')).get(doc.id)!;
      const newImg = expectedImages(await truthContainers(s, 'API_Images')).get(imgId)!.pick!;
      assert.notEqual(newDoc.sha256, doc.sha256, 'the simulator serves other bytes for the document');
      assert.notEqual(newImg.sha256, img.pick!.sha256, 'the simulator serves other bytes for the image');

      const second = await run(s);
      // Every file as the source has it now: the replaced ones with their new bytes, in the ledger and in S3.
      await assertFilesLanded(s, second.runId);
      const docs2 = await ledger(s, second.runId, 'API_Docs');
      const imgs2 = await ledger(s, second.runId, 'API_Images');
      assert.equal((await headObject(s.s3, s.bucket, docs2.get(doc.id)!.s3_key!))?.sha256, newDoc.sha256);
      assert.equal((await headObject(s.s3, s.bucket, imgs2.get(imgId)!.s3_key!))?.sha256, newImg.sha256);

      // Only the replaced containers left FileMaker; the report counts them and relinks the rest.
      const spent = await spentByTable(s, second.runId);
      assert.equal(spent.API_Docs, newDoc.size, 'documents: only the replaced file was downloaded');
      assert.equal(spent.API_Images, newImg.size, 'images: only the replaced file was downloaded');
      assert.equal(second.docs.bytesDownloaded, newDoc.size, 'documents: bytes reported');
      assert.equal(second.images.bytesDownloaded, newImg.size, 'images: bytes reported');
      assert.equal(second.docs.replaced, 1, 'documents: one replaced file reported');
      assert.equal(second.images.replaced, 1, 'images: one replaced file reported');
      const stored = (l: Map<string, { state: string }>) =>
        [...l.values()].filter((x) => x.state === 'imported' || x.state === 'unlinked').length;
      assert.equal(second.docs.relinked, stored(docs2) - 1, 'documents: every other file relinked');
      assert.equal(second.images.relinked, stored(imgs2) - 1, 'images: every other file relinked');
    },
  );

  test('a write-back alone does not make the next run download again', { timeout: 400_000 }, async () => {
    const modIds = () => new Map([...s.sim.dataset.table('API_Docs')!.scan()].map((r) => [r.index, r.modId]));
    const before = modIds();
    const written = await run(s, { writeBack: true });
    assert.equal(written.docs.bytesDownloaded, 0, 'the write-back run relinks every document');
    const after = modIds();
    const moved = [...after].filter(([id, m]) => before.get(id) !== m).length;
    assert.ok(moved > 0, 'the write-back changed records in FileMaker (their modId moved on)');

    const next = await run(s);
    await assertFilesLanded(s, next.runId);
    const spent = await spentByTable(s, next.runId);
    assert.equal(spent.API_Docs ?? 0, 0, 'documents: nothing downloaded after the write-back');
    assert.equal(spent.API_Images ?? 0, 0, 'images: nothing downloaded after the write-back');
    assert.equal(next.docs.replaced, 0, 'documents: nothing replaced');
    assert.equal(next.images.replaced, 0, 'images: nothing replaced');
    assert.ok(next.docs.relinked > 0 && next.images.relinked > 0, 'every stored file relinked');
  });
});
