import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanFilename,
  contentTypeSource,
  documentKey,
  effectiveContentType,
  extensionFor,
  imageKey,
  isGenericContentType,
  keyRevision,
  keySegment,
  sniffContentType,
  thumbnailKey,
} from '../../src/domain/keys';

const PATIENT = '4c1f30a3-b075-5321-956f-f8e6bdbdb161';
const FMID = '0f8c7a12-3b4d-4e5f-8a9b-0c1d2e3f4a5b';
const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

describe('S3 keys', () => {
  test('document key has the documented shape', () => {
    assert.equal(
      documentKey(PATIENT, 'ndis-report', FMID, 'pdf'),
      `patients/filemaker-import/documents/${PATIENT}/ndis-report/${FMID}.pdf`,
    );
  });

  test('an unlinked document goes under unlinked/', () => {
    assert.equal(
      documentKey(null, 'other', FMID, '.PDF'),
      `patients/filemaker-import/documents/unlinked/other/${FMID}.pdf`,
    );
  });

  test('image and thumbnail keys share the patient/day folder', () => {
    assert.equal(
      imageKey(PATIENT, '2024-06-20', FMID, 'jpg'),
      `patients/filemaker-import/images/${PATIENT}/2024-06-20/${FMID}.jpg`,
    );
    assert.equal(
      thumbnailKey(PATIENT, '2024-06-20', FMID),
      `patients/filemaker-import/images/${PATIENT}/2024-06-20/thumbnails/${FMID}.webp`,
    );
    assert.equal(imageKey(null, null, FMID, ''), `patients/filemaker-import/images/unlinked/undated/${FMID}.bin`);
  });

  test('a hostile non-UUID id cannot escape its folder and stays distinct', () => {
    assert.equal(keySegment('../x'), '%2E%2E%2Fx');
    assert.equal(
      documentKey(null, 'other', '../../etc', 'pdf'),
      'patients/filemaker-import/documents/unlinked/other/%2E%2E%2F%2E%2E%2Fetc.pdf',
    );
    assert.notEqual(keySegment('a/b'), keySegment('a_b'));
    assert.equal(keySegment('é'), '%C3%A9');
    const uuid = '0b5c3e1a-7f2d-4c8e-9a6b-1d2e3f4a5b6c';
    assert.equal(keySegment(uuid), uuid, 'a UUID passes unchanged');
    assert.equal(keySegment('A_b-9'), 'A_b-9', 'a slug passes unchanged');
    assert.equal(keySegment('a b'), 'a%20b', 'one unsafe character encodes the segment');
    assert.throws(() => keySegment(''), RangeError);
  });

  test("a replaced file's key carries the record's modId as its revision; a first download's key has none", () => {
    const doc = documentKey(PATIENT, 'ndis-report', FMID, 'pdf', '17');
    assert.equal(doc, `patients/filemaker-import/documents/${PATIENT}/ndis-report/${FMID}.m17.pdf`);
    assert.equal(keyRevision(doc), '17');
    assert.equal(
      imageKey(PATIENT, '2024-06-20', FMID, 'jpg', '3'),
      `patients/filemaker-import/images/${PATIENT}/2024-06-20/${FMID}.m3.jpg`,
    );
    const thumb = thumbnailKey(PATIENT, '2024-06-20', FMID, '3');
    assert.equal(thumb, `patients/filemaker-import/images/${PATIENT}/2024-06-20/thumbnails/${FMID}.m3.webp`);
    assert.equal(keyRevision(thumb), '3');
    assert.equal(
      documentKey(PATIENT, 'ndis-report', FMID, 'pdf', undefined),
      documentKey(PATIENT, 'ndis-report', FMID, 'pdf'),
    );
    assert.equal(keyRevision(documentKey(PATIENT, 'ndis-report', FMID, 'pdf')), undefined);
    assert.equal(keyRevision(thumbnailKey(null, null, FMID)), undefined);
  });

  test('no FileMaker id reads as a revision, and an odd revision round-trips', () => {
    // A dot in an id is encoded, so `x.m5` as an id is not id `x` at revision 5.
    const dotted = documentKey(null, 'other', 'x.m5', 'pdf');
    assert.equal(dotted, 'patients/filemaker-import/documents/unlinked/other/x%2Em5.pdf');
    assert.equal(keyRevision(dotted), undefined);
    assert.notEqual(dotted, documentKey(null, 'other', 'x', 'pdf', '5'));
    assert.equal(keyRevision(documentKey(null, 'other', 'x', 'pdf', '5 b/é')), '5 b/é');
  });
});

