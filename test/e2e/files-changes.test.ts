/**
 * The files phases after the source changed, end to end on the real dev server, PostgreSQL, MinIO and the simulator
 * (tiny preset): a container whose bytes were replaced in FileMaker between two runs (a new modId) is downloaded
 * again and its object replaced, counted in the report; every other file is relinked without a byte from FileMaker;
 * a write-back alone (NexusExportDate, whose PATCH changes the modId) does not make the next run download again;
 * a run that downloaded replaced containers and then failed rolls back to the objects as they were, byte for byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { WorkflowFailedError, type ApplicationFailure } from '@temporalio/client';
import { KEY_PREFIX } from '../../src/domain/keys';
import { deleteObject, headObject, inventory, putObject } from '../../src/s3';
import {
  assertFilesLanded,
  expectedDocuments,
  expectedImages,
  ledger,
  completedRun,
  setup,
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

const run = async (s: Setup, input: Record<string, unknown> = {}, runId = `run-${randomUUID()}`) => {
  const { result } = await completedRun(s, input, runId);
  return {
    runId,
    result,
    docs: result.phases.find((p) => p.phase === 'documents')!,
    images: result.phases.find((p) => p.phase === 'images')!,
  };
};

/** Every object under the import prefix with its size and ETag (other bytes under a key give another ETag). */
async function bucketState(s: Setup): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const o of inventory(s.s3, s.bucket, `${KEY_PREFIX}/`)) out.set(o.key, `${o.size} ${o.etag ?? ''}`);
  return out;
}

interface FileRow {
  s3_key: string;
  sha256: string;
  file_size: string;
  thumbnail_key?: string | null;
}

/** The target row of a file: its key, recorded SHA-256 and size (and an image's thumbnail). */
async function fileRow(s: Setup, table: 'documents' | 'images', id: string): Promise<FileRow> {
  const thumb = table === 'images' ? ', thumbnail_key' : '';
  const r = await s.pool.query<FileRow>(
    `select s3_key, sha256, file_size::text${thumb} from ${table} where filemaker_id = $1`,
    [id],
  );
  assert.equal(r.rows.length, 1, `one ${table} row`);
  return r.rows[0]!;
}

