// The container probe that the run's pre-flight and `doctor` share, against a fake FileMaker client: which samples
// it passes over, what makes `$value` unusable, which errors it throws, and what the transfer-quota hook is asked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { FileMakerError } from '../../src/errors';
import { FM_ERRORS, type ContainerDownload, type FileMakerRecord } from '../../src/filemaker';
import { SOURCE_TABLES } from '../../src/domain/tables';
import {
  SAMPLE_MAX_BYTES,
  probeContainers,
  sampleTable,
  type ProbeClient,
  type ProbeReserve,
  type TableSample,
} from '../../src/activities/container-probe';

const DOCS = SOURCE_TABLES.API_Docs;
const IMAGES = SOURCE_TABLES.API_Images;

type Answer = Buffer | { announced: number } | 'break' | FileMakerError;

interface Opened {
  path: 'dataapi' | 'odata';
  recordId: string;
  body: Readable;
}

function record(recordId: string, fieldData: Record<string, unknown> = { Doc: 'https://fm/container' }) {
  return { recordId, modId: '1', fieldData, portalData: {}, portalDataInfo: [] } as FileMakerRecord;
}

function download(answer: Exclude<Answer, FileMakerError>): ContainerDownload {
  let received = 0;
  const body =
    answer === 'break'
      ? new Readable({
          read() {
            received += 3;
            this.push(Buffer.from('abc'));
            this.destroy(new Error('socket hang up'));
          },
        })
      : Readable.from(Buffer.isBuffer(answer) ? [answer] : [Buffer.alloc(16)]);
  if (Buffer.isBuffer(answer)) body.on('data', (c: Buffer) => (received += c.length));
  return {
    body,
    received: () => received,
    contentType: 'application/pdf',
    contentLength: Buffer.isBuffer(answer) ? answer.length : answer === 'break' ? 1000 : answer.announced,
    filename: undefined,
    status: 200,
  };
}

/** A client whose container reads answer from the tables given, per record id. */
function fakeClient(answers: { dataapi: Record<string, Answer>; odata: Record<string, Answer> }, opened: Opened[]) {
  const open = (path: 'dataapi' | 'odata', recordId: string) => {
    const answer = answers[path][recordId];
    if (answer === undefined) throw new Error(`unexpected ${path} read of ${recordId}`);
    if (answer instanceof FileMakerError) throw answer;
    const dl = download(answer);
    opened.push({ path, recordId, body: dl.body });
    return dl;
  };
  const fm: Pick<ProbeClient, 'downloadRecordContainer' | 'downloadODataContainer'> = {
    downloadRecordContainer: (_layout, recordId) =>
      Promise.resolve({ ...open('dataapi', recordId), record: record(recordId) }),
    downloadODataContainer: (_table, key) =>
      Promise.resolve(open('odata', typeof key === 'object' ? key.rowId : String(key))),
  };
  return fm as ProbeClient;
}

