import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeExtValue, parseContentDisposition } from '../../src/filemaker/content-disposition';

void test('content-disposition prefers filename* over the ASCII fallback', () => {
  const cd = parseContentDisposition(`attachment; filename="Befund_.pdf"; filename*=UTF-8''Befund_%C3%A4%20neu.pdf`);
  assert.equal(cd.type, 'attachment');
  assert.equal(cd.filename, 'Befund_ä neu.pdf');
  assert.equal(cd.params['filename'], 'Befund_.pdf');
});

void test('content-disposition reads quoted filenames with escapes and semicolons', () => {
  assert.equal(
    parseContentDisposition('attachment; filename="a \\"quoted\\" name.pdf"').filename,
    'a "quoted" name.pdf',
  );
  assert.equal(parseContentDisposition('attachment; filename="x;y.docx"; size=10').filename, 'x;y.docx');
});

void test('content-disposition tolerates unquoted names with spaces and odd casing', () => {
  assert.equal(parseContentDisposition('Attachment; FileName=scan 2021 03.jpg').filename, 'scan 2021 03.jpg');
  assert.equal(parseContentDisposition('inline;filename=report.pdf').type, 'inline');
});

void test('content-disposition falls back to filename when filename* cannot be decoded', () => {
  assert.equal(
    parseContentDisposition(`attachment; filename="ok.pdf"; filename*=UTF-8''bad%ZZ.pdf`).filename,
    'ok.pdf',
  );
  assert.equal(parseContentDisposition(`attachment; filename="ok.pdf"; filename*=KOI8-R''x.pdf`).filename, 'ok.pdf');
  assert.equal(parseContentDisposition(`attachment; filename="ok.pdf"; filename*=UTF-8''%FF.pdf`).filename, 'ok.pdf');
});

void test('content-disposition decodes ISO-8859-1 ext-values and language tags', () => {
  assert.equal(decodeExtValue(`iso-8859-1'de'M%FCller.pdf`), 'Müller.pdf');
  assert.equal(decodeExtValue(`UTF-8'en'%E2%82%AC%20rates`), '€ rates');
  assert.equal(decodeExtValue('no-quotes'), undefined);
});

void test('content-disposition repairs raw UTF-8 bytes delivered as latin1 header text', () => {
  const header = Buffer.from('attachment; filename="Müller.pdf"', 'utf8').toString('latin1');
  assert.equal(parseContentDisposition(header).filename, 'Müller.pdf');
});

void test('content-disposition strips directories and control characters, and handles absence', () => {
  assert.equal(parseContentDisposition('attachment; filename="../../etc/passwd"').filename, 'passwd');
  assert.equal(parseContentDisposition('attachment; filename="C:\\\\docs\\\\x.pdf"').filename, 'x.pdf');
  assert.equal(parseContentDisposition('attachment; filename="a\u0001b.pdf"').filename, 'ab.pdf');
  assert.equal(parseContentDisposition('attachment; filename=".."').filename, undefined);
  assert.equal(parseContentDisposition('attachment').filename, undefined);
  assert.equal(parseContentDisposition(undefined).filename, undefined);
  assert.equal(parseContentDisposition('').type, '');
  assert.equal(parseContentDisposition(['attachment; filename=a.pdf', 'attachment; filename=b.pdf']).filename, 'a.pdf');
});

void test('content-disposition keeps the first of duplicated parameters', () => {
  assert.equal(parseContentDisposition('attachment; filename=a.pdf; filename=b.pdf').filename, 'a.pdf');
});
