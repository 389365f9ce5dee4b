import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileMakerError, FileMakerOverloadedError, TransferQuotaError } from '../../src/errors';
import { parseJsonTolerant, repairJson } from '../../src/filemaker/json';
import {
  FM_ERRORS,
  errorForFmCode,
  errorForStatus,
  exactFindValue,
  isJsonContentType,
  odataFieldName,
  odataKey,
  odataString,
  parseDataInfo,
  parseEnvelope,
  parseODataError,
  parseODataPage,
  parseRecords,
  pathSegment,
  readJsonBody,
  isTextFilename,
  suspectContainerAnswer,
} from '../../src/filemaker/responses';
import { sessionCookie } from '../../src/filemaker/client';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

void test('an HTML page is never parsed as data, even with HTTP 200 or a JSON-looking body', () => {
  const html = Buffer.from('<html><body><h1>502 Bad Gateway</h1></body></html>');
  const r = readJsonBody('text/html; charset=utf-8', html);
  assert.equal(r.ok, false);
  assert.equal(readJsonBody(undefined, json({ messages: [{ code: '0' }] })).ok, false);
  assert.equal(readJsonBody('text/plain', json({ a: 1 })).ok, false);
  const bad = readJsonBody('application/json', Buffer.from('<html>oops</html>'));
  assert.equal(bad.ok, false);
});

void test('JSON content types are recognised with parameters and +json suffixes', () => {
  assert.equal(isJsonContentType('application/json;odata.metadata=minimal;charset=utf-8'), true);
  assert.equal(isJsonContentType('Application/JSON'), true);
  assert.equal(isJsonContentType('application/problem+json'), true);
  assert.equal(isJsonContentType('text/html'), false);
});

void test('envelopes: string and numeric codes, missing response, and non-envelopes', () => {
  assert.deepEqual(parseEnvelope({ response: { token: 't' }, messages: [{ code: '0', message: 'OK' }] }), {
    fmCode: '0',
    response: { token: 't' },
  });
  assert.deepEqual(parseEnvelope({ messages: [{ code: 952 }] }), { fmCode: '952', response: {} });
  assert.equal(parseEnvelope({ response: {} }), undefined);
  assert.equal(parseEnvelope({ messages: [] }), undefined);
  assert.equal(parseEnvelope([1, 2]), undefined);
  assert.equal(parseEnvelope('x'), undefined);
});

void test('FileMaker codes map to typed errors with code and status', () => {
  const overloaded = errorForFmCode('812', 500, 'find on layout "API_Docs"');
  assert.ok(overloaded instanceof FileMakerOverloadedError);
  assert.equal(overloaded.code, 'FILEMAKER_OVERLOADED');
  assert.equal(overloaded.fmCode, '812');
  assert.equal(overloaded.httpStatus, 500);
  assert.ok(errorForFmCode('956', 500, 'x') instanceof FileMakerOverloadedError);
  assert.ok(errorForFmCode('953', 500, 'x') instanceof TransferQuotaError);
  const cases: Array<[string, string, boolean]> = [
    ['952', FM_ERRORS.SESSION_INVALID, true],
    ['212', FM_ERRORS.AUTH_FAILED, false],
    ['10', FM_ERRORS.AUTH_FAILED, false],
    ['101', FM_ERRORS.RECORD_MISSING, false],
    ['-1023', FM_ERRORS.RECORD_MISSING, false],
    ['102', FM_ERRORS.FIELD_MISSING, false],
    ['8309', FM_ERRORS.FIELD_MISSING, false],
    ['105', FM_ERRORS.LAYOUT_MISSING, false],
    ['306', FM_ERRORS.MODID_MISMATCH, false],
    ['802', FM_ERRORS.FILE_UNAVAILABLE, true],
    ['960', FM_ERRORS.BAD_REQUEST, false],
    ['-1002', FM_ERRORS.BAD_REQUEST, false],
    ['1630', FM_ERRORS.OTHER, false],
    // Codes are the server's strings: names of an object's inherited properties are unknown codes like any other.
    ['constructor', FM_ERRORS.OTHER, false],
    ['__proto__', FM_ERRORS.OTHER, false],
    ['toString', FM_ERRORS.OTHER, false],
  ];
  for (const [fmCode, code, retryable] of cases) {
    const err = errorForFmCode(fmCode, 500, 'ctx');
    assert.ok(err instanceof FileMakerError, fmCode);
    assert.equal(err.code, code, fmCode);
    assert.equal(err.retryable, retryable, fmCode);
    assert.equal(err.fmCode, fmCode);
    assert.match(err.message, new RegExp(`code ${fmCode}`));
    assert.doesNotMatch(err.message, /function|native code/, fmCode);
  }
  // An unknown code carried on a gateway status is still an overload.
  assert.ok(errorForFmCode('1630', 503, 'x') instanceof FileMakerOverloadedError);
});