describe('extensionFor', () => {
  test('prefers a specific content type', () => {
    assert.equal(extensionFor('image/jpeg', 'scan.jpeg', null), 'jpg');
    assert.equal(extensionFor('application/pdf; charset=binary', 'letter.doc', null), 'pdf');
    assert.equal(extensionFor('application/vnd.openxmlformats-officedocument.wordprocessingml.document'), 'docx');
    assert.equal(extensionFor('image/heic'), 'heic');
  });

  test('falls back to the filename, then the URL path, then bin for generic types', () => {
    assert.equal(extensionFor('application/octet-stream', 'Report.PDF', null), 'pdf');
    assert.equal(
      extensionFor(
        'application/octet-stream',
        null,
        'https://fm/Streaming_SSL/MainDB/ABCDEF.png?RCType=EmbeddedRCFileProcessor',
      ),
      'png',
    );
    assert.equal(extensionFor('', null, 'https://fm/Streaming_SSL/MainDB/ABCDEF?RCType=x'), 'bin');
    assert.equal(extensionFor(undefined), 'bin');
  });

  test('a zip type defers to an Office filename', () => {
    assert.equal(extensionFor('application/zip', 'plan.docx'), 'docx');
    assert.equal(extensionFor('application/zip', 'archive.zip'), 'zip');
  });
});

describe('cleanFilename', () => {
  test('an original filename is its base name, whatever path it came with', () => {
    assert.equal(cleanFilename('../../etc/passwd'), 'passwd');
    assert.equal(cleanFilename('C:\\Users\\clinic\\IMG_0001.JPG'), 'IMG_0001.JPG');
    assert.equal(cleanFilename('scans/2024/left\u0000.jpg'), 'left.jpg');
    assert.equal(cleanFilename('..'), '');
    assert.equal(cleanFilename('photos/'), '');
  });

  test('over-long names are cut to 255 characters keeping the extension', () => {
    const name = cleanFilename(`${'a'.repeat(300)}.pdf`);
    assert.equal(name.length, 255);
    assert.ok(name.endsWith('.pdf'));
  });

  test('C1 controls and line separators go too', () => {
    assert.equal(cleanFilename('scan\u0085\u2028 1.jpg'), 'scan 1.jpg');
  });
});

