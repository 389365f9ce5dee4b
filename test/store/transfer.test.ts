import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import pg from 'pg';
import { upsertRows } from '../../src/store/upsert';
import type { FileContext } from '../../src/activities/files/context';
import { settleBatch, settleDownload, TransferLease } from '../../src/activities/files/lease';
import { createFileWrites, type FileWrites } from '../../src/activities/files/writes';
import { emptyChunkResult } from '../../src/activities/outcomes';
import { writeManifest } from '../../src/store/manifest';
import { transferUsedThisYear } from '../../src/store/transfer';
import { TransferQuotaError } from '../../src/errors';
import { createLogger } from '../../src/logger';
import { idFor, migratedDatabase, noteRow, patientRow } from './fixtures';

const database = migratedDatabase();

async function startRun(pool: pg.Pool, runId: string): Promise<void> {
  await pool.query(
    `insert into reimport_runs (run_id, workflow_id, status) values ($1, $1, 'running') on conflict do nothing`,
    [runId],
  );
}

/** Counts the statements sent through `pool.query` from now on; `query` sends one without counting it. */
function countStatements(pool: pg.Pool) {
  const query: typeof pool.query = pool.query.bind(pool);
  const counted = { statements: 0, query };
  pool.query = ((...args: Parameters<typeof pool.query>) => {
    counted.statements++;
    return query(...args);
  }) as typeof pool.query;
  return counted;
}

const writesOf = new WeakMap<pg.Pool, FileWrites>();

/** The group-committed writes of a pool, one per pool as a worker process has (deps.files.writes). */
function fileWritesFor(pool: pg.Pool): FileWrites {
  let w = writesOf.get(pool);
  if (!w) writesOf.set(pool, (w = createFileWrites(pool)));
  return w;
}

/** What settleDownload and settleBatch use of a batch's context. */
function batchContext(pool: pg.Pool, table: string, lease?: TransferLease): FileContext {
  return {
    deps: { logger: createLogger({ level: 'silent' }) },
    input: { table, offset: 0 },
    writes: fileWritesFor(pool),
    settlements: [],
    lease,
  } as unknown as FileContext;
}