void test('statuses without a FileMaker code: 502/503 overload, anything else a retryable bad response', () => {
  for (const s of [502, 503, 504, 429])
    assert.ok(errorForStatus(s, 'x', 'not JSON') instanceof FileMakerOverloadedError);
  const e = errorForStatus(200, 'find on layout "L"', 'not JSON (Content-Type text/html, 40 bytes)');
  assert.ok(e instanceof FileMakerError && !(e instanceof FileMakerOverloadedError));
  assert.equal(e.code, FM_ERRORS.BAD_RESPONSE);
  assert.equal(e.retryable, true);
  assert.equal(e.httpStatus, 200);
});

void test('OData pages accept both annotation spellings and null empties', () => {
  const newer = parseODataPage({
    '@context': 'x',
    value: [{ id: 'A', ROWID: 1, ROWMODID: 3 }, { id: null }],
    '@count': 2,
    '@nextLink': 'T?$skip=2',
  });
  assert.deepEqual(newer, {
    rows: [{ id: 'A', ROWID: 1, ROWMODID: 3 }, { id: null }],
    nextLink: 'T?$skip=2',
    count: 2,
  });
  const older = parseODataPage({ '@odata.context': 'x', value: [], '@odata.count': '5', '@odata.nextLink': 'n' });
  assert.deepEqual(older, { rows: [], nextLink: 'n', count: 5 });
  assert.equal(parseODataPage({ value: 'nope' }), undefined);
  assert.equal(parseODataPage({ value: [1] }), undefined);
  assert.equal(parseODataPage({ error: { code: '-1002' } }), undefined);
  assert.equal(parseODataError({ error: { code: '-1002', message: 'URL syntax' } }), '-1002');
  assert.equal(parseODataError({ error: { code: 8309 } }), '8309');
  assert.equal(parseODataError({ messages: [] }), undefined);
});

void test('Data API records: string ids, portals, portalDataInfo; malformed data is refused', () => {
  const response = {
    dataInfo: { totalRecordCount: 40, foundCount: 2, returnedCount: 2 },
    data: [
      {
        fieldData: { id: 'A', n: 3, empty: '' },
        portalData: { Details: [{ recordId: '9', 'API_Contact_Details::ph': '1' }] },
        portalDataInfo: [{ portalObjectName: 'Details', foundCount: 60, returnedCount: 50 }],
        recordId: '12',
        modId: '4',
      },
      { fieldData: { id: 'B' }, recordId: 13, modId: 0 },
    ],
  };
  const recs = parseRecords(response);
  assert.ok(recs);
  assert.equal(recs.length, 2);
  assert.equal(recs[0]!.recordId, '12');
  assert.equal(recs[0]!.portalData['Details']!.length, 1);
  assert.deepEqual(recs[0]!.portalDataInfo[0], {
    portalObjectName: 'Details',
    database: undefined,
    table: undefined,
    foundCount: 60,
    returnedCount: 50,
  });
  assert.equal(recs[1]!.recordId, '13');
  assert.equal(recs[1]!.modId, '0');
  assert.deepEqual(parseDataInfo(response), { totalRecordCount: 40, foundCount: 2, returnedCount: 2 });
  assert.equal(parseRecords({ data: [{ recordId: '1' }] }), undefined);
  assert.equal(parseRecords({}), undefined);
});

void test('broken OData JSON is repaired: raw control characters inside strings and a bare ? value', () => {
  const broken = '{"value":[{"id":"A\u0000B","note":"line1\nline2","calc":?},{"id":"C","calc": ?}]}';
  const parsed = parseJsonTolerant(broken);
  assert.ok(parsed);
  assert.equal(parsed.repaired, true);
  assert.deepEqual(parsed.value, {
    value: [
      { id: 'A\u0000B', note: 'line1\nline2', calc: null },
      { id: 'C', calc: null },
    ],
  });
  // Question marks and escapes inside strings are untouched; whitespace between tokens stays whitespace.
  assert.equal(repairJson('{\n "q": "why?", "e": "a\\"?"\n}'), '{\n "q": "why?", "e": "a\\"?"\n}');
  assert.deepEqual(parseJsonTolerant('\ufeff{"a":1}'), { value: { a: 1 }, repaired: false });
  assert.equal(parseJsonTolerant('<html>?</html>'), undefined);
  assert.equal(parseJsonTolerant('{"a":'), undefined);
});

void test('find values match exactly and escape FileMaker operators', () => {
  assert.equal(exactFindValue('0F8E7A6C-1234-4ABC-9DEF-0123456789AB'), '==0F8E7A6C-1234-4ABC-9DEF-0123456789AB');
  assert.equal(exactFindValue('a*b@c'), '==a\\*b\\@c');
  assert.equal(exactFindValue('1..5'), '==1\\.\\.5');
  assert.equal(exactFindValue('x"y'), '==x\\"y');
});

