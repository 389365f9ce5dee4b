// The pre-flight activity against the FileMaker simulator and a migrated database: it reads every layout's fields and
// count (side by side), returns the counts FileMaker holds, and refuses the run naming each layout that lacks a field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startSimulator } from '../../sim/server';
import { createLogger } from '../../src/logger';
import { createFileMakerClient, type FileMakerClient } from '../../src/filemaker';
import { SOURCE_TABLES, SOURCE_TABLE_NAMES } from '../../src/domain/tables';
import { migrate } from '../../src/store/migrate';
import { createPool } from '../../src/store/db';
import { preflight } from '../../src/activities/preflight';
import type { ActivityDeps } from '../../src/activities/deps';
import { createTestDatabase } from '../helpers/stack';

const PHASES = ['patients', 'appointments', 'notes', 'referrers', 'documents', 'images'] as const;

void test('pre-flight: the counts of every layout, and a refusal naming each layout that lacks a field', async () => {
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean' });
  const db = await createTestDatabase();
  await migrate(db.url);
  const pool = createPool({ url: db.url, caFile: undefined });
  const fm = createFileMakerClient({
    url: sim.url,
    database: sim.database,
    username: sim.username,
    password: sim.password,
    maxConcurrency: 4,
    logger: createLogger({ level: 'silent' }),
    requestTimeoutMs: 10_000,
  });
  const runs = { checkBucketWritable: async () => undefined, transferUsedThisYear: async () => 0 };
  const depsWith = (client: Pick<FileMakerClient, 'layoutFields' | 'count'>) =>
    ({
      pool,
      fm: client,
      logger: createLogger({ level: 'silent' }),
      config: { filemaker: { containerApi: 'odata', transferBudgetBytes: 1e9 } },
    }) as unknown as ActivityDeps;
  const input = { runId: 'preflight-test', phases: [...PHASES], dryRun: true };
  try {
    const ok = await preflight(depsWith(fm), runs, input);
    for (const table of SOURCE_TABLE_NAMES) {
      const res = await request(`${sim.adminUrl}/truth/tables/${encodeURIComponent(table)}`);
      const truth = (await res.body.json()) as { records: unknown[] };
      assert.equal(ok.sourceCounts[table], truth.records.length, table);
    }

    // Two layouts lose a field each, as on a file where fields were renamed: both are named, in the tables' order.
    const hidden = new Map([
      [SOURCE_TABLES.API_Notes.layout, 'Note'],
      [SOURCE_TABLES.API_Contacts.layout, SOURCE_TABLES.API_Contacts.requiredFields[1]!],
    ]);
    const renamed = {
      layoutFields: async (layout: string) => (await fm.layoutFields(layout)).filter((f) => f !== hidden.get(layout)),
      count: (table: string) => fm.count(table),
    };
    const expected = SOURCE_TABLE_NAMES.map((t) => SOURCE_TABLES[t].layout)
      .filter((l) => hidden.has(l))
      .map((l) => `${l} lacks ${hidden.get(l)}`);
    assert.equal(expected.length, 2);
    await assert.rejects(preflight(depsWith(renamed), runs, input), (err: Error & { type?: string }) => {
      assert.equal(err.type, 'PREFLIGHT_FAILED');
      assert.equal(err.message, `pre-flight failed: ${expected.join('; ')}`);
      return true;
    });
  } finally {
    await fm.close();
    await pool.end();
    await sim.close();
  }
});
