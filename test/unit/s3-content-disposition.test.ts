import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { contentDisposition, offeredFilename } from '../../src/s3/content-disposition';

describe('contentDisposition', () => {
  test('a plain ASCII filename is quoted', () => {
    assert.equal(contentDisposition('referral 2024.pdf'), 'attachment; filename="referral 2024.pdf"');
  });

  test('a non-ASCII filename gets an ASCII fallback and filename* in UTF-8', () => {
    assert.equal(
      contentDisposition('Résumé 2024.pdf'),
      `attachment; filename="Resume 2024.pdf"; filename*=UTF-8''R%C3%A9sum%C3%A9%202024.pdf`,
    );
    assert.equal(
      contentDisposition('王芳.jpg'),
      `attachment; filename="__.jpg"; filename*=UTF-8''%E7%8E%8B%E8%8A%B3.jpg`,
    );
    assert.equal(
      contentDisposition('foot 😊.png'),
      `attachment; filename="foot _.png"; filename*=UTF-8''foot%20%F0%9F%98%8A.png`,
    );
  });

  test('quotes, backslashes and percent signs are moved to filename*', () => {
    assert.equal(
      contentDisposition('say "hi" 100%.txt'),
      `attachment; filename="say _hi_ 100_.txt"; filename*=UTF-8''say%20%22hi%22%20100%25.txt`,
    );
  });

  test('directory parts, control characters and leading dots are removed; nothing left gives "file"', () => {
    assert.equal(contentDisposition('C:\\scans\\left\u0000.jpg'), 'attachment; filename="left.jpg"');
    assert.equal(contentDisposition('../../etc/passwd', 'inline'), 'inline; filename="passwd"');
    assert.equal(contentDisposition('..hidden.pdf'), 'attachment; filename="hidden.pdf"');
    assert.equal(contentDisposition(''), 'attachment; filename="file"');
    assert.equal(contentDisposition('../'), 'attachment; filename="file"');
  });

  test('over-long names are offered cut to 200 characters keeping the extension', () => {
    const name = offeredFilename(`${'b'.repeat(300)}.pdf`);
    assert.equal(name.length, 200);
    assert.ok(name.endsWith('.pdf'));
  });

  test('the header is pure ASCII', () => {
    assert.match(contentDisposition('Ngọc Ánh – ảnh.heic'), /^[\x20-\x7e]+$/);
  });
});