void test('names are encoded for paths and OData syntax', () => {
  assert.equal(pathSegment('API Docs'), 'API%20Docs');
  assert.equal(pathSegment("it's (new)"), 'it%27s%20%28new%29');
  assert.equal(pathSegment('a/b'), 'a%2Fb');
  assert.equal(odataKey("O'Brien"), "('O''Brien')");
  assert.equal(odataKey('AB-1'), "('AB-1')");
  assert.equal(odataKey(42), '(42)');
  assert.equal(odataKey({ rowId: '1234' }), '(ROWID=1234)');
  assert.throws(() => odataKey({ rowId: '1) or (1' }), RangeError);
  assert.equal(odataFieldName('id_Contact'), '"id_Contact"');
  assert.equal(odataFieldName('Health Number'), '"Health Number"');
});

void test('OData field names are quoted as Claris asks: specials, reserved words, id in any case', () => {
  // Plain letters and digits go bare.
  assert.equal(odataFieldName('Surname'), 'Surname');
  assert.equal(odataFieldName('Address2'), 'Address2');
  // `id` is reserved whatever its case: a live server answered `$select=ID` with -1002.
  for (const id of ['id', 'ID', 'Id', 'iD']) assert.equal(odataFieldName(id), `"${id}"`);
  // Query options without their `$`, operators and literals would be read as syntax.
  for (const word of ['select', 'Filter', 'top', 'and', 'eq', 'not', 'desc', 'null', 'true', 'count']) {
    assert.equal(odataFieldName(word), `"${word}"`);
  }
  // Spaces, underscores, dots, dashes, a leading digit, non-ASCII letters: quoted, a quote inside doubled.
  assert.equal(odataFieldName('Date_of_Birth'), '"Date_of_Birth"');
  assert.equal(odataFieldName('a.b'), '"a.b"');
  assert.equal(odataFieldName('Co-Pay'), '"Co-Pay"');
  assert.equal(odataFieldName('2ndPhone'), '"2ndPhone"');
  assert.equal(odataFieldName('Größe'), '"Größe"');
  assert.equal(odataFieldName('say "hi"'), '"say ""hi"""');
  // FileMaker's system columns stay bare (exact case only).
  assert.equal(odataFieldName('ROWID'), 'ROWID');
  assert.equal(odataFieldName('ROWMODID'), 'ROWMODID');
  // String literals for $filter double their quotes.
  assert.equal(odataString("O'Brien"), "'O''Brien'");
  assert.equal(odataString(''), "''");
});

void test('the container handshake cookie is isolated to the session key without attributes', () => {
  assert.equal(
    sessionCookie(['X-FMS-Session-Key=abc123; Path=/; HttpOnly', 'other=1; Path=/']),
    'X-FMS-Session-Key=abc123',
  );
  assert.equal(sessionCookie('X-FMS-Session-Key=k; HttpOnly'), 'X-FMS-Session-Key=k');
  assert.equal(sessionCookie('SESSION=z; Secure'), 'SESSION=z');
  assert.equal(sessionCookie(undefined), undefined);
});

void test('a $value answer is the container only when it can be: text only for text files, never an empty 200', () => {
  const answer = (o: Partial<Parameters<typeof suspectContainerAnswer>[0]>) =>
    suspectContainerAnswer({
      status: 200,
      contentType: 'application/pdf',
      contentLength: 1000,
      filename: undefined,
      ...o,
    });
  // Real bytes, with or without a name or a length.
  assert.equal(answer({}), undefined);
  assert.equal(answer({ contentType: 'image/jpeg', filename: 'scan.jpg', contentLength: undefined }), undefined);
  assert.equal(answer({ contentType: 'application/octet-stream' }), undefined);
  // The filename answered as text/plain (with or without Content-Disposition), base64 text: suspect.
  assert.match(answer({ contentType: 'text/plain; charset=utf-8' }) ?? '', /text\/plain/);
  assert.match(answer({ contentType: 'text/plain', filename: 'referral.pdf' }) ?? '', /not text/);
  assert.ok(answer({ contentType: 'TEXT/PLAIN', filename: 'photo.JPG' }));
  // A text file by its name may be text.
  for (const name of ['notes.txt', 'export.CSV', 'letter.rtf', 'a.b.xml']) {
    assert.equal(answer({ contentType: 'text/plain', filename: name }), undefined, name);
  }
  // An empty container is a 204; an empty 200 is not a container.
  assert.ok(answer({ contentLength: 0 }));
  assert.equal(answer({ status: 204, contentLength: 0, contentType: 'text/plain' }), undefined);
  assert.equal(answer({ status: 204, contentLength: 0 }), undefined);
  // The reason never carries the filename.
  assert.doesNotMatch(answer({ contentType: 'text/plain', filename: 'Smith John.pdf' }) ?? '', /Smith/);
  assert.equal(isTextFilename('x.txt'), true);
  assert.equal(isTextFilename('txt'), false);
  assert.equal(isTextFilename(undefined), false);
});