describe('sniffContentType', () => {
  const bytes = (...parts: (string | number[])[]) =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

  test('recognises the clinic file types', () => {
    assert.equal(sniffContentType(bytes('%PDF-1.7\n')), 'application/pdf');
    assert.equal(sniffContentType(bytes([0xff, 0xd8, 0xff, 0xe0])), 'image/jpeg');
    assert.equal(sniffContentType(bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'image/png');
    assert.equal(sniffContentType(bytes('GIF89a')), 'image/gif');
    assert.equal(sniffContentType(bytes('RIFF', [0, 0, 0, 0], 'WEBPVP8 ')), 'image/webp');
    assert.equal(sniffContentType(bytes([0, 0, 0, 0x18], 'ftypheic', [0, 0, 0, 0])), 'image/heic');
    assert.equal(sniffContentType(bytes([0, 0, 0, 0x18], 'ftypmif1', [0, 0, 0, 0])), 'image/heif');
    assert.equal(sniffContentType(bytes([0x49, 0x49, 0x2a, 0x00])), 'image/tiff');
  });

  test('tells a DOCX from a plain zip by its entry names', () => {
    const docx = bytes([0x50, 0x4b, 0x03, 0x04], 'x'.repeat(26), '[Content_Types].xml', 'zzz', 'word/document.xml');
    assert.equal(sniffContentType(docx), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document');
    assert.equal(sniffContentType(bytes([0x50, 0x4b, 0x03, 0x04], 'photos/a.jpg')), 'application/zip');
  });

  test('returns undefined for unknown or too-short input', () => {
    assert.equal(sniffContentType(bytes('hello world')), undefined);
    assert.equal(sniffContentType(new Uint8Array()), undefined);
    assert.equal(sniffContentType(bytes([0xff, 0xd8])), undefined);
  });

  test('effectiveContentType sniffs only when the response type is generic', () => {
    assert.equal(isGenericContentType('application/octet-stream'), true);
    assert.equal(isGenericContentType('image/png'), false);
    assert.equal(effectiveContentType('application/octet-stream', bytes('%PDF-1.4')), 'application/pdf');
    assert.equal(effectiveContentType('image/png; q=1', bytes('???')), 'image/png');
    assert.equal(effectiveContentType('', bytes('???')), 'application/octet-stream');
  });

  test('bytes with a known signature overrule a declared type they contradict; the extension follows', () => {
    const pdf = bytes('%PDF-1.4\n');
    const jpeg = bytes([0xff, 0xd8, 0xff, 0xe0]);
    const docx = bytes([0x50, 0x4b, 0x03, 0x04], '[Content_Types].xml', 'word/document.xml');
    const heic = bytes([0, 0, 0, 0x18], 'ftypheic', [0, 0, 0, 0]);
    assert.equal(effectiveContentType('image/jpeg', pdf), 'application/pdf');
    assert.equal(extensionFor(effectiveContentType('image/jpeg', pdf), 'scan.jpg', '/x/scan.jpg'), 'pdf');
    assert.equal(contentTypeSource('image/jpeg', 'application/pdf'), 'corrected');
    assert.equal(effectiveContentType('image/png; q=1', pdf), 'application/pdf');
    assert.equal(effectiveContentType('application/pdf', jpeg), 'image/jpeg');
    assert.equal(effectiveContentType('text/plain', pdf), 'application/pdf');
    assert.equal(effectiveContentType('image/jpeg', heic), 'image/heic');
    assert.equal(effectiveContentType('application/msword', docx), DOCX);
    assert.equal(effectiveContentType('application/zip', docx), DOCX);
    // The same kind under another name: the bytes' canonical type, not a correction.
    assert.equal(effectiveContentType('image/pjpeg', jpeg), 'image/jpeg');
    assert.equal(contentTypeSource('image/pjpeg', 'image/jpeg'), 'declared');
    assert.equal(contentTypeSource('application/octet-stream', 'image/jpeg'), 'sniffed');
    assert.equal(contentTypeSource('application/pdf', 'application/pdf'), 'declared');
  });

  test('a declared type the signature cannot tell apart stands', () => {
    const zip = bytes([0x50, 0x4b, 0x03, 0x04], '[Content_Types].xml');
    const docx = bytes([0x50, 0x4b, 0x03, 0x04], 'word/document.xml');
    const tiff = bytes([0x49, 0x49, 0x2a, 0x00]);
    const xlsx = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
    // Which Office format a zip is shows only in entry names the first bytes may not hold.
    assert.equal(effectiveContentType(DOCX, zip), DOCX);
    assert.equal(effectiveContentType(xlsx, docx), xlsx);
    assert.equal(
      effectiveContentType('application/vnd.oasis.opendocument.text', zip),
      'application/vnd.oasis.opendocument.text',
    );
    assert.equal(effectiveContentType('application/epub+zip', zip), 'application/epub+zip');
    // Camera raw formats are TIFF inside; a type we sniff is still contradicted.
    assert.equal(effectiveContentType('image/x-adobe-dng', tiff), 'image/x-adobe-dng');
    assert.equal(effectiveContentType('image/jpeg', tiff), 'image/tiff');
    assert.equal(effectiveContentType('image/jpeg', bytes('???')), 'image/jpeg');
  });
});
