/**
 * The hostile corpus (test/fixtures/hostile-corpus.ts) end to end on the real dev server, PostgreSQL, MinIO and the
 * FileMaker simulator (tiny): placed in the clinic's data, a dry run reports the records the clinic must fix before
 * anything is written, then one full reimport completes; every case ends as it states (ledger state and reason by
 * record id, row values, stored objects); every source record has exactly one terminal ledger state, no row is lost or
 * imported twice, no record is reported deleted, and the run's report names the records without a usable or unique id.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { normalizeFileMakerId } from '../../src/domain/ids';
import { IMPORT_PHASES, SOURCE_TABLES, SOURCE_TABLE_NAMES, type SourceTableName } from '../../src/domain/tables';
import { headObject } from '../../src/s3';
import type { PhaseResult } from '../../src/workflows/phase';
import type { ReimportResult } from '../../src/workflows/reimport';
import { HOSTILE_CORPUS, placeCorpus, type LedgerState, type PlacedRecord } from '../fixtures/hostile-corpus';
import { importedKeys, setup, start, type Setup } from '../helpers/files';
import { CORE_TARGET_OF } from '../helpers/targets';

const TERMINAL: readonly string[] = ['imported', 'unlinked', 'skipped', 'failed'] satisfies LedgerState[];
/** The reasons of records the clinic must fix in FileMaker: the report names each. */
const TO_FIX = ['MISSING_ID', 'DUPLICATE_ID'] as const;
/** Every phase of a reimport. */
const PHASES = ['backup', 'delete', ...IMPORT_PHASES, 'validation'];
const TARGET_OF: Partial<Record<SourceTableName, string>> = {
  ...CORE_TARGET_OF,
  API_Docs: 'documents',
  API_Images: 'images',
};

interface LedgerRow {
  source_table: string;
  record_id: string;
  filemaker_id: string | null;
  state: string;
  reason_code: string | null;
  message: string | null;
}

interface TruthRecord {
  table: SourceTableName;
  recordId: string;
  id: unknown;
}

/** Whether a report entry or message names a record: by its record id, or by its (normalised) id. */
const names = (text: string, recordId: string | number, id?: string | null) =>
  new RegExp(`(^|\\D)${recordId}(\\D|$)`).test(text) || (!!id && text.toLowerCase().includes(id));

const key = (table: string, recordId: string | number) => `${table}#${recordId}`;