const sample = (table: typeof DOCS, ids: string[]): TableSample => ({
  table,
  records: ids.map((id) => record(id)),
  withFile: ids.map((id) => ({ record: record(id), field: table.containerFields[0]! })),
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

void test('the probe passes over a sample larger than the cap and a damaged one, and decides on the next', async () => {
  const pdf = Buffer.from('%PDF-1.7 the container');
  const opened: Opened[] = [];
  const fm = fakeClient(
    { dataapi: { '1': { announced: SAMPLE_MAX_BYTES + 1 }, '2': 'break', '3': pdf }, odata: { '3': pdf } },
    opened,
  );
  const reserved: { path: string; announcedBytes: number | undefined }[] = [];
  const settled: number[] = [];
  const reserve: ProbeReserve = ({ path, announcedBytes }) => {
    reserved.push({ path, announcedBytes });
    return Promise.resolve((bytes: number) => Promise.resolve(void settled.push(bytes)));
  };
  const probe = await probeContainers(fm, [sample(DOCS, ['1', '2', '3'])], { reserve });
  assert.equal(probe.path, 'odata');
  assert.equal(probe.reason, 'PROBED');
  const [docs] = probe.tables;
  assert.ok(docs?.outcome === 'usable');
  assert.equal(docs.dataApi.size, pdf.length);
  assert.equal(docs.dataApi.sha256, sha(pdf));
  // The large sample was never read nor reserved; the damaged one was reserved and settled at what it sent.
  assert.ok(opened[0]!.body.destroyed);
  assert.deepEqual(reserved, [
    { path: 'dataapi', announcedBytes: 1000 },
    { path: 'dataapi', announcedBytes: pdf.length },
    { path: 'odata', announcedBytes: pdf.length },
  ]);
  assert.deepEqual(settled, [3, pdf.length, pdf.length]);
});

void test('the probe passes over a zero-byte sample, which $value cannot tell from an unusable answer', async () => {
  const pdf = Buffer.from('%PDF-1.7 the container');
  // No `$value` answer for the zero-byte sample: reading it would throw.
  const fm = fakeClient({ dataapi: { '1': Buffer.alloc(0), '2': pdf }, odata: { '2': pdf } }, []);
  const probe = await probeContainers(fm, [sample(DOCS, ['1', '2'])]);
  assert.equal(probe.path, 'odata');
  assert.equal(probe.reason, 'PROBED');
  assert.equal(probe.tables[0]?.outcome, 'usable');
});

void test('$value unusable: other bytes are a mismatch, a suspect answer keeps its code, the first such table decides', async () => {
  const pdf = Buffer.from('%PDF-1.7 the container');
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
  const suspect = new FileMakerError('not the container', undefined, 200, { code: FM_ERRORS.CONTAINER_SUSPECT });

  const mismatch = await probeContainers(
    fakeClient({ dataapi: { '1': pdf }, odata: { '1': Buffer.from('scan.pdf') } }, []),
    [sample(DOCS, ['1']), sample(IMAGES, ['9'])], // images are not read once documents decided
  );
  assert.equal(mismatch.path, 'dataapi');
  assert.equal(mismatch.reason, 'ODATA_VALUE_MISMATCH');
  assert.equal(mismatch.tables.length, 1);

  const suspected = await probeContainers(
    fakeClient({ dataapi: { '1': pdf, '9': jpeg }, odata: { '1': pdf, '9': suspect } }, []),
    [sample(DOCS, ['1']), sample(IMAGES, ['9'])],
  );
  assert.equal(suspected.path, 'dataapi');
  assert.equal(suspected.reason, FM_ERRORS.CONTAINER_SUSPECT);
  assert.deepEqual(
    suspected.tables.map((t) => t.outcome),
    ['usable', 'unusable'],
  );
});

void test('the probe throws an error about the session instead of calling $value unusable', async () => {
  const pdf = Buffer.from('%PDF-1.7');
  const expired = new FileMakerError('session', '952', 401, { code: FM_ERRORS.SESSION_INVALID });
  await assert.rejects(
    probeContainers(fakeClient({ dataapi: { '1': pdf }, odata: { '1': expired } }, []), [sample(DOCS, ['1'])]),
    (err: FileMakerError) => err.code === FM_ERRORS.SESSION_INVALID,
  );
});

void test('a read the budget has no room for is not made: the table is not probed', async () => {
  const opened: Opened[] = [];
  const pdf = Buffer.from('%PDF-1.7');
  const probe = await probeContainers(fakeClient({ dataapi: { '1': pdf }, odata: {} }, opened), [sample(DOCS, ['1'])], {
    reserve: () => Promise.resolve(undefined),
  });
  assert.equal(probe.path, 'odata');
  assert.equal(probe.reason, 'NOT_PROBED');
  assert.deepEqual(probe.tables[0], { table: 'API_Docs', outcome: 'not-probed', passedOver: ['no budget'] });
  assert.ok(opened[0]!.body.destroyed);
});

void test('the sample: the first 20 records of the manifest, a container of only blanks holds no file', async () => {
  const ids = Array.from({ length: 25 }, (_, i) => String(i + 1));
  let asked: readonly string[] = [];
  const fm = {
    async *manifest() {
      for (const id of ids) yield { id, rowId: id, rowModId: '1' };
    },
    findByIds: (_layout: string, _idField: string, want: readonly string[]) => {
      asked = want;
      return Promise.resolve(
        want.map((id) => record(id, { Doc: id === '2' ? '  ' : id === '3' ? 'https://fm/c' : '' })),
      );
    },
  } as unknown as ProbeClient;
  const s = await sampleTable(fm, DOCS);
  assert.deepEqual(asked, ids.slice(0, 20));
  assert.equal(s.records.length, 20);
  assert.deepEqual(
    s.withFile.map((w) => [w.record.recordId, w.field]),
    [['3', 'Doc']],
  );
});
