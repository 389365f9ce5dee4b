import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { reconcile, reconcileTable } from '../../src/domain/reconcile';

describe('reconcile', () => {
  test('a table whose every manifest id is terminal is ok, failures included', () => {
    const r = reconcileTable({
      manifest: ['a', 'b', 'c', 'd'],
      ledger: [
        { filemakerId: 'a', state: 'imported' },
        { filemakerId: 'b', state: 'unlinked', reasonCode: 'NO_PATIENT' },
        { filemakerId: 'c', state: 'skipped', reasonCode: 'EMPTY_NOTE' },
        { filemakerId: 'd', state: 'failed', reasonCode: 'DOWNLOAD_FAILED' },
      ],
    });
    assert.deepEqual(r, {
      manifest: 4,
      imported: 1,
      unlinked: 1,
      skipped: 1,
      failed: 1,
      pending: 0,
      missing: [],
      duplicateManifestIds: [],
      unexpected: [],
      failedByReason: { DOWNLOAD_FAILED: 1 },
      ok: true,
    });
  });

  test('lists ids with no ledger entry and pending ids as missing', () => {
    const r = reconcileTable({
      manifest: ['z', 'a', 'm'],
      ledger: [
        { filemakerId: 'a', state: 'imported' },
        { filemakerId: 'm', state: 'pending' },
      ],
    });
    assert.equal(r.ok, false);
    assert.equal(r.pending, 1);
    assert.deepEqual(r.missing, ['m', 'z']);
  });

  test('compares ids exactly, so a case mismatch is reported, not hidden', () => {
    const r = reconcileTable({ manifest: ['abc'], ledger: [{ filemakerId: 'ABC', state: 'imported' }] });
    assert.deepEqual(r.missing, ['abc']);
    assert.deepEqual(r.unexpected, ['ABC']);
    assert.equal(r.imported, 0);
    assert.equal(r.ok, false);
  });

  test('a duplicate manifest id fails the table', () => {
    const r = reconcileTable({ manifest: ['a', 'a'], ledger: [{ filemakerId: 'a', state: 'imported' }] });
    assert.equal(r.manifest, 1);
    assert.deepEqual(r.duplicateManifestIds, ['a']);
    assert.equal(r.ok, false);
  });

  test('overall ok only when every table is', () => {
    const result = reconcile({
      API_Notes: { manifest: ['n1'], ledger: [{ filemakerId: 'n1', state: 'imported' }] },
      API_Docs: { manifest: ['d1', 'd2'], ledger: [{ filemakerId: 'd1', state: 'imported' }] },
    });
    assert.equal(result.ok, false);
    assert.deepEqual(Object.keys(result.tables), ['API_Docs', 'API_Notes']);
    assert.deepEqual(result.tables.API_Docs?.missing, ['d2']);
    assert.equal(result.tables.API_Notes?.ok, true);
  });

  test('an empty manifest with an empty ledger is ok', () => {
    assert.equal(reconcile({ API_Company: { manifest: [], ledger: [] } }).ok, true);
  });
});
