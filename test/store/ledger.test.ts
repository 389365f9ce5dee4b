import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type pg from 'pg';
import { emptyChunkResult, recordLedger, type LedgerEntry } from '../../src/activities/ledger';
import { ledgerLookup } from '../../src/store/ledger';
import { finishRun, startRun } from '../../src/store/runs';
import { migratedDatabase } from './fixtures';

const database = migratedDatabase();
const sha = (c: string) => c.repeat(64);

describe('ledger', () => {
  let pool: pg.Pool;
  before(async () => {
    ({ pool } = await database);
  });

  // Entries name their record directly: these runs have no manifest to resolve an id against.
  const record = (runId: string, entries: LedgerEntry[]) =>
    recordLedger(
      pool,
      runId,
      'API_Docs',
      entries.map((e) => ({ recordId: e.filemakerId!, ...e })),
      emptyChunkResult(),
    );

  test('runs are registered once and finished with a status and their report merged into the summary', async () => {
    await startRun(pool, 'run-1', 'wf-1', { phases: ['notes'] });
    await startRun(pool, 'run-1', 'wf-other', {});
    await finishRun(pool, 'run-1', 'completed', { notes: { imported: 3 } });
    await finishRun(pool, 'run-1', 'completed', { validation: { ok: true } });
    const r = await pool.query(`select workflow_id, options, status, summary, finished_at from reimport_runs
                                 where run_id = 'run-1'`);
    const run = r.rows[0] as Record<string, unknown>;
    assert.equal(run.workflow_id, 'wf-1');
    assert.deepEqual(run.options, { phases: ['notes'] });
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.summary, { notes: { imported: 3 }, validation: { ok: true } });
    assert.ok(run.finished_at instanceof Date);
  });

  test('ledger lookup returns the last recorded file per id across runs, or within one run', async () => {
    await startRun(pool, 'run-4', 'run-4', {});
    await startRun(pool, 'run-5', 'run-5', {});
    await record('run-4', [
      { filemakerId: 'doc-1', state: 'imported', s3Key: 'k/doc-1.pdf', bytes: 10, sha256: sha('a') },
      { filemakerId: 'doc-2', state: 'imported', s3Key: 'k/doc-2.pdf', bytes: 20, sha256: sha('b') },
    ]);
    await finishRun(pool, 'run-4', 'completed', {});
    await record('run-5', [
      { filemakerId: 'doc-1', state: 'imported', s3Key: 'k/doc-1.pdf', bytes: 11, sha256: sha('c'), sourceModId: '3' },
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