/** The object under a row's key holds exactly the row's bytes (S3's SHA-256 of them and their size). */
async function assertRowObject(s: Setup, row: FileRow, sha256: string, what: string): Promise<void> {
  assert.equal(row.sha256, sha256, `${what}: the row records the expected bytes`);
  const head = await headObject(s.s3, s.bucket, row.s3_key);
  assert.equal(head?.sha256, row.sha256, `${what}: the object under the row's key has the row's SHA-256`);
  assert.equal(head?.size, Number(row.file_size), `${what}: the object has the row's size`);
}

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

  test(
    'an object deleted or overwritten between two runs is downloaded again; every other file is relinked as it was',
    { timeout: 400_000 },
    async () => {
      const first = await run(s);
      await assertFilesLanded(s, first.runId);
      const docs1 = await ledger(s, first.runId, 'API_Docs');
      const imgs1 = await ledger(s, first.runId, 'API_Images');
      const storedIds = (l: Map<string, { state: string; s3_key: string | null }>) =>
        [...l].filter(([, x]) => (x.state === 'imported' || x.state === 'unlinked') && x.s3_key).map(([id]) => id);
      const [deletedDoc, overwrittenDoc] = storedIds(docs1);
      const [deletedImg] = storedIds(imgs1);
      assert.ok(deletedDoc && overwrittenDoc && deletedImg, 'two stored documents and a stored image');
      const rowsOf = async (table: 'documents' | 'images', columns: string) =>
        new Map(
          (
            await s.pool.query<{ filemaker_id: string }>(
              `select filemaker_id, ${columns} from ${table} where s3_key is not null`,
            )
          ).rows.map((r) => [r.filemaker_id, r]),
        );
      const docRows1 = await rowsOf('documents', 's3_key, original_name, mime_type, file_size, sha256');
      const imgRows1 = await rowsOf(
        'images',
        's3_key, mime_type, file_size, sha256, source_field, thumbnail_key, thumbnail_status, width, height',
      );

      await deleteObject(s.s3, s.bucket, docs1.get(deletedDoc)!.s3_key!);
      await deleteObject(s.s3, s.bucket, imgs1.get(deletedImg)!.s3_key!);
      // Other bytes of the same size under the key: a listing shows the size the ledger recorded, not its ETag.
      const overwritten = docs1.get(overwrittenDoc)!;
      await putObject(s.s3, s.bucket, overwritten.s3_key!, 'x'.repeat(Number(overwritten.bytes)));

      const second = await run(s);
      // Every object holds its source's bytes again (assertFilesLanded HEADs each against the source's SHA-256).
      await assertFilesLanded(s, second.runId);
      const spent = await spentByTable(s, second.runId);
      assert.equal(spent.API_Docs, Number(docs1.get(deletedDoc)!.bytes) + Number(overwritten.bytes), 'two documents');
      assert.equal(spent.API_Images, Number(imgs1.get(deletedImg)!.bytes), 'one image downloaded again');
      const docs2 = await ledger(s, second.runId, 'API_Docs');
      const imgs2 = await ledger(s, second.runId, 'API_Images');
      assert.equal(second.docs.relinked, storedIds(docs2).length - 2, 'documents: every other file relinked');
      assert.equal(second.images.relinked, storedIds(imgs2).length - 1, 'images: every other file relinked');
      // The relinked files' rows are as the first run wrote them (name, type, container, thumbnail).
      assert.deepEqual(
        await rowsOf('documents', 's3_key, original_name, mime_type, file_size, sha256'),
        docRows1,
        'documents rows',
      );
      assert.deepEqual(
        await rowsOf(
          'images',
          's3_key, mime_type, file_size, sha256, source_field, thumbnail_key, thumbnail_status, width, height',
        ),
        imgRows1,
        'images rows',
      );
    },
  );

  test(
    'a run that replaced containers and then failed rolls back to the old objects exactly; the next run replaces them',
    { timeout: 600_000 },
    async () => {
      const first = await run(s);
      const docTruth = expectedDocuments(await truthContainers(s, 'API_Docs'));
      const imgTruth = expectedImages(await truthContainers(s, 'API_Images'));
      const docs1 = await ledger(s, first.runId, 'API_Docs');
      const imgs1 = await ledger(s, first.runId, 'API_Images');
      const imported = [...docTruth.values()].filter((c) => c.state === 'ok' && docs1.get(c.id)?.state === 'imported');
      const [doc, other] = imported;
      assert.ok(doc && other, 'two imported documents');
      const [imgId, img] = [...imgTruth].find(([id, e]) => e.pick && imgs1.get(id)?.state === 'imported')!;
      const docRow = await fileRow(s, 'documents', doc.id);
      const imgRow = await fileRow(s, 'images', imgId);
      await assertRowObject(s, docRow, doc.sha256!, 'document before');
      await assertRowObject(s, imgRow, img.pick!.sha256!, 'image before');
      replaceContainer(s, 'API_Docs', doc.id, 'Doc');
      replaceContainer(s, 'API_Images', imgId, img.pick!.field);
      const newDoc = expectedDocuments(await truthContainers(s, 'API_Docs')).get(doc.id)!;
      const newImg = expectedImages(await truthContainers(s, 'API_Images')).get(imgId)!.pick!;
      const bucketBefore = await bucketState(s);

      // A fault only the validation phase sees, after both files phases: once the images phase writes, the ledger
      // entry of another document (its phase's reconciliation passed) records a SHA-256 its object does not have, and
      // no ETag, so validation HEADs that object and finds it differs.
      const failing = `run-${randomUUID()}`;
      await s.pool.query(`
        create or replace function misrecord_document() returns trigger language plpgsql as $$
        begin
          if new.run_id = '${failing}' and new.source_table = 'API_Images' then
            update import_ledger set sha256 = encode(sha256(convert_to(sha256, 'UTF8')), 'hex'), object_etag = null
             where run_id = new.run_id and source_table = 'API_Docs' and filemaker_id = '${other.id}'
               and object_etag is not null;
          end if;
          return null;
        end $$;
        create trigger misrecord_document after insert or update on import_ledger
          for each row execute function misrecord_document();`);
      try {
        await assert.rejects(run(s, {}, failing), (err) => {
          assert.ok(err instanceof WorkflowFailedError, 'the workflow failed');
          assert.equal((err.cause as ApplicationFailure | undefined)?.type, 'RUN_ROLLED_BACK', 'after a rollback');
          return true;
        });
      } finally {
        await s.pool.query('drop trigger misrecord_document on import_ledger');
      }
      const status = await s.pool.query<{ status: string }>('select status from reimport_runs where run_id = $1', [
        failing,
      ]);
      assert.equal(status.rows[0]!.status, 'rolled_back');
      // The failed run had downloaded both replacements before it failed.
      const docs2 = await ledger(s, failing, 'API_Docs');
      const imgs2 = await ledger(s, failing, 'API_Images');
      assert.equal(docs2.get(doc.id)?.sha256, newDoc.sha256, 'run 2 stored the new document');
      assert.equal(imgs2.get(imgId)?.sha256, newImg.sha256, 'run 2 stored the new image');

      // Rolled back exactly: the restored rows hold the old bytes' SHA-256 and size, and so do their objects; the
      // run's own objects are gone and no object that was there before changed.
      assert.deepEqual(await fileRow(s, 'documents', doc.id), docRow, 'the document row restored');
      assert.deepEqual(await fileRow(s, 'images', imgId), imgRow, 'the image row restored');
      await assertRowObject(s, docRow, doc.sha256!, 'document after the rollback');
      await assertRowObject(s, imgRow, img.pick!.sha256!, 'image after the rollback');
      assert.equal(await headObject(s.s3, s.bucket, docs2.get(doc.id)!.s3_key!), undefined, "run 2's document gone");
      assert.equal(await headObject(s.s3, s.bucket, imgs2.get(imgId)!.s3_key!), undefined, "run 2's image gone");
      assert.deepEqual(await bucketState(s), bucketBefore, 'every object as it was before run 2');

      // The next run downloads the replacements again, to the keys run 2 used, and ends with the new bytes.
      const third = await run(s);
      await assertFilesLanded(s, third.runId);
      assert.equal(third.docs.replaced, 1, 'documents: the replaced file counted');
      assert.equal(third.images.replaced, 1, 'images: the replaced file counted');
      const docs3 = await ledger(s, third.runId, 'API_Docs');
      const imgs3 = await ledger(s, third.runId, 'API_Images');
      const docRow3 = await fileRow(s, 'documents', doc.id);
      const imgRow3 = await fileRow(s, 'images', imgId);
      await assertRowObject(s, docRow3, newDoc.sha256!, 'document after run 3');
      await assertRowObject(s, imgRow3, newImg.sha256!, 'image after run 3');
      assert.equal(docRow3.s3_key, docs2.get(doc.id)!.s3_key, 'the same key as the rolled-back run: deterministic');
      assert.equal(imgRow3.s3_key, imgs2.get(imgId)!.s3_key, 'the same image key as the rolled-back run');
      assert.notEqual(docRow3.s3_key, docRow.s3_key, 'a key of its own for the replaced document');
      // The replaced image's thumbnail follows its image's key; the old thumbnail stays with the old image.
      const stem = (key: string) => posix.basename(key).replace(/\.[^.]+$/, '');
      assert.equal(stem(imgRow3.thumbnail_key!), stem(imgRow3.s3_key), 'the thumbnail is named as its image');
      assert.notEqual(imgRow3.thumbnail_key, imgRow.thumbnail_key, 'a thumbnail of its own');
      assert.ok(await headObject(s.s3, s.bucket, imgRow3.thumbnail_key!), 'the new thumbnail is stored');
      // The objects the tables no longer refer to are left as they were (for a retention policy to remove).
      assert.equal((await headObject(s.s3, s.bucket, docRow.s3_key))?.sha256, doc.sha256, 'the old document kept');
      assert.ok(await headObject(s.s3, s.bucket, imgRow.thumbnail_key!), 'the old thumbnail kept');
      // Every other file keeps its key.
      for (const [id, l] of docs1) {
        if (id !== doc.id && l.s3_key) assert.equal(docs3.get(id)?.s3_key, l.s3_key, `document ${id} keeps its key`);
      }
      for (const [id, l] of imgs1) {
        if (id !== imgId && l.s3_key) assert.equal(imgs3.get(id)?.s3_key, l.s3_key, `image ${id} keeps its key`);
      }
    },
  );
});
