import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CsvTokenizer,
  ExportSourceError,
  compareCandidates,
  exportLocationSchema,
  isRecid,
  parseExportFileName,
  type CsvRecord,
  type ExportFile,
} from '../../src/export';

function tokenize(text: string, maxRecordChars = 10_000): CsvRecord[] {
  const t = new CsvTokenizer({ maxRecordChars });
  return [...t.push(text), ...t.end()];
}

/** The same text fed in pieces of `n` characters (every split position, CRLF cut in half included). */
function tokenizeInPieces(text: string, n: number): CsvRecord[] {
  const t = new CsvTokenizer({ maxRecordChars: 10_000 });
  const out: CsvRecord[] = [];
  for (let i = 0; i < text.length; i += n) out.push(...t.push(text.slice(i, i + n)));
  return [...out, ...t.end()];
}

describe('export CSV tokenizer', () => {
  test('strips the BOM and splits CRLF records; the header is line 1', () => {
    const recs = tokenize('\ufeffrecid,id_Contact\r\n10001,ABC\r\n10002,DEF\r\n');
    assert.deepEqual(recs, [
      { line: 1, cells: ['recid', 'id_Contact'] },
      { line: 2, cells: ['10001', 'ABC'] },
      { line: 3, cells: ['10002', 'DEF'] },
    ]);
  });

  test('a BOM is only stripped at the very start, not inside a cell', () => {
    const recs = tokenize('\ufeffa\r\nx\ufeffy\r\n');
    assert.equal(recs[1]?.cells[0], 'x\ufeffy', 'a BOM inside the data is data');
  });

  test('quoted cells keep commas, doubled quotes and line breaks; line numbers count CRLF inside cells once', () => {
    const text = 'a,b\r\n1,"Left, ""big"" toe\r\nsecond line"\r\n2,"x"\r\n\r\n3,y\r\n';
    const recs = tokenize(text);
    assert.deepEqual(recs, [
      { line: 1, cells: ['a', 'b'] },
      { line: 2, cells: ['1', 'Left, "big" toe\r\nsecond line'] },
      { line: 4, cells: ['2', 'x'] },
      { line: 6, cells: ['3', 'y'] },
    ]);
  });

  test('LF, CR and mixed line endings and a last record without a line break', () => {
    assert.deepEqual(
      tokenize('a\nb\r"c\nd"\r\ne'),
      [
        { line: 1, cells: ['a'] },
        { line: 2, cells: ['b'] },
        { line: 3, cells: ['c\nd'] },
        { line: 5, cells: ['e'] },
      ],
      'each of LF, CR, CRLF ends one line',
    );
  });

  test('any split of the input gives the same records (a CRLF cut between chunks included)', () => {
    const text = '\ufeffrecid,Type\r\n1,"a\r\nb"\r\n2,"q""q"\r\n\r\n3,plain\r4,x\n5,"",\r\n';
    const whole = tokenize(text);
    for (let n = 1; n <= 7; n++) assert.deepEqual(tokenizeInPieces(text, n), whole, `pieces of ${n}`);
  });

  test('empty cells and empty trailing cells are kept', () => {
    assert.deepEqual(tokenize(',,\r\n"",x,\r\n'), [
      { line: 1, cells: ['', '', ''] },
      { line: 2, cells: ['', 'x', ''] },
    ]);
  });

  test('a quote inside an unquoted cell is a character', () => {
    assert.deepEqual(tokenize('1,5" wide\r\n')[0]?.cells, ['1', '5" wide']);
  });

  test('text after a closing quote makes that record an error and the next line reads normally', () => {
    const recs = tokenize('1,"ab"c,d\r\n2,ok\r\n');
    assert.equal(recs.length, 2, 'two records');
    assert.equal(recs[0]?.line, 1);
    assert.match(recs[0]?.error ?? '', /after a closing quote in cell 2/);
    assert.deepEqual(recs[1], { line: 2, cells: ['2', 'ok'] });
  });

  test('a quote never closed is an error record at its starting line', () => {
    const recs = tokenize('a\r\n1,"never closed\r\n2,x\r\n');
    assert.equal(recs.length, 2, 'the header and the unterminated record');
    assert.equal(recs[1]?.line, 2);
    assert.match(recs[1]?.error ?? '', /never closed/);
  });

  test('a record longer than the limit throws CSV_ROW_TOO_LONG naming its line', () => {
    const err = (() => {
      try {
        tokenize(`a\r\nb\r\n1,"${'x'.repeat(200)}`, 100);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof ExportSourceError, 'an ExportSourceError');
    assert.equal(err.problem, 'CSV_ROW_TOO_LONG');
    assert.equal(err.code, 'EXPORT_SOURCE_INVALID');
    assert.match(err.message, /line 3 is longer than 100 characters \(a quoted cell that is never closed\?\)/);
  });

  test('the limit is per record: many short records are fine', () => {
    const recs = tokenize('12345\r\n'.repeat(1000), 10);
    assert.equal(recs.length, 1000, 'every record read');
  });
});

describe('export recids and file names', () => {
  test('a recid is a positive decimal integer without leading zeros', () => {
    for (const ok of ['1', '10001', '9007199254740991']) assert.ok(isRecid(ok), `${ok} is a recid`);
    for (const bad of [
      '',
      '0',
      '00012',
      '-1',
      '+1',
      '1.5',
      '1e3',
      ' 12',
      '12 ',
      '0x1F',
      '١٢',
      '9007199254740992',
      '1\n',
    ]) {
      assert.ok(!isRecid(bad), `${JSON.stringify(bad)} is not a recid`);
    }
  });

  test('file names: {recid}.{ext}, extension lower-cased, anything else unmatched', () => {
    assert.deepEqual(parseExportFileName('10001.JPG'), { recid: '10001', ext: 'jpg' });
    assert.deepEqual(parseExportFileName('10002.heic'), { recid: '10002', ext: 'heic' });
    for (const bad of [
      '._10001.jpg',
      '0012.jpg',
      '10001.jpg.part',
      '10001',
      '../10001.jpg',
      '10001.',
      'x.jpg',
      '.DS_Store',
    ]) {
      assert.equal(parseExportFileName(bad), undefined, `${bad} is not an export file name`);
    }
  });

  test('several files for one recid: image extension first, then largest, then name, whatever the order', () => {
    const f = (name: string, size: number): ExportFile => ({ name, ext: name.split('.').pop()!.toLowerCase(), size });
    const files = [f('7.txt', 9_000), f('7.png', 10), f('7.JPG', 500), f('7.jpg', 500), f('7.heic', 0)];
    const expected = ['7.JPG', '7.jpg', '7.png', '7.heic', '7.txt'];
    assert.deepEqual(
      [...files].sort(compareCandidates).map((x) => x.name),
      expected,
    );
    assert.deepEqual(
      [...files]
        .reverse()
        .sort(compareCandidates)
        .map((x) => x.name),
      expected,
      'order-independent',
    );
  });
});

describe('export location schema', () => {
  test('a folder needs an absolute path; an S3 prefix gets its trailing slash', () => {
    assert.deepEqual(exportLocationSchema.parse({ kind: 'folder', path: '/data/export' }), {
      kind: 'folder',
      path: '/data/export',
    });
    assert.deepEqual(exportLocationSchema.parse({ kind: 's3', bucket: 'clinic-exports', prefix: 'images/2024' }), {
      kind: 's3',
      bucket: 'clinic-exports',
      prefix: 'images/2024/',
    });
    assert.deepEqual(exportLocationSchema.parse({ kind: 's3', bucket: 'clinic-exports' }), {
      kind: 's3',
      bucket: 'clinic-exports',
      prefix: '',
    });
  });

  test('relative paths, NUL, bad buckets, leading slashes and unknown keys are refused', () => {
    for (const bad of [
      { kind: 'folder', path: 'export' },
      { kind: 'folder', path: '/data/\0x' },
      { kind: 'folder', path: '' },
      { kind: 's3', bucket: 'Bad_Bucket', prefix: '' },
      { kind: 's3', bucket: 'ok-bucket', prefix: '/abs' },
      { kind: 's3', bucket: 'ok-bucket', prefix: 'a\nb' },
      { kind: 'folder', path: '/x', extra: 1 },
      { kind: 'ftp', path: '/x' },
    ]) {
      assert.ok(!exportLocationSchema.safeParse(bad).success, `${JSON.stringify(bad)} is refused`);
    }
  });
});