describe('transfer quota and group-committed file writes', () => {
  let url: string;
  before(async () => {
    ({ url } = await database);
  });

  test('reservations from two workers at once never pass the budget; settlement moves the total to what arrived', async () => {
    // Two pools: two worker processes, each with its own group commit, contending for the same year total.
    const pools = [new pg.Pool({ connectionString: url, max: 4 }), new pg.Pool({ connectionString: url, max: 4 })];
    try {
      await pools[0]!.query('delete from transfer_log; delete from transfer_totals');
      const budget = 10_000;
      const outside = 1_000;
      const attempts = Array.from({ length: 60 }, (_, i) =>
        fileWritesFor(pools[i % 2]!)
          .reserve({
            runId: 'run-q',
            table: 'API_Docs',
            filemakerId: `D-${i}`,
            field: 'Doc',
            bytes: 500,
            budgetBytes: budget,
            usedOutsideBytes: outside,
          })
          .then(
            (r) => ({ ok: true as const, r }),
            (err: unknown) => ({ ok: false as const, err }),
          ),
      );
      const results = await Promise.all(attempts);
      const granted = results.filter((x) => x.ok);
      // (10,000 − 1,000) ÷ 500 = 18 fit; every other attempt is a TransferQuotaError.
      assert.equal(granted.length, 18);
      for (const x of results) if (!x.ok) assert.ok(x.err instanceof TransferQuotaError, String(x.err));
      assert.equal(await transferUsedThisYear(pools[0]!), 18 * 500);

      // Half the downloads broke after 200 bytes, one got 50 more than announced. Each worker settles its own in one
      // statement; settling twice changes nothing.
      const settlements = granted.map((x, i) => {
        if (!x.ok) throw new Error('unreachable');
        return { reservation: x.r, bytes: i === 0 ? 550 : i % 2 === 0 ? 500 : 200 };
      });
      await Promise.all(pools.map((p, w) => fileWritesFor(p).settle(settlements.filter((_, i) => i % 2 === w))));
      await fileWritesFor(pools[1]!).settle([settlements[0]!]);
      const expected = 550 + 8 * 500 + 9 * 200;
      assert.equal(await transferUsedThisYear(pools[0]!), expected, 'the log');
      const total = await pools[0]!.query<{ bytes: string }>('select bytes::text from transfer_totals');
      assert.equal(Number(total.rows[0]!.bytes), expected, 'the year total equals the log');
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  test('a batch settles its downloads at its end, except one that got more than it reserved: the total never counts less than was spent', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    try {
      await pool.query('delete from transfer_log; delete from transfer_totals');
      const writes = fileWritesFor(pool);
      const fc = batchContext(pool, 'API_Docs');
      const reserve = (id: string) =>
        writes.reserve({
          runId: 'run-s',
          table: 'API_Docs',
          filemakerId: id,
          field: 'Doc',
          bytes: 500,
          budgetBytes: 1_000_000,
          usedOutsideBytes: 0,
        });
      const [whole, broken, more] = await Promise.all([reserve('S-1'), reserve('S-2'), reserve('S-3')]);
      await settleDownload(fc, { reservation: whole, bytes: 500 });
      await settleDownload(fc, { reservation: broken, bytes: 200 });
      await settleDownload(fc, { reservation: more, bytes: 700 });
      assert.equal(fc.settlements.length, 2, 'the two that got no more than they reserved wait for the batch');
      assert.equal(
        await transferUsedThisYear(pool),
        500 + 500 + 700,
        'meanwhile, reservations count what they reserved',
      );
      await settleBatch(fc, false);
      assert.equal(fc.settlements.length, 0);
      assert.equal(await transferUsedThisYear(pool), 500 + 200 + 700);
      const open = await pool.query<{ n: number }>(`select count(*)::int as n from transfer_log where not settled`);
      assert.equal(open.rows[0]!.n, 0, 'every download settled');
    } finally {
      await pool.end();
    }
  });

  test('a transfer lease: files drawn from it cost no statement, it grows while the budget has room, and its settlement returns what was not spent', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    try {
      await pool.query('delete from transfer_log; delete from transfer_totals');
      const counted = countStatements(pool);
      const request = {
        runId: 'run-l',
        table: 'API_Images',
        filemakerId: 'lease@0',
        field: '',
        budgetBytes: 2_500,
        usedOutsideBytes: 0,
      };
      const lease = await TransferLease.open(fileWritesFor(pool), request, 1_000);
      assert.ok(lease, 'the budget has room for a lease');
      assert.equal(counted.statements, 1, 'one reservation');

      // Three files of 400 bytes: the third needs the lease to grow, both at once find the same one growth.
      assert.ok(await lease.take(400));
      assert.ok(await lease.take(400));
      const [third, fourth] = await Promise.all([lease.take(400), lease.take(400)]);
      assert.ok(third && fourth);
      assert.equal(counted.statements, 2, 'one growth for both');
      assert.equal(await transferUsedThisYear(pool), 2_000, 'both reservations count in full while the batch runs');
      assert.equal(await lease.take(1_001), false, 'more than a growth holds: the file reserves its own size');
      assert.equal(await lease.take(300), true, 'from what is left of the lease');
      assert.equal(await lease.take(400), false, 'no room for another growth in the budget');
      assert.equal(await lease.take(100), true, 'a draw that fits what is left still works');

      // Spent: 400 + 400 + 250 (one broke off) + 0 (refused before reading) + 300 + 100; the rest returns.
      lease.give(400, 400);
      lease.give(400, 400);
      lease.give(400, 250);
      lease.give(400, 0);
      lease.give(300, 300);
      lease.give(100, 100);
      const fc = batchContext(pool, 'API_Images', lease);
      await settleBatch(fc, false);
      assert.equal(fc.lease, undefined);
      assert.equal(await transferUsedThisYear(pool), 1_450);
      const open = await pool.query<{ n: number }>(`select count(*)::int as n from transfer_log where not settled`);
      assert.equal(open.rows[0]!.n, 0, 'both reservations settled');
      const total = await pool.query<{ bytes: string }>('select bytes::text from transfer_totals');
      assert.equal(Number(total.rows[0]!.bytes), 1_450, 'the year total equals the log');

      assert.equal(
        await TransferLease.open(fileWritesFor(pool), request, 1_051),
        undefined,
        'no room for a lease (1,050 bytes left): none',
      );
    } finally {
      await pool.end();
    }
  });

  test('a row and its ledger entry land in one statement; a row the database refuses takes its entry along', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    try {
      const writes = fileWritesFor(pool);
      const runId = 'run-r';
      await startRun(pool, runId);
      const patient = patientRow(90_000);
      await upsertRows(pool, 'patients', [patient], { runId });
      const counted = countStatements(pool);
      const rows = Array.from({ length: 6 }, (_, i) => noteRow(90_000 + i, patient.id));
      // Refused by the database (no such patient), not by the checks before it: only the statement can tell.
      rows[4] = { ...rows[4]!, patient_id: idFor('patients', 'no-such-patient') };
      const outcomes = await Promise.all(
        rows.map((row) =>
          writes.upsert('notes', row, runId, {
            sourceTable: 'API_Notes',
            entry: {
              recordId: row.filemaker_id,
              filemakerId: row.filemaker_id,
              state: 'imported',
              targetTable: 'notes',
              targetId: row.id,
            },
          }),
        ),
      );
      assert.deepEqual(
        outcomes.map((o) => o.status),
        ['inserted', 'inserted', 'inserted', 'inserted', 'failed', 'inserted'],
      );
      const ledger = await counted.query<{ filemaker_id: string; target_id: string }>(
        `select filemaker_id, target_id::text from import_ledger where run_id = $1 and source_table = 'API_Notes'
          order by filemaker_id`,
        [runId],
      );
      const landed = rows.filter((_, i) => i !== 4);
      assert.deepEqual(
        ledger.rows,
        landed.map((r) => ({ filemaker_id: r.filemaker_id, target_id: r.id })),
        'an entry for every row that landed, none for the refused one',
      );
      // The first row goes at once, the other five share the next statement, which is refused and halved down to
      // the bad row: never a separate statement for the ledger.
      assert.ok(counted.statements <= 6, `${counted.statements} statements for 6 rows and their entries`);
    } finally {
      await pool.end();
    }
  });

  test("a file's entry that names its record is written without reading the manifest; one without is resolved through it", async () => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    try {
      const writes = fileWritesFor(pool);
      const runId = 'run-k';
      await startRun(pool, runId);
      const patient = patientRow(91_000);
      await upsertRows(pool, 'patients', [patient], { runId });
      const [named, resolved] = [noteRow(91_001, patient.id), noteRow(91_002, patient.id)];
      await writeManifest(
        pool,
        runId,
        'API_Notes',
        [named, resolved].map((r, i) => ({
          record_id: `R${i + 1}`,
          filemaker_id: r.filemaker_id,
          id_issue: null,
          mod_id: '1',
          source_key: null,
        })),
      );
      // With the manifest of a run just read missing from the planner's statistics, the look-up by id became a hash
      // of the table's whole manifest for every file: 6 ms of database CPU per document in the bench.
      const texts: string[] = [];
      const query: typeof pool.query = pool.query.bind(pool);
      pool.query = ((...args: Parameters<typeof pool.query>) => {
        const q = args[0] as unknown;
        texts.push(typeof q === 'string' ? q : (q as { text: string }).text);
        return query(...args);
      }) as typeof pool.query;
      const upsert = (row: typeof named, recordId?: string) =>
        writes.upsert('notes', row, runId, {
          sourceTable: 'API_Notes',
          entry: { recordId, filemakerId: row.filemaker_id, state: 'imported', targetTable: 'notes', targetId: row.id },
        });
      assert.equal((await upsert(named, 'R1')).status, 'inserted');
      assert.equal(texts.length, 1);
      assert.doesNotMatch(texts[0]!, /source_manifest/, 'an entry naming its record reads no manifest');
      assert.equal((await upsert(resolved)).status, 'inserted');
      assert.match(texts[1]!, /source_manifest/, 'an entry without a record id is resolved through the manifest');
      const ledger = await query<{ record_id: string; filemaker_id: string }>(
        `select record_id, filemaker_id from import_ledger where run_id = $1 order by record_id`,
        [runId],
      );
      assert.deepEqual(ledger.rows, [
        { record_id: 'R1', filemaker_id: named.filemaker_id },
        { record_id: 'R2', filemaker_id: resolved.filemaker_id },
      ]);
    } finally {
      await pool.end();
    }
  });

  test('rows and ledger entries of concurrent files share statements and each file gets its own outcome', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    try {
      const writes = fileWritesFor(pool);
      const result = emptyChunkResult();
      const runId = 'run-g';
      await startRun(pool, runId);
      const counted = countStatements(pool);
      const ids = Array.from({ length: 20 }, (_, i) => `l-${i}`);
      await Promise.all(
        ids.map((id, i) =>
          writes.ledger(
            runId,
            'API_Docs',
            i === 3
              ? { recordId: id, filemakerId: id, state: 'failed', reasonCode: 'DOWNLOAD_FAILED', message: 'broken' }
              : { recordId: id, filemakerId: id, state: 'imported' },
            result,
          ),
        ),
      );
      assert.ok(
        counted.statements < ids.length / 2,
        `${counted.statements} statements for ${ids.length} concurrent entries`,
      );
      assert.equal(result.byState.imported, 19);
      assert.equal(result.byState.failed, 1);
      const rows = await counted.query<{ n: number }>(
        `select count(*)::int as n from import_ledger where run_id = $1 and source_table = 'API_Docs'`,
        [runId],
      );
      assert.equal(rows.rows[0]!.n, 20);
    } finally {
      await pool.end();
    }
  });
});
