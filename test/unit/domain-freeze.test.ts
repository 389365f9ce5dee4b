import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersions, describeMoved, movedCount, type RecordVersion } from '../../src/domain/freeze';

const v = (recordId: string, modId: string): RecordVersion => ({ recordId, modId });
const before = new Map([
  ['1', '0'],
  ['2', '3'],
  ['10', '1'],
  ['11', '7'],
]);

describe('compareVersions', () => {
  test('the same ids at the same versions: nothing moved', () => {
    const t = compareVersions('API_Notes', before, [v('10', '1'), v('1', '0'), v('11', '7'), v('2', '3')]);
    assert.deepEqual(t, {
      table: 'API_Notes',
      records: 4,
      added: 0,
      changed: 0,
      vanished: 0,
      moved: { added: [], changed: [], vanished: [] },
    });
    assert.equal(movedCount(t), 0);
  });

  test('an edit is a record whose version moved under the same id', () => {
    const t = compareVersions('API_Contacts', before, [v('1', '0'), v('2', '4'), v('10', '1'), v('11', '7')]);
    assert.deepEqual([t.added, t.changed, t.vanished], [0, 1, 0]);
    assert.deepEqual(t.moved.changed, ['2']);
  });

  test('inserts and deletes, ids in numeric order', () => {
    const t = compareVersions('API_event', before, [v('1', '0'), v('2', '3'), v('12', '0'), v('9', '0')]);
    assert.deepEqual([t.records, t.added, t.changed, t.vanished], [4, 2, 0, 2]);
    assert.deepEqual(t.moved, { added: ['9', '12'], changed: [], vanished: ['10', '11'] });
  });

  test('ids listed are capped across the three kinds, edits first; the counts stay whole', () => {
    const many = new Map(Array.from({ length: 60 }, (_, i) => [String(i + 1), '0'] as const));
    const now = [...many.keys()].slice(10).map((id) => v(id, '1'));
    now.push(v('100', '0'), v('101', '0'));
    const t = compareVersions('API_Docs', many, now, 50);
    assert.deepEqual([t.added, t.changed, t.vanished], [2, 50, 10]);
    assert.equal(t.moved.changed.length, 50);
    assert.deepEqual([t.moved.vanished, t.moved.added], [[], []]);
    assert.deepEqual(t.moved.changed.slice(0, 3), ['11', '12', '13']);
  });
});

describe('describeMoved', () => {
  test('names each table that moved with its counts and record ids, and counts what is not listed', () => {
    const contacts = compareVersions('API_Contacts', before, [v('1', '1'), v('2', '3'), v('10', '1'), v('11', '7')]);
    const notes = compareVersions('API_Notes', before, [v('1', '0'), v('2', '3'), v('10', '1'), v('11', '7')]);
    const event = compareVersions('API_event', before, [v('1', '0'), v('12', '0'), v('13', '0')], 2);
    assert.equal(
      describeMoved([contacts, notes, event]),
      'API_Contacts: 1 changed (record 1); API_event: 3 vanished (records 2, 10 and 1 more), 2 added',
    );
  });
});
