/**
 * The manifest and the ledger on real PostgreSQL, keyed by FileMaker's record id: a record without an id and records
 * sharing one are accounted for as records, an entry names its record through the manifest, and the balance counts
 * records, so one record without a terminal state shows.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import type pg from 'pg';
import { manifestRows, type ManifestRead } from '../../src/domain/manifest';
import { emptyChunkResult, recordLedger, splitIdIssues } from '../../src/activities/outcomes';
import { ledgerBalance } from '../../src/store/ledger';
import { manifestSlice, writeManifest } from '../../src/store/manifest';
import { migratedDatabase } from './fixtures';

const database = migratedDatabase();
const TABLE = 'API_Notes';

const read = (record_id: string, filemaker_id: string | null): ManifestRead => ({
  record_id,
  filemaker_id,
  id_issue: null,
  mod_id: '1',
  source_key: null,
});

describe('record identity in the manifest and the ledger', () => {
  let pool: pg.Pool;
  before(async () => {
    ({ pool } = await database);
  });

  /** A run whose manifest holds records 1–5 and 10: ids a, (none), b, a again, c, d. */
  async function run(): Promise<string> {
    const runId = `run-${randomUUID()}`;
    await pool.query('insert into reimport_runs (run_id) values ($1)', [runId]);
    const rows = manifestRows([
      read('1', 'a'),
      read('2', null),
      read('3', 'b'),
      read('4', 'a'),
      read('5', 'c'),
      read('10', 'd'),
    ]);
    await writeManifest(pool, runId, TABLE, rows);
    return runId;
  }

  test('every record gets one entry; one without a terminal state fails the balance', async () => {
    const runId = await run();
    const slice = await manifestSlice(pool, runId, TABLE, 0, 100);
    assert.deepEqual(
      slice.map((e) => e.recordId),
      ['1', '2', '3', '4', '5', '10'],
      'record id order',
    );
    const { failed, keyed } = splitIdIssues(TABLE, slice);
    assert.deepEqual(
      keyed.map((k) => k.id),
      ['b', 'c', 'd'],
    );
    const result = emptyChunkResult();
    // Entries of keyed records name them by id only, as the upserts do: the manifest says which record that is.
    await recordLedger(
      pool,
      runId,
      TABLE,
      [...failed, ...keyed.map((k) => ({ filemakerId: k.id, state: 'imported' as const }))],
      result,
    );
    assert.deepEqual(result.byState, { imported: 3, unlinked: 0, skipped: 0, failed: 3 });
    assert.deepEqual(result.failedIds, { DUPLICATE_ID: ['a', 'a'], MISSING_ID: ['record 2'] });
    const ledger = await pool.query<{ record_id: string; filemaker_id: string | null; reason_code: string | null }>(
      `select record_id, filemaker_id, reason_code from import_ledger where run_id = $1 order by record_id::int`,
      [runId],
    );
    assert.deepEqual(
      ledger.rows.map((r) => [r.record_id, r.filemaker_id, r.reason_code]),
      [
        ['1', 'a', 'DUPLICATE_ID'],
        ['2', null, 'MISSING_ID'],
        ['3', 'b', null],
        ['4', 'a', 'DUPLICATE_ID'],
        ['5', 'c', null],
        ['10', 'd', null],
      ],
    );
    const dup = await pool.query<{ message: string }>(
      `select message from import_ledger where run_id = $1 and record_id = '4'`,
      [runId],
    );
    assert.match(dup.rows[0]!.message, /records 1, 4 share one id/);

    const balanced = await ledgerBalance(pool, runId, TABLE);
    assert.equal(balanced.manifest, 6);
    assert.deepEqual(balanced.missing, []);
    assert.deepEqual(balanced.by, { imported: 3, failed: 3 });

    await pool.query(`delete from import_ledger where run_id = $1 and record_id = '10'`, [runId]);
    const short = await ledgerBalance(pool, runId, TABLE);
    assert.deepEqual(short.missing, ['10'], 'the record without a terminal state is named by its record id');
    assert.equal(short.by.missing, 1);
  });

  test('an entry for an id the manifest does not hold is refused, not written against no record', async () => {
    const runId = await run();
    await assert.rejects(
      recordLedger(pool, runId, TABLE, [{ filemakerId: 'zzz', state: 'imported' }], emptyChunkResult()),
      /record_id/,
    );
    // A shared id names no single record either.
    await assert.rejects(
      recordLedger(pool, runId, TABLE, [{ filemakerId: 'a', state: 'imported' }], emptyChunkResult()),
      /record_id/,
    );
  });

  test("a full run's slices are ranges of positions: every record once, in record id order, found by index", async () => {
    // Read out of order, as pages of a live file can come; 2,500 records, sliced 40 at a time as a files phase does.
    const ids = Array.from({ length: 2500 }, (_, i) => String(((i * 7919) % 2500) + 1));
    const rows = manifestRows(ids.map((id) => read(id, `n-${id}`)));
    const sliced = async (runId: string) => {
      const got: string[] = [];
      for (let offset = 0; offset < rows.length + 40; offset += 40) {
        got.push(...(await manifestSlice(pool, runId, TABLE, offset, 40)).map((e) => e.recordId));
      }
      return got;
    };
    const expected = Array.from({ length: 2500 }, (_, i) => String(i + 1));

    const positioned = `run-${randomUUID()}`;
    await pool.query('insert into reimport_runs (run_id) values ($1)', [positioned]);
    await writeManifest(pool, positioned, TABLE, rows, { positions: true });
    const texts: string[] = [];
    const query = pool.query.bind(pool);
    pool.query = ((...args: Parameters<typeof pool.query>) => {
      texts.push(String(args[0]));
      return query(...args);
    }) as typeof pool.query;
    try {
      assert.deepEqual(await sliced(positioned), expected);
      // No slice reads the records before it: the last one, at position 2,480, reads 20 rows, not 2,500.
      const plan = await query<{ 'QUERY PLAN': unknown }>(
        `explain (analyze, format json) ${texts.find((t) => t.includes('work_pos'))}`,
        [positioned, TABLE, 2480, 40],
      );
      const rowsRead = [...JSON.stringify(plan.rows[0]!['QUERY PLAN']).matchAll(/"Actual Rows":(\d+)/g)].map((m) =>
        Number(m[1]),
      );
      assert.equal(Math.max(...rowsRead), 20, `rows read by the plan's steps: ${rowsRead.join(', ')}`);
      assert.ok(
        texts.every((t) => !/\boffset\b/.test(t)),
        'no slice of a positioned manifest is read by offset',
      );
    } finally {
      pool.query = query;
    }

    // A manifest written without positions (before they existed; a run resumed across the upgrade) is still sliced
    // whole, by offset in the same order.
    const unpositioned = `run-${randomUUID()}`;
    await pool.query('insert into reimport_runs (run_id) values ($1)', [unpositioned]);
    await writeManifest(pool, unpositioned, TABLE, rows);
    assert.deepEqual(await sliced(unpositioned), expected);
  });

  test('a manifest written again (an activity retried) replaces the first', async () => {
    const runId = await run();
    await writeManifest(pool, runId, TABLE, manifestRows([read('3', 'b'), read('11', 'a')]));
    const slice = await manifestSlice(pool, runId, TABLE, 0, 100);
    assert.deepEqual(
      slice.map((e) => [e.recordId, e.filemakerId, e.idIssue]),
      [
        ['3', 'b', null],
        ['11', 'a', null],
      ],
    );
  });
});
