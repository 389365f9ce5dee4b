import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PROJECT_NAMESPACE, normalizeFileMakerId, targetId, uuidv5 } from '../../src/domain/ids';

describe('normalizeFileMakerId', () => {
  test('lower-cases and trims an uppercase UUID', () => {
    assert.deepEqual(normalizeFileMakerId('  0F8C7A12-3B4D-4E5F-8A9B-0C1D2E3F4A5B \n'), {
      value: '0f8c7a12-3b4d-4e5f-8a9b-0c1d2e3f4a5b',
      isUuid: true,
    });
  });

  test('removes control characters and NUL', () => {
    assert.deepEqual(normalizeFileMakerId('\u00000F8C7A12-3B4D-4E5F-8A9B-0C1D2E3F4A5B\u0007'), {
      value: '0f8c7a12-3b4d-4e5f-8a9b-0c1d2e3f4a5b',
      isUuid: true,
    });
  });

  test('returns null for empty values', () => {
    assert.equal(normalizeFileMakerId(''), null);
    assert.equal(normalizeFileMakerId('   '), null);
    assert.equal(normalizeFileMakerId(undefined), null);
    assert.equal(normalizeFileMakerId(null), null);
  });

  test('keeps a non-UUID id lower-cased and flags it', () => {
    assert.deepEqual(normalizeFileMakerId(' LEGACY-42 '), { value: 'legacy-42', isUuid: false });
    assert.deepEqual(normalizeFileMakerId(12345), { value: '12345', isUuid: false });
  });
});

describe('uuidv5 and targetId', () => {
  test('matches the RFC test vector for www.example.com in the DNS namespace', () => {
    assert.equal(
      uuidv5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8'),
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
  });

  test('is deterministic and case-insensitive on the FileMaker id', () => {
    const a = targetId('patients', '0F8C7A12-3B4D-4E5F-8A9B-0C1D2E3F4A5B');
    const b = targetId('patients', ' 0f8c7a12-3b4d-4e5f-8a9b-0c1d2e3f4a5b ');
    assert.equal(a, b);
    assert.equal(a, uuidv5('patients:0f8c7a12-3b4d-4e5f-8a9b-0c1d2e3f4a5b', PROJECT_NAMESPACE));
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test('differs per table for the same FileMaker id', () => {
    assert.notEqual(targetId('patients', 'abc'), targetId('notes', 'abc'));
  });

  test('pins the namespace: a known id keeps its target id forever', () => {
    assert.equal(targetId('patients', 'abc'), '4c1f30a3-b075-5321-956f-f8e6bdbdb161');
  });

  test('refuses an empty id', () => {
    assert.throws(() => targetId('patients', '  '), RangeError);
  });
});