describe('a hostile corpus, end to end', () => {
  let s: Setup;
  let placed: PlacedRecord[];
  let truth: TruthRecord[];
  const dryId = `dry-${randomUUID()}`;
  const runId = `run-${randomUUID()}`;
  let dry: { result: ReimportResult; phases: Map<string, PhaseResult>; rowsAfter: number; keysAfter: string[] };
  let run: { result?: ReimportResult; error?: unknown };
  let ledger: Map<string, LedgerRow>;

  const rowCount = async (table: string, where = 'true', values: unknown[] = []) =>
    (await s.pool.query<{ n: number }>(`select count(*)::int as n from ${table} where ${where}`, values)).rows[0]!.n;

  /** The run's ledger by record id; before record ids reach the ledger, through the manifest's. */
  async function ledgerByRecord(): Promise<Map<string, LedgerRow>> {
    const byRecordId = await s.pool.query(
      `select 1 from information_schema.columns where table_name = 'import_ledger' and column_name = 'record_id'`,
    );
    const sql = byRecordId.rowCount
      ? `select source_table, record_id, filemaker_id, state, reason_code, message from import_ledger where run_id = $1`
      : `select l.source_table, m.record_id, l.filemaker_id, l.state, l.reason_code, l.message
           from import_ledger l left join source_manifest m using (run_id, source_table, filemaker_id)
          where l.run_id = $1`;
    const rows = (await s.pool.query<LedgerRow>(sql, [runId])).rows;
    return new Map(rows.map((r) => [key(r.source_table, r.record_id), r]));
  }

  /** What the rule for ids says of a source record: a usable, unique id, or the reason it has none. */
  function idVerdict(r: TruthRecord): { reason?: (typeof TO_FIX)[number]; group: TruthRecord[] } {
    const id = normalizeFileMakerId(r.id)?.value;
    if (id === undefined) return { reason: 'MISSING_ID', group: [r] };
    const group = truth.filter((o) => o.table === r.table && normalizeFileMakerId(o.id)?.value === id);
    return group.length > 1 ? { reason: 'DUPLICATE_ID', group } : { group };
  }

  /** Per import phase, how many records the rule for ids fails for each reason. */
  function expectedToFix(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = Object.fromEntries(IMPORT_PHASES.map((p) => [p, {}]));
    for (const r of truth) {
      const { reason } = idVerdict(r);
      if (!reason) continue;
      const counts = out[SOURCE_TABLES[r.table].phase]!;
      counts[reason] = (counts[reason] ?? 0) + 1;
    }
    return out;
  }

  const needRun = () => {
    // The root cause only: the whole failure chain, once per test, would drown the report.
    let cause: unknown = run.error;
    while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
    if (run.error) throw new Error(`the run did not complete: ${cause instanceof Error ? cause.message : 'unknown'}`);
    assert.equal(run.result?.status, 'completed', 'the run completed');
  };

  before(async () => {
    s = await setup({ preset: 'tiny', seed: 31, sizeScale: 0.05 });
    const existingId = (table: string) => String(s.sim.dataset.table(table)!.at(0)!.fields.id);
    placed = placeCorpus((list) => s.sim.mutate(list), { existingId });
    truth = [];
    for (const table of SOURCE_TABLE_NAMES) {
      const res = await fetch(`${s.sim.adminUrl}/truth/tables/${encodeURIComponent(table)}`);
      const body = (await res.json()) as { records: { recordId: string | number; fieldData: { id?: unknown } }[] };
      for (const r of body.records) truth.push({ table, recordId: String(r.recordId), id: r.fieldData.id });
    }

    const dryResult = (await (await start(s, dryId, { phases: PHASES, dryRun: true })).result()) as ReimportResult;
    const phases = new Map<string, PhaseResult>();
    for (const phase of IMPORT_PHASES)
      phases.set(phase, (await s.client.workflow.getHandle(`${dryId}/${phase}`).result()) as PhaseResult);
    let rowsAfter = 0;
    for (const t of Object.values(TARGET_OF)) rowsAfter += await rowCount(t);
    dry = { result: dryResult, phases, rowsAfter, keysAfter: await importedKeys(s) };

    try {
      run = { result: (await (await start(s, runId, { phases: PHASES })).result()) as ReimportResult };
    } catch (error) {
      run = { error };
    }
    ledger = await ledgerByRecord();
  });
  after(async () => {
    await s?.close();
  });

  test('a dry run writes nothing', () => {
    assert.equal(dry.result.status, 'dry_run');
    assert.equal(dry.rowsAfter, 0, 'no target row was written');
    assert.deepEqual(dry.keysAfter, [], 'no object was stored');
  });

  test('a dry run counts every record, those without a usable or unique id among them', () => {
    const expected = expectedToFix();
    for (const phase of IMPORT_PHASES) {
      const got = dry.phases.get(phase)!;
      for (const t of got.tables) {
        const records = truth.filter((r) => r.table === t.table).length;
        assert.equal(t.manifest, records, `${t.table}: the dry run's manifest holds every record`);
        assert.equal(t.imported + t.unlinked + t.skipped + t.failed, records, `${t.table}: every record gets a state`);
      }
      const counted = Object.fromEntries(TO_FIX.flatMap((r) => (got.byReason[r] ? [[r, got.byReason[r]]] : [])));
      assert.deepEqual(counted, expected[phase], `${phase}: dry-run counts`);
    }
  });

  test('the dry run names the records the clinic must fix', () => {
    for (const r of placed) {
      if (!r.expect.reason || !(TO_FIX as readonly string[]).includes(r.expect.reason)) continue;
      const listed = dry.phases.get(SOURCE_TABLES[r.table].phase)?.failedIds[r.expect.reason] ?? [];
      assert.ok(
        listed.some((e) => names(e, r.recordId, r.expect.filemakerId)),
        `${r.case}: the dry run names record ${r.recordId}`,
      );
    }
  });

  test('the reimport completes', async () => {
    needRun();
    const status = await s.pool.query<{ status: string }>('select status from reimport_runs where run_id = $1', [
      runId,
    ]);
    assert.equal(status.rows[0]?.status, 'completed');
  });

  for (const c of HOSTILE_CORPUS) {
    test(`case: ${c.name}`, async () => {
      needRun();
      for (const r of placed.filter((x) => x.case === c.name)) {
        const what = `${r.table} record ${r.recordId}`;
        const l = ledger.get(key(r.table, r.recordId));
        assert.ok(l, `${what} has a ledger entry`);
        assert.deepEqual(
          { state: l.state, reason: l.reason_code ?? undefined, filemakerId: l.filemaker_id },
          { state: r.expect.state, reason: r.expect.reason, filemakerId: r.expect.filemakerId },
          `${what}: ledger`,
        );
        const { table, row, object } = r.expect;
        const id = r.expect.filemakerId;
        if (id === null) continue;
        if (!row) {
          assert.ok(
            r.expect.state !== 'imported' && r.expect.state !== 'unlinked',
            `${what}: a stored record has a row`,
          );
          assert.equal(await rowCount(table, 'filemaker_id = $1', [id]), 0, `${what}: no ${table} row`);
          continue;
        }
        const exprs = Object.keys(row);
        const columns = exprs.map((e, n) => `(${e}) as c${n}`);
        if (object !== undefined) columns.push('s3_key');
        const got = await s.pool.query<Record<string, unknown>>(
          `select ${columns.join(', ')} from ${table} where filemaker_id = $1`,
          [id],
        );
        assert.equal(got.rows.length, 1, `${what}: one ${table} row`);
        const values = got.rows[0]!;
        assert.deepEqual(
          Object.fromEntries(exprs.map((e, n) => [e, values[`c${n}`]])),
          row,
          `${what}: ${table} row values`,
        );
        if (object === undefined) continue;
        const s3Key = values.s3_key as string | null;
        if (object === null || s3Key === null) {
          assert.equal(object === null, s3Key === null, `${what}: an object where one is expected, none elsewhere`);
          continue;
        }
        assert.ok(
          s3Key?.endsWith(`.${object.extension}`),
          `${what}: key ${s3Key ?? '(none)'} ends .${object.extension}`,
        );
        const head = await headObject(s.s3, s.bucket, s3Key);
        assert.ok(head, `${what}: the object exists`);
        assert.equal(head.contentType, object.contentType, `${what}: content type`);
        if (object.contentDisposition)
          assert.equal(head.contentDisposition, object.contentDisposition, `${what}: content disposition`);
      }
    });
  }

  test('every source record has exactly one terminal ledger state, by record id', async () => {
    needRun();
    const manifest = await s.pool.query<{ source_table: string; record_id: string }>(
      'select source_table, record_id from source_manifest where run_id = $1',
      [runId],
    );
    const inManifest = new Set(manifest.rows.map((m) => key(m.source_table, m.record_id)));
    assert.equal(inManifest.size, manifest.rows.length, 'no record twice in the manifest');
    const missing = truth.filter((r) => !inManifest.has(key(r.table, r.recordId)));
    assert.deepEqual(missing, [], 'every source record is in the manifest');
    const unaccounted = [...inManifest].filter((k) => !TERMINAL.includes(ledger.get(k)?.state ?? ''));
    assert.deepEqual(unaccounted, [], 'manifest records without a terminal state');
    const stray = [...ledger.keys()].filter((k) => !inManifest.has(k));
    assert.deepEqual(stray, [], 'ledger entries of no manifest record');
    // A full run's work list is its whole manifest: each table's records hold the positions 0 … n−1, once each.
    const places = await s.pool.query<{ source_table: string; n: number; placed: number; first: number; last: number }>(
      `select source_table, count(*)::int as n, count(distinct work_pos)::int as placed, min(work_pos) as first,
              max(work_pos) as last
         from source_manifest where run_id = $1 group by source_table`,
      [runId],
    );
    for (const p of places.rows) assert.deepEqual([p.placed, p.first, p.last], [p.n, 0, p.n - 1], p.source_table);
    const deleted = [...ledger.values()].filter((l) => l.reason_code === 'SOURCE_DELETED');
    assert.deepEqual(deleted, [], 'nothing was deleted from the source: no record is SOURCE_DELETED');
  });

  test('no row is lost or imported twice', async () => {
    needRun();
    for (const [source, target] of Object.entries(TARGET_OF)) {
      const entries = [...ledger.values()].filter((l) => l.source_table === source);
      // Documents keep a row for every record they could key, whatever its state; the others for the stored ones.
      const keyedDocument = (l: LedgerRow) =>
        l.filemaker_id !== null && !['DUPLICATE_ID', 'INVALID_FILEMAKER_ID'].includes(l.reason_code ?? '');
      const expected = new Set(
        entries
          .filter((l) => (target === 'documents' ? keyedDocument(l) : ['imported', 'unlinked'].includes(l.state)))
          .map((l) => l.filemaker_id),
      );
      const rows = await s.pool.query<{ filemaker_id: string }>(
        `select filemaker_id from ${target} where import_run_id = $1`,
        [runId],
      );
      const ids = rows.rows.map((r) => r.filemaker_id);
      assert.equal(new Set(ids).size, ids.length, `${target}: no id twice`);
      assert.deepEqual(ids.sort(), [...expected].sort(), `${target}: the rows are the ${source} records stored`);
    }
    const traversal = (await importedKeys(s)).filter((k) => k.includes('..') || k.includes('//'));
    assert.deepEqual(traversal, [], 'no S3 key holds a path');
  });

  test('every record of the source follows the rule for ids: MISSING_ID, DUPLICATE_ID naming the group, or keyed', () => {
    needRun();
    for (const r of truth) {
      const l = ledger.get(key(r.table, r.recordId));
      assert.ok(l, `${r.table} record ${r.recordId} has a ledger entry`);
      const { reason, group } = idVerdict(r);
      if (!reason) {
        assert.ok(!(TO_FIX as readonly string[]).includes(l.reason_code ?? ''), `${r.table} ${r.recordId} is keyed`);
        continue;
      }
      assert.deepEqual([l.state, l.reason_code], ['failed', reason], `${r.table} record ${r.recordId}`);
      for (const o of group)
        assert.ok(
          names(l.message ?? '', o.recordId),
          `${r.table} ${r.recordId}: the message names record ${o.recordId}`,
        );
    }
  });

  test("the run's report names the records the clinic must fix", async () => {
    needRun();
    const summary = await s.pool.query<{
      summary: { phases?: { phase: string; failedIds?: Record<string, string[]> }[] };
    }>('select summary from reimport_runs where run_id = $1', [runId]);
    const phases = summary.rows[0]?.summary.phases ?? [];
    for (const r of placed) {
      if (!r.expect.reason || !(TO_FIX as readonly string[]).includes(r.expect.reason)) continue;
      const listed = phases.find((p) => p.phase === SOURCE_TABLES[r.table].phase)?.failedIds?.[r.expect.reason] ?? [];
      assert.ok(
        listed.some((e) => names(e, r.recordId, r.expect.filemakerId)),
        `${r.case}: the report names record ${r.recordId}`,
      );
    }
  });

  test('the dry run on an empty database predicted the states the run gave the records (files phases aside: it downloads nothing)', async () => {
    needRun();
    const real = await s.pool.query<{ source_table: string; state: string; n: number }>(
      'select source_table, state, count(*)::int as n from import_ledger where run_id = $1 group by 1, 2',
      [runId],
    );
    for (const phase of IMPORT_PHASES.filter((p) => p !== 'documents' && p !== 'images')) {
      const predicted = dry.phases.get(phase)!;
      for (const t of predicted.tables) {
        const did = Object.fromEntries(
          TERMINAL.map((st) => [st, real.rows.find((x) => x.source_table === t.table && x.state === st)?.n ?? 0]),
        );
        const said = { imported: t.imported, unlinked: t.unlinked, skipped: t.skipped, failed: t.failed };
        assert.deepEqual(said, did, `${t.table}: dry-run states = the run's`);
      }
    }
  });
});
