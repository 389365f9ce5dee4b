import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { byRecordId, manifestRows, type ManifestRead } from '../../src/domain/manifest';
import { splitIdIssues } from '../../src/activities/outcomes';

const read = (record_id: string | null, filemaker_id: string | null): ManifestRead => ({
  record_id,
  filemaker_id,
  id_issue: null,
  mod_id: '1',
  source_key: null,
});

describe('manifestRows', () => {
  test('one row per record; an empty id and a shared id are marked, nothing is dropped', () => {
    const rows = manifestRows([read('1', 'a'), read('2', null), read('3', 'b'), read('4', 'a'), read('5', 'c')]);
    assert.deepEqual(
      rows.map((r) => [r.record_id, r.filemaker_id, r.id_issue]),
      [
        ['1', 'a', 'DUPLICATE_ID'],
        ['2', null, 'MISSING_ID'],
        ['3', 'b', null],
        ['4', 'a', 'DUPLICATE_ID'],
        ['5', 'c', null],
      ],
    );
  });

  test('a record read twice is one record', () => {
    const rows = manifestRows([read('7', 'a'), read('7', 'a')]);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.id_issue, null);
  });

  test('without record ids an id is one record, and a record without an id still counts', () => {
    const rows = manifestRows([read(null, 'a'), read(null, 'a'), read(null, null), read(null, null)]);
    assert.deepEqual(
      rows.map((r) => [r.record_id, r.id_issue]),
      [
        ['id:a', null],
        ['blank:1', 'MISSING_ID'],
        ['blank:2', 'MISSING_ID'],
      ],
    );
  });

  test('record ids sort as FileMaker numbers them', () => {
    assert.deepEqual(['10', '9', '100', '11'].sort(byRecordId), ['9', '10', '11', '100']);
  });
});

describe('splitIdIssues', () => {
  test('records whose id cannot key a row fail with their reason; the message names record ids, never the id', () => {
    const { failed, keyed } = splitIdIssues('API_Notes', [
      { recordId: '1', filemakerId: 'secret-ish', idIssue: 'DUPLICATE_ID', sharing: ['1', '4'] },
      { recordId: '2', filemakerId: null, idIssue: 'MISSING_ID' },
      { recordId: '3', filemakerId: 'b', idIssue: null },
    ]);
    assert.deepEqual(keyed, [{ recordId: '3', id: 'b' }]);
    assert.deepEqual(
      failed.map((e) => [e.recordId, e.filemakerId, e.state, e.reasonCode]),
      [
        ['1', 'secret-ish', 'failed', 'DUPLICATE_ID'],
        ['2', null, 'failed', 'MISSING_ID'],
      ],
    );
    assert.match(failed[0]!.message!, /records 1, 4 share one id/);
    assert.doesNotMatch(failed[0]!.message!, /secret-ish/);
  });
});
