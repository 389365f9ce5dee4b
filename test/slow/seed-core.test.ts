/**
 * Slow suite: the core phases at the clinic's real counts (`seed` preset) reconcile with the simulator's ground
 * truth. Every source id ends in a terminal state; every row equals what the pure mapper makes of the source record
 * (through the store's own cleaning, compared after PostgreSQL's own type conversion), and a source record the
 * mapper skips or rejects has no row. A second run leaves identical table fingerprints. Prints the largest history.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { loadMapContext, mapperFor } from '../../src/activities/records';
import type { ActivityDeps } from '../../src/activities/deps';
import { SOURCE_TABLES, type SourceTableName } from '../../src/domain/tables';
import { CORE_TARGET_OF } from '../helpers/targets';
import type { FmRecord } from '../../src/domain/types';
import { prepareRow } from '../../src/store/sanitize';
import { TABLE_SPECS } from '../../src/store/schema';
import type { RunningWorker } from '../../src/worker';
import type { ReimportResult } from '../../src/workflows/reimport';
import { start } from '../helpers/files';
import { prepareRun, startTestWorker, type TestRun } from '../helpers/run';

const PHASES = ['backup', 'delete', 'patients', 'appointments', 'notes', 'referrers', 'validation'];
/** Source table → the target table its rows land in (contact details are folded into patients). */
const TARGETS = Object.fromEntries(
  Object.entries(CORE_TARGET_OF).filter(([source]) => source !== 'API_Contact_Details'),
) as Partial<Record<SourceTableName, keyof typeof TABLE_SPECS>>;
// filemaker_metadata is the record as the Data API answered it (layout fields, FileMaker's number and date text),
// not as the truth endpoint lists it; the mapped columns are what this test reconciles.
const SKIP_COLUMNS = new Set(['created_at', 'updated_at', 'import_run_id', 'filemaker_metadata']);

describe('core phases at seed scale', () => {
  let s: TestRun;
  let worker: RunningWorker;
  before(async () => {
    s = await prepareRun({ preset: 'seed', seed: 42 }, 'seed');
    worker = await startTestWorker(s, 'error');
  });
  after(async () => {
    await worker?.shutdown();
    await s?.close();
  });

  const truth = async (table: string) => {
    const res = await fetch(`${s.sim.adminUrl}/truth/tables/${table}`);
    return ((await res.json()) as { records: FmRecord[] }).records;
  };

  const fingerprints = async () => {
    const out: Record<string, string> = {};
    for (const t of Object.values(TARGETS)) {
      const r = await s.pool.query<{ fp: string }>(
        `select md5(coalesce(string_agg(md5((to_jsonb(t) - 'created_at' - 'updated_at' - 'import_run_id')::text), ''
                order by filemaker_id), '')) as fp from ${t} t`,
      );
      out[t] = r.rows[0]!.fp;
    }
    return out;
  };

  test(
    'every source id is terminal and every row is the mapping of its source record',
    { timeout: 1_800_000 },
    async () => {
      const runId = `seed-${randomUUID()}`;
      const result = (await (await start(s, runId, { phases: PHASES })).result()) as ReimportResult;
      assert.equal(result.status, 'completed', 'seed run completed');
      console.log(`seed core run: largest history per execution ${result.largestHistory} events`);
      assert.ok(result.largestHistory < 10_000, 'every execution stays under 10,000 events');

      const deps = { pool: s.pool, config: { clinicTimeZone: 'Australia/Sydney' } } as unknown as ActivityDeps;
      for (const [table, target] of Object.entries(TARGETS) as [SourceTableName, keyof typeof TABLE_SPECS][]) {
        const records = await truth(table);
        const ledger = await s.pool.query<{ filemaker_id: string; state: string }>(
          'select filemaker_id, state from import_ledger where run_id = $1 and source_table = $2',
          [runId, table],
        );
        const states = new Map(ledger.rows.map((r) => [r.filemaker_id, r.state]));
        const ctx = await loadMapContext(deps, runId, table);
        const mapper = mapperFor(table)!;
        const expected: Record<string, unknown>[] = [];
        const absent: string[] = [];
        for (const rec of records) {
          const id = String(rec.fieldData[SOURCE_TABLES[table].idField] ?? '')
            .trim()
            .toLowerCase();
          if (id === '') continue;
          assert.ok(
            ['imported', 'unlinked', 'skipped', 'failed'].includes(states.get(id) ?? ''),
            `${table} ${id} terminal`,
          );
          const o = mapper(rec, ctx);
          if (o.kind !== 'row') {
            absent.push(id);
            continue;
          }
          const prepared = prepareRow(TABLE_SPECS[target], o.row);
          if (prepared.ok) expected.push(prepared.values);
          else absent.push(id);
        }
        // PostgreSQL converts both sides the same way: the mapped rows through the table's types, the stored as is.
        const diff = await s.pool.query<{ filemaker_id: string; col: string }>(
          `with want as (
           select r.filemaker_id, to_jsonb(r) as j from jsonb_populate_recordset(null::${target}, $1::jsonb) r),
         have as (select t.filemaker_id, to_jsonb(t) as j from ${target} t)
         select w.filemaker_id, k.col from want w left join have h using (filemaker_id)
           cross join lateral (select key as col from jsonb_each(w.j)) k
          where not (k.col = any($2::text[])) and (h.j is null or h.j -> k.col is distinct from w.j -> k.col)
          limit 20`,
          [JSON.stringify(expected), [...SKIP_COLUMNS]],
        );
        assert.deepEqual(diff.rows, [], `${table}: stored rows equal the mapped source (first differences)`);
        const stray = await s.pool.query<{ n: number }>(
          `select count(*)::int as n from ${target} where filemaker_id = any($1::text[])`,
          [absent],
        );
        assert.equal(stray.rows[0]!.n, 0, `${table}: no row for a source record the mapper skips or rejects`);
        const count = await s.pool.query<{ n: number }>(`select count(*)::int as n from ${target}`);
        assert.equal(count.rows[0]!.n, expected.length, `${table}: one row per mapped source record`);
      }

      const before = await fingerprints();
      const again = (await (await start(s, `seed-${randomUUID()}`, { phases: PHASES })).result()) as ReimportResult;
      assert.equal(again.status, 'completed', 'second seed run completed');
      assert.deepEqual(await fingerprints(), before, 'a second run leaves identical fingerprints');
    },
  );
});
