import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { ExportSourceError, openExportSource, type ExportRow, type ExportSourceOptions } from '../../src/export';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const BOM = '\ufeff';
const HEADER = 'recid,id_Contact,date,Type';

/** A folder holding `files` (name → content) and nothing else. */
async function exportDir(files: Record<string, string | Buffer>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fm-export-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

async function rowsOf(dir: string, opts: ExportSourceOptions = {}): Promise<ExportRow[]> {
  const source = await openExportSource({ kind: 'folder', path: dir }, opts);
  const out: ExportRow[] = [];
  for await (const r of source.rows()) out.push(r);
  return out;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function openError(dir: string, opts: ExportSourceOptions = {}): Promise<ExportSourceError> {
  try {
    await rowsOf(dir, opts);
  } catch (err) {
    assert.ok(err instanceof ExportSourceError, `an ExportSourceError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the export to be refused');
}

describe('export source (folder)', () => {
  test('reads the CSV as FileMaker Pro writes it: BOM, CRLF, padded header names, quoted cells', async () => {
    const dir = await exportDir({
      'images_metadata.csv':
        `${BOM} recid , id_Contact ,date, Type \r\n` +
        '10001,C-1,06/20/2024,Left Dorsal\r\n' +
        '10002,"C-2","2024-06-21","Right, ""Plantar""\r\nview"\r\n',
      '10001.jpg': 'jpeg-bytes',
      '10002.PNG': 'png-bytes',
    });
    const rows = await rowsOf(dir);
    assert.deepEqual(rows, [
      {
        line: 2,
        recid: '10001',
        fields: { recid: '10001', id_Contact: 'C-1', date: '06/20/2024', Type: 'Left Dorsal' },
        file: { name: '10001.jpg', ext: 'jpg', size: 10 },
        findings: [],
      },
      {
        line: 3,
        recid: '10002',
        fields: { recid: '10002', id_Contact: 'C-2', date: '2024-06-21', Type: 'Right, "Plantar"\r\nview' },
        file: { name: '10002.PNG', ext: 'png', size: 9 },
        findings: [],
      },
    ]);
  });

  test('column order follows the header; extra columns are ignored; no BOM and LF endings are fine', async () => {
    const dir = await exportDir({ 'x.CSV': 'Type,extra,DATE,recid,id_contact\n"Left Dorsal",z,2024-01-02,7,C\n' });
    const [row] = await rowsOf(dir);
    assert.deepEqual(row?.fields, { recid: '7', id_Contact: 'C', date: '2024-01-02', Type: 'Left Dorsal' });
    assert.equal(row?.file, undefined, 'no file for recid 7');
    assert.equal(row?.malformed, undefined, 'a good row');
  });

  test('malformed rows carry EXPORT_ROW_MALFORMED and their line; the stream goes on to the end', async () => {
    const dir = await exportDir({
      'm.csv':
        `${BOM}${HEADER}\r\n` +
        '10001,C,2024-01-01,A,EXTRA\r\n' + // line 2: too many cells
        '10002,C\r\n' + // line 3: too few
        '0,C,d,T\r\n' + // line 4: zero
        '-5,C,d,T\r\n' + // line 5
        '1.5,C,d,T\r\n' + // line 6
        ',C,d,T\r\n' + // line 7: empty recid
        '00012,C,d,T\r\n' + // line 8: leading zeros
        '"10009"x,C,d,T\r\n' + // line 9: text after a closing quote
        '10010,"multi\r\nline",d,T\r\n' + // lines 10-11: fine
        '99999999999999999999,C,d,T\r\n' + // line 12: beyond a safe integer
        '10013,C,d,T\r\n', // line 13: fine
      '10001.jpg': 'a',
      '12.jpg': 'b',
    });
    const rows = await rowsOf(dir);
    const summary = rows.map((r) => [r.line, r.malformed?.reason ?? 'ok']);
    assert.deepEqual(summary, [
      [2, 'expected 4 cells, found 5'],
      [3, 'expected 4 cells, found 2'],
      [4, 'recid is not a positive integer'],
      [5, 'recid is not a positive integer'],
      [6, 'recid is not a positive integer'],
      [7, 'recid is empty'],
      [8, 'recid is not a positive integer'],
      [9, 'text after a closing quote in cell 1'],
      [10, 'ok'],
      [12, 'recid is not a positive integer'],
      [13, 'ok'],
    ]);
    for (const r of rows.filter((x) => x.malformed)) assert.equal(r.malformed?.code, 'EXPORT_ROW_MALFORMED');
    assert.deepEqual(rows[1]?.fields, { recid: '10002', id_Contact: 'C', date: '', Type: '' }, 'missing cells are ""');
    assert.equal(rows[0]?.file?.name, '10001.jpg', 'a malformed row with a good recid still claims its file');
    assert.equal(rows[6]?.file, undefined, '00012 does not match 12.jpg');
  });

  test('hostile cell values come back raw and never break the reader', async () => {
    const hostile = [
      '=HYPERLINK("http://x")',
      '../../etc/passwd',
      'NUL\0inside',
      'Zoë 🦶 Ωmega',
      '<script>alert(1)</script>',
      '\u202eRTL override',
      'x'.repeat(5000),
    ];
    const csvCell = (s: string) => `"${s.replace(/"/g, '""')}"`;
    const body = hostile.map((h, i) => [String(100 + i), csvCell(h), '2024-01-01', csvCell(h)].join(',')).join('\r\n');
    const dir = await exportDir({ 'h.csv': `${BOM}${HEADER}\r\n${body}\r\n` });
    const rows = await rowsOf(dir);
    assert.equal(rows.length, hostile.length, 'one row per line');
    rows.forEach((r, i) => {
      assert.equal(r.malformed, undefined, `row ${i} is well-formed`);
      assert.equal(r.fields.id_Contact, hostile[i], `row ${i} id_Contact is raw`);
      assert.equal(r.fields.Type, hostile[i], `row ${i} Type is raw`);
    });
  });

  test('several files for one recid: one is chosen the same way every time, with a finding', async () => {
    const dir = await exportDir({
      'm.csv': `${HEADER}\r\n5,C,d,T\r\n6,C,d,T\r\n6,C,d,T\r\n8,C,d,T\r\n`,
      '5.png': 'small',
      '5.JPG': 'larger-file',
      '5.txt': 'the very largest of them',
      '6.jpg': 'x',
      '8.jpg': '',
    });
    const rows = await rowsOf(dir);
    assert.equal(rows[0]?.file?.name, '5.JPG', 'image extension, then the largest');
    assert.deepEqual(rows[0]?.findings, [
      { code: 'EXPORT_FILE_AMBIGUOUS', message: '3 files for recid 5: chose 5.JPG over 5.png, 5.txt' },
    ]);
    assert.deepEqual(
      rows.slice(1, 3).map((r) => r.findings),
      [
        [{ code: 'EXPORT_RECID_DUPLICATE', message: 'recid 6 is on 2 rows' }],
        [{ code: 'EXPORT_RECID_DUPLICATE', message: 'recid 6 is on 2 rows' }],
      ],
      'both rows of a duplicated recid are flagged',
    );
    assert.deepEqual(rows[3]?.findings, [{ code: 'EXPORT_FILE_EMPTY', message: '8.jpg is empty' }]);
  });

  test('orphans: files without a row and names that are not {recid}.{ext}; subfolders and symlinks are not listed', async () => {
    const outside = await exportDir({ 'secret.jpg': 'not part of the export' });
    const dir = await exportDir({
      'm.csv': `${HEADER}\r\n1,C,d,T\r\n`,
      '1.jpg': 'a',
      '2.jpg': 'b',
      '0003.jpg': 'c',
      '._1.jpg': 'appledouble',
      'notes.txt': 'n',
    });
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', '4.jpg'), 'nested');
    await symlink(join(outside, 'secret.jpg'), join(dir, '5.jpg'));
    const source = await openExportSource({ kind: 'folder', path: dir });
    assert.deepEqual(source.orphans(), ['._1.jpg', '0003.jpg', '2.jpg', 'notes.txt']);
    assert.deepEqual(source.stats, { rows: 1, malformedRows: 0, files: 5, rowsWithFile: 1, orphans: 4 });
    assert.deepEqual(source.csv, { name: 'm.csv', size: Buffer.byteLength(`${HEADER}\r\n1,C,d,T\r\n`) });
  });

  test('open() streams a listed file and refuses anything else, including path tricks', async () => {
    const bytes = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 1, 2, 3]);
    // The export is a subfolder, so `../x.jpg` names a real file just outside it.
    const parent = await exportDir({ 'x.jpg': 'outside' });
    const dir = join(parent, 'export');
    await mkdir(dir);
    await writeFile(join(dir, 'm.csv'), `${HEADER}\r\n1,C,d,T\r\n`);
    await writeFile(join(dir, '1.jpg'), bytes);
    const source = await openExportSource({ kind: 'folder', path: dir });
    let file;
    for await (const r of source.rows()) file = r.file;
    assert.ok(file, 'row 1 has a file');
    const read = await readAll(await source.open(file));
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(read), sha(bytes), 'the bytes read back are the file');
    for (const name of ['../x.jpg', '/etc/passwd', 'sub/4.jpg', '..', '2.jpg', 'm.csv']) {
      await assert.rejects(
        source.open({ name, ext: 'jpg', size: 7 }),
        (e: unknown) => e instanceof ExportSourceError && e.problem === 'FILE_UNKNOWN',
        `${name} is refused`,
      );
    }
  });

  test('a file replaced after the listing is refused rather than read', async () => {
    const dir = await exportDir({ 'm.csv': `${HEADER}\r\n1,C,d,T\r\n`, '1.jpg': 'original' });
    const source = await openExportSource({ kind: 'folder', path: dir });
    await writeFile(join(dir, '1.jpg'), 'replaced with something longer');
    await assert.rejects(
      source.open({ name: '1.jpg', ext: 'jpg', size: 8 }),
      (e: unknown) => e instanceof ExportSourceError && e.problem === 'SOURCE_CHANGED',
      'the changed file is refused',
    );
  });

  test('no CSV, several CSVs, a missing column or an empty CSV are clear errors', async () => {
    const none = await openError(await exportDir({ '1.jpg': 'a' }));
    assert.equal(none.problem, 'CSV_MISSING');
    assert.match(none.message, /no \*\.csv file in the export folder \//);

    const two = await openError(await exportDir({ 'a.csv': HEADER, 'B.CSV': HEADER }));
    assert.equal(two.problem, 'CSV_AMBIGUOUS');
    assert.match(two.message, /2 \*\.csv files .*\(B\.CSV, a\.csv\)/);

    const missing = await openError(await exportDir({ 'a.csv': 'recid,date\r\n1,x\r\n' }));
    assert.equal(missing.problem, 'CSV_HEADER_INVALID');
    assert.match(missing.message, /lacks the column\(s\) id_Contact, Type/);

    const twice = await openError(await exportDir({ 'a.csv': 'recid,id_Contact,date,Type,RECID\r\n' }));
    assert.equal(twice.problem, 'CSV_HEADER_INVALID', 'recid and RECID: which one is meant is a guess');
    assert.match(twice.message, /has the column recid 2 times/);
  });

  test('an empty CSV has no header', async () => {
    const empty = await openError(await exportDir({ 'a.csv': `${BOM}\r\n` }));
    assert.equal(empty.problem, 'CSV_HEADER_INVALID');
    assert.match(empty.message, /empty/);
  });

  test('a CSV over the size limit, a row over the length limit and non-UTF-8 bytes are clear errors', async () => {
    const big = await openError(await exportDir({ 'a.csv': `${HEADER}\r\n${'1,C,d,T\r\n'.repeat(200)}` }), {
      maxCsvBytes: 1000,
    });
    assert.equal(big.problem, 'CSV_TOO_LARGE');
    assert.match(big.message, /larger than 1000 bytes/);

    const long = await openError(
      await exportDir({ 'a.csv': `${HEADER}\r\n1,C,d,T\r\n2,C,d,"unclosed\r\n${'3,C,d,T\r\n'.repeat(50)}` }),
      { maxRowChars: 200 },
    );
    assert.equal(long.problem, 'CSV_ROW_TOO_LONG');
    assert.match(long.message, /row starting at line 3 is longer than 200 characters/);

    const latin1 = await openError(
      await exportDir({
        'a.csv': Buffer.concat([Buffer.from(`${HEADER}\r\n1,C,d,`), Buffer.from([0xe9]), Buffer.from('\r\n')]),
      }),
    );
    assert.equal(latin1.problem, 'CSV_ENCODING');
  });

  test('a missing folder or a relative path is refused with the location in the message', async () => {
    await assert.rejects(
      openExportSource({ kind: 'folder', path: '/nonexistent/fm-export-test' }),
      (e: unknown) =>
        e instanceof ExportSourceError && e.problem === 'LOCATION_NOT_FOUND' && /fm-export-test/.test(e.message),
      'a missing folder',
    );
    await assert.rejects(
      openExportSource({ kind: 'folder', path: 'relative/dir' }),
      (e: unknown) => e instanceof ExportSourceError && e.problem === 'LOCATION_INVALID',
      'a relative path',
    );
    await assert.rejects(
      openExportSource({ kind: 's3', bucket: 'some-bucket', prefix: 'x' }),
      (e: unknown) => e instanceof ExportSourceError && e.problem === 'LOCATION_INVALID',
      'S3 without a client',
    );
  });

  test('breaking out of rows() early releases the CSV and a second pass starts again at the top', async () => {
    const dir = await exportDir({ 'm.csv': `${HEADER}\r\n1,C,d,T\r\n2,C,d,T\r\n3,C,d,T\r\n` });
    const source = await openExportSource({ kind: 'folder', path: dir });
    for await (const r of source.rows()) {
      assert.equal(r.recid, '1', 'first row first');
      break;
    }
    const all: string[] = [];
    for await (const r of source.rows()) all.push(r.recid);
    assert.deepEqual(all, ['1', '2', '3']);
  });
});
