import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type pg from 'pg';
import { ManifestError } from '../../src/errors';
import {
  createRun,
  finishRun,
  getRun,
  ledgerLookup,
  reconcile,
  recordOutcomes,
  writeManifest,
} from '../../src/store/ledger';
import { migratedDatabase } from './fixtures';

const database = migratedDatabase();
const sha = (c: string) => c.repeat(64);

describe('ledger', () => {
  let pool: pg.Pool;
  before(async () => {
    ({ pool } = await database);
  });

  test('runs are created once and finished with a status and summary', async () => {
    await createRun(pool, { runId: 'run-1', workflowId: 'wf-1', options: { phases: ['notes'] } });
    await createRun(pool, { runId: 'run-1', workflowId: 'wf-other' });
    await finishRun(pool, 'run-1', 'completed', { notes: { imported: 3 } });
    const run = await getRun(pool, 'run-1');
    assert.equal(run?.workflowId, 'wf-1');
    assert.equal(run?.status, 'completed');
    assert.deepEqual(run?.summary, { notes: { imported: 3 } });
    assert.ok(run?.finishedAt instanceof Date);
  });

  test('reconciliation balances terminal states against the manifest and lists the id that never arrived', async () => {
    await createRun(pool, { runId: 'run-2' });
    const ids = ['AAAA-1', 'AAAA-2', 'AAAA-3', 'AAAA-4', 'AAAA-5'];
    await writeManifest(
      pool,
      'run-2',
      'API_Notes',
      ids.map((id, i) => ({ filemakerId: id, recordId: i + 1, modId: 7 })),
    );
    // Idempotent: the same manifest again changes nothing.
    await writeManifest(
      pool,
      'run-2',
      'API_Notes',
      ids.map((id, i) => ({ filemakerId: id, recordId: i + 1, modId: 7 })),
    );
    await recordOutcomes(pool, 'run-2', 'API_Notes', [
      { filemakerId: 'aaaa-1', state: 'imported', targetTable: 'notes' },
      { filemakerId: 'aaaa-2', state: 'skipped', reasonCode: 'EMPTY_NOTE', message: 'Note is empty' },
      { filemakerId: 'aaaa-3', state: 'failed', reasonCode: 'MISSING_FIELD', message: 'field Note missing' },
      { filemakerId: 'aaaa-5', state: 'pending' },
    ]);
    let [r] = await reconcile(pool, 'run-2', 'API_Notes');
    assert.deepEqual(r, {
      sourceTable: 'API_Notes',
      manifest: 5,
      imported: 1,
      unlinked: 0,
      skipped: 1,
      failed: 1,
      pending: 2,
      unexpected: 0,
      balanced: false,
      missing: ['aaaa-4', 'aaaa-5'],
    });
    await recordOutcomes(pool, 'run-2', 'API_Notes', [
      { filemakerId: 'aaaa-5', state: 'unlinked', reasonCode: 'PATIENT_NOT_FOUND' },
      { filemakerId: 'aaaa-3', state: 'imported' },
      { filemakerId: 'bbbb-9', state: 'imported' },
    ]);
    [r] = await reconcile(pool, 'run-2');
    assert.equal(r?.pending, 1);
    assert.deepEqual(r?.missing, ['aaaa-4']);
    assert.equal(r?.unexpected, 1);
    assert.equal(r?.imported, 2);
    const attempts = await pool.query<{ filemaker_id: string; attempts: number }>(
      `select filemaker_id, attempts from import_ledger where run_id = 'run-2' order by filemaker_id`,
    );
    assert.deepEqual(
      attempts.rows.map((x) => [x.filemaker_id, x.attempts]),
      [
        ['aaaa-1', 1],
        ['aaaa-2', 1],
        ['aaaa-3', 2],
        ['aaaa-5', 2],
        ['bbbb-9', 1],
      ],
    );
    await recordOutcomes(pool, 'run-2', 'API_Notes', [{ filemakerId: 'aaaa-4', state: 'imported' }]);
    [r] = await reconcile(pool, 'run-2', 'API_Notes');
    assert.equal(r?.balanced, true);
    assert.deepEqual(r?.missing, []);
  });

  test('a manifest with a repeated id, or an outcome without its reason, is refused before anything is written', async () => {
    await createRun(pool, { runId: 'run-3' });
    await assert.rejects(
      writeManifest(pool, 'run-3', 'API_Docs', [{ filemakerId: 'X-1' }, { filemakerId: ' x-1 ' }]),
      ManifestError,
    );
    await assert.rejects(
      recordOutcomes(pool, 'run-3', 'API_Docs', [{ filemakerId: 'x-1', state: 'failed' }]),
      /needs a reason/,
    );
    const n = await pool.query(
      `select 1 from source_manifest where run_id = 'run-3' union all select 1 from import_ledger where run_id = 'run-3'`,
    );
    assert.equal(n.rowCount, 0);
  });

  test('ledger lookup returns the last recorded file per id across runs, or within one run', async () => {
    await createRun(pool, { runId: 'run-4' });
    await createRun(pool, { runId: 'run-5' });
    await recordOutcomes(pool, 'run-4', 'API_Docs', [
      { filemakerId: 'doc-1', state: 'imported', s3Key: 'k/doc-1.pdf', bytes: 10, sha256: sha('a') },
      { filemakerId: 'doc-2', state: 'imported', s3Key: 'k/doc-2.pdf', bytes: 20, sha256: sha('b') },
    ]);
    await finishRun(pool, 'run-4', 'completed', {});
    await recordOutcomes(pool, 'run-5', 'API_Docs', [
      { filemakerId: 'doc-1', state: 'imported', s3Key: 'k/doc-1.pdf', bytes: 11, sha256: sha('c'), sourceModId: 3 },
      { filemakerId: 'doc-2', state: 'failed', reasonCode: 'DOWNLOAD_FAILED' },
    ]);
    const any = await ledgerLookup(pool, 'API_Docs', ['DOC-1', 'doc-2', 'doc-3']);
    assert.equal(any.get('doc-1')?.bytes, 11);
    assert.equal(any.get('doc-1')?.runId, 'run-5');
    assert.equal(any.get('doc-1')?.sourceModId, '3');
    assert.equal(any.get('doc-2')?.sha256, sha('b'), 'a later failure does not hide the file an earlier run stored');
    assert.equal(any.has('doc-3'), false);
    const completed = await ledgerLookup(pool, 'API_Docs', ['doc-1'], { completedOnly: true });
    assert.equal(completed.get('doc-1')?.bytes, 10);
    const one = await ledgerLookup(pool, 'API_Docs', ['doc-1', 'doc-2'], { runId: 'run-5' });
    assert.deepEqual([...one.keys()], ['doc-1']);
  });
});
