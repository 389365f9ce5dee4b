/**
 * Containers whose declared kind or size misleads, end to end on the real dev server, PostgreSQL, MinIO and the
 * FileMaker simulator (tiny preset): a PDF that FileMaker serves as `image/jpeg` and a JPEG served as `image/png` are
 * stored with their bytes' type and extension; a zero-byte document is skipped EMPTY_CONTAINER and a zero-byte best
 * image gives way to the next container of the waterfall, with no zero-byte object in S3; an image's `Name of file`
 * with a path is stored as its base name.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SimRecord, SimTable } from '../../sim/dataset';
import { KEY_PREFIX } from '../../src/domain/keys';
import { inventory } from '../../src/s3';
import type { RunProgress } from '../../src/workflows/messages';
import { WATERFALL, assertFilesLanded, completedRun, setup, type Setup } from '../helpers/files';

/** The ledger's form of a record's id. */
const idOf = (r: SimRecord) => String(r.fields.id).trim().toLowerCase();

/**
 * Changes the last record of `table` that `fits` and no earlier pick took (the pre-flight's probe samples the first
 * records: it reads none of these); answers its id.
 */
function change(table: SimTable, taken: Set<number>, fits: (r: SimRecord) => boolean, edit: (r: SimRecord) => void) {
  const found = table.records.reverse().find((r) => !taken.has(r.index) && fits(r));
  assert.ok(found, `${table.def.name} has a record to change`);
  taken.add(found.index);
  const rec = table.mutable(found.index)!;
  edit(rec);
  table.written(rec);
  return idOf(rec);
}

describe('files whose containers mislead', () => {
  let s: Setup;
  let picks: Record<'pdfAsJpeg' | 'zeroDoc' | 'jpegAsPng' | 'zeroBest' | 'allZero' | 'pathName', string>;
  let fallbackField: string;
  /** Zero-byte image containers the run meets: the best of one image, every one of another. */
  let zeroImageContainers: number;
  before(async () => {
    s = await setup({ preset: 'tiny', seed: 23, sizeScale: 0.1 });
    const docs = s.sim.dataset.table('API_Docs')!;
    const images = s.sim.dataset.table('API_Images')!;
    const takenDocs = new Set<number>();
    const takenImages = new Set<number>();
    const doc = (r: SimRecord) => r.containers.Doc!;
    const renditions = (r: SimRecord) => WATERFALL.map((f) => r.containers[f]!).filter((c) => c.state !== 'empty');
    // The first rendition the waterfall meets is a good one, and so is a later one.
    const goodBest = (r: SimRecord) => renditions(r)[0]?.state === 'ok' && renditions(r)[1]?.state === 'ok';
    const best = (r: SimRecord) => WATERFALL.find((f) => r.containers[f]!.state !== 'empty')!;
    fallbackField = '';
    picks = {
      pdfAsJpeg: change(
        docs,
        takenDocs,
        (r) => doc(r).state === 'ok' && doc(r).kind === 'pdf',
        (r) => (doc(r).declaredKind = 'jpg'),
      ),
      zeroDoc: change(
        docs,
        takenDocs,
        (r) => doc(r).state === 'ok',
        (r) => (doc(r).size = 0),
      ),
      jpegAsPng: change(
        images,
        takenImages,
        (r) => goodBest(r) && r.containers[best(r)]!.kind === 'jpg',
        (r) => (r.containers[best(r)]!.declaredKind = 'png'),
      ),
      zeroBest: change(images, takenImages, goodBest, (r) => {
        const [first, next] = WATERFALL.filter((f) => r.containers[f]!.state !== 'empty');
        r.containers[first!]!.size = 0;
        fallbackField = next!;
      }),
      allZero: change(
        images,
        takenImages,
        (r) => renditions(r).length > 0 && renditions(r).every((c) => c.state === 'ok'),
        (r) => {
          zeroImageContainers = 1 + renditions(r).length;
          renditions(r).forEach((c) => (c.size = 0));
        },
      ),
      pathName: change(images, takenImages, goodBest, (r) => (r.fields['Name of file'] = '../../etc/passwd')),
    };
  });
  after(async () => {
    await s?.close();
  });

  test(
    "bytes decide the type and extension; zero bytes count as empty; an image's name is its base name",
    { timeout: 300_000 },
    async () => {
      const { runId, handle } = await completedRun(s);
      // Against the truth (the bytes' type, zero-byte containers as empty): every file, these among them.
      await assertFilesLanded(s, runId);

      const docs = new Map(
        (
          await s.pool.query<{ filemaker_id: string; s3_key: string | null; mime_type: string | null; e: string }>(
            'select filemaker_id, s3_key, mime_type, import_error as e from documents',
          )
        ).rows.map((r) => [r.filemaker_id, r]),
      );
      const pdf = docs.get(picks.pdfAsJpeg);
      assert.equal(pdf?.mime_type, 'application/pdf', 'a PDF served as image/jpeg is a PDF');
      assert.match(pdf?.s3_key ?? '', /\.pdf$/, 'under .pdf');
      const zero = docs.get(picks.zeroDoc);
      assert.equal(zero?.e, 'EMPTY_CONTAINER', 'a zero-byte document is an empty container');
      assert.equal(zero?.s3_key, null, 'with no object');

      const images = new Map(
        (
          await s.pool.query<{ filemaker_id: string; s3_key: string; mime_type: string; f: string; n: string | null }>(
            'select filemaker_id, s3_key, mime_type, source_field as f, original_name as n from images',
          )
        ).rows.map((r) => [r.filemaker_id, r]),
      );
      const jpeg = images.get(picks.jpegAsPng);
      assert.equal(jpeg?.mime_type, 'image/jpeg', 'a JPEG served as image/png is a JPEG');
      assert.match(jpeg?.s3_key ?? '', /\.jpg$/, 'under .jpg');
      assert.equal(images.get(picks.zeroBest)?.f, fallbackField, 'a zero-byte best image gives way to the next');
      assert.equal(images.get(picks.allZero), undefined, 'an image of zero-byte containers only is not imported');
      const l = await s.pool.query<{ state: string; reason_code: string }>(
        `select state, reason_code from import_ledger where run_id = $1 and source_table = 'API_Images'
            and filemaker_id = $2`,
        [runId, picks.allZero],
      );
      assert.deepEqual({ ...l.rows[0] }, { state: 'skipped', reason_code: 'EMPTY_CONTAINER' }, 'skipped as empty');
      assert.equal(images.get(picks.pathName)?.n, 'passwd', "an image's original name is its base name");

      const empty: string[] = [];
      for await (const o of inventory(s.s3, s.bucket, `${KEY_PREFIX}/`)) if (o.size === 0) empty.push(o.key);
      assert.deepEqual(empty, [], 'no zero-byte object in S3');
      const progress = await handle.query<RunProgress>('progress');
      const reasons = (phase: string) => progress.phases.find((p) => p.phase === phase)?.byReason ?? {};
      assert.equal(reasons('documents').CONTENT_TYPE_CORRECTED, 1, 'documents: one type corrected');
      assert.equal(reasons('documents').ZERO_BYTE_CONTAINER, 1, 'documents: one zero-byte container');
      assert.equal(reasons('images').CONTENT_TYPE_CORRECTED, 1, 'images: one type corrected');
      assert.equal(reasons('images').ZERO_BYTE_CONTAINER, zeroImageContainers, 'images: zero-byte containers');
    },
  );
});
