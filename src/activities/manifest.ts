/**
 * The manifest stage: every record of a source table as FileMaker lists it now (OData, paged by ROWID), stored for
 * the run and cross-checked against FileMaker's count; and, at validation, the records that arrived since.
 */
import { heartbeat } from '@temporalio/activity';
import { setTimeout as delay } from 'node:timers/promises';
import type { TableDelta } from '../domain/delta';
import { normalizeFileMakerId } from '../domain/ids';
import { manifestRows, type ManifestRead } from '../domain/manifest';
import { SOURCE_TABLES, type SourceTableName } from '../domain/tables';
import { FileMakerOverloadedError, ManifestError } from '../errors';
import { cleanString } from '../store/sanitize';
import { archiveVanished } from '../store/archive';
import { previousKeys, recordDelta, storedDelta } from '../store/delta';
import { planIncremental } from '../store/incremental';
import { patientRefsOf } from './records';
import { hasManifest, manifestRowIds, writeManifest } from '../store/manifest';
import { relinkableCount } from '../store/ledger';
import { FILE_TABLES } from './files';
import type { ActivityDeps } from './deps';
import { fileMakerLanes, inParallel } from '../parallel';
import type { Counts, ReimportActivities, VanishedCount } from './types';

/** Tables whose manifests are read at once: FileMaker's latency overlaps the writes and the deltas. */
const TABLES_IN_FLIGHT = 3;

const OWNER_TABLES: SourceTableName[] = ['API_Contacts', 'API_Referrer', 'API_Company'];
/** Ids of records that arrived during a run listed per table in its report; more are there for the next run. */
const ARRIVALS_LISTED = 1000;
const ARRIVALS_OVERLOAD_ATTEMPTS = 7;

/** A manifest source key as text (FileMaker numbers arrive as JSON numbers); empty as null. */
function sourceKeyText(v: unknown): string | null {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  // Cleaned like every text that reaches PostgreSQL: a NUL in a source key would fail the whole manifest insert.
  if (typeof v === 'string' && v.trim() !== '') return cleanString(v.trim());
  return null;
}
/** Reads one table's manifest from FileMaker over OData and stores it; the number of records. */
async function buildManifestOf(
  deps: ActivityDeps,
  runId: string,
  table: SourceTableName,
  sourceKeyField?: string,
  positions = false,
): Promise<number> {
  const { pool, fm, logger } = deps;
  const source = SOURCE_TABLES[table];
  const entries: ManifestRead[] = [];
  // The highest ROWID read, while every entry has one (key paging by ROWID); undefined otherwise.
  let maxRowId: bigint | undefined = 0n;
  const fields = sourceKeyField ? [sourceKeyField] : undefined;
  // FileMaker's count from the manifest's own response, when it came in one page (most tables: up to 10,000 records).
  let countedWithPage: number | undefined;
  const onCount = (n: number) => (countedWithPage = n);
  for await (const entry of fm.manifest(source.odataTable, { idField: source.idField, fields, onCount })) {
    if (maxRowId !== undefined && entry.rowId !== undefined && /^\d+$/.test(entry.rowId)) {
      const r = BigInt(entry.rowId);
      if (r > maxRowId) maxRowId = r;
    } else maxRowId = undefined;
    entries.push({
      record_id: entry.rowId ?? null,
      filemaker_id: normalizeFileMakerId(entry.id)?.value ?? null,
      id_issue: null,
      mod_id: entry.rowModId === undefined ? null : String(entry.rowModId),
      source_key: sourceKeyText(sourceKeyField ? entry.fields?.[sourceKeyField] : undefined),
    });
    if (entries.length % 2000 === 0) heartbeat({ table, records: entries.length });
  }
  const rows = manifestRows(entries);
  // Cross-check: the manifest must account for every record FileMaker counts, or something was skipped. On a live
  // file records arrive between the last page and the count; with ROWIDs, FileMaker counts only those at or below
  // the highest ROWID read: each of them that still exists was there when the key paging passed its place. The count
  // is asked while the manifest is written (it needs only the pages read). A manifest read in one page was counted in
  // that same answer: every record FileMaker counted then is on the page, or something was skipped.
  const [, counted] = await Promise.all([
    writeManifest(pool, runId, table, rows, { positions }),
    countedWithPage ??
      fm.count(source.odataTable, maxRowId !== undefined ? { rowIdAtMost: maxRowId.toString() } : undefined),
  ]);
  if (counted > rows.length) {
    throw new ManifestError(`${table}: manifest has ${rows.length} records, FileMaker counts ${counted}`);
  }
  const issues = rows.filter((r) => r.id_issue !== null).length;
  if (issues > 0) logger.warn({ table, records: issues }, 'records whose id cannot key a row: failed with a reason');
  return rows.length;
}

/**
 * Reads `table`'s manifest (for contact details first those of their owners not read yet) and records its delta
 * against the previous completed run, archiving the vanished records that run imported. With `keep`, a manifest the
 * run already read (an owner table, read for the contact details) is kept, not read again. With `positions` (a full
 * run) its records are stored with their places in the run's work list (see writeManifest).
 */
async function readManifest(
  deps: ActivityDeps,
  runId: string,
  table: SourceTableName,
  {
    sourceKeyField,
    keep = false,
    positions = false,
    inFlight,
  }: { sourceKeyField?: string; keep?: boolean; positions?: boolean; inFlight?: number } = {},
): Promise<{ count: number; delta: TableDelta }> {
  // Contact details are owned by patients, referrers and companies: know which of those exist first. An owner
  // table this run has already read keeps its manifest: read again from a live file, it would list records that
  // arrived after the owner's own import and that no phase of this run imports.
  // The owner tables are read side by side, as many as the run allows: each is a page or two and a count, mostly
  // FileMaker's latency.
  if (table === 'API_Contact_Details') {
    await inParallel(OWNER_TABLES, fileMakerLanes(OWNER_TABLES.length, inFlight), async (owner) => {
      if (!(await hasManifest(deps.pool, runId, owner)))
        await buildManifestOf(deps, runId, owner, undefined, positions);
    });
  }
  const kept = keep ? await manifestRowIds(deps.pool, runId, table) : undefined;
  const count = kept?.rows ? kept.rows : await buildManifestOf(deps, runId, table, sourceKeyField, positions);
  const delta = await recordDelta(deps.pool, runId, table);
  if (delta.vanished === 0) return { count, delta };
  const archived = await archiveVanished(deps.pool, runId, table);
  deps.logger.warn({ table, vanished: delta.vanished, archived }, 'records gone from FileMaker since the last run');
  return { count, delta: { ...delta, archived } };
}

/**
 * The `buildManifest` activity: a table's manifest and its delta against the previous completed run (counts; the ids
 * stay in the database). An incremental run reads its manifests up front (`readManifests`) and here plans the table:
 * the unchanged records carried over, `count` the records left to read. For a files table, also how many of those
 * records an earlier run settled at the version read (`relinkable`, see relinkableCount).
 */
export async function buildManifest(
  deps: ActivityDeps,
  input: Parameters<ReimportActivities['buildManifest']>[0],
): Promise<{ count: number; delta: TableDelta; carried?: Counts; relinkable?: number }> {
  const built = await tableManifest(deps, input);
  if (!FILE_TABLES.includes(input.table)) return built;
  const relinkable = await relinkableCount(deps.pool, input.runId, input.table, input.incremental === true);
  return { ...built, relinkable };
}

async function tableManifest(
  deps: ActivityDeps,
  { runId, table, sourceKeyField, incremental, inFlight }: Parameters<ReimportActivities['buildManifest']>[0],
): Promise<{ count: number; delta: TableDelta; carried?: Counts }> {
  // A full run's work list is the whole manifest: its records get their positions as it is written.
  if (!incremental) return readManifest(deps, runId, table, { sourceKeyField, inFlight, positions: true });
  const delta = await readOnce(deps, runId, table, sourceKeyField, inFlight);
  const plan = await planIncremental(deps.pool, runId, table, patientRefsOf(table));
  deps.logger.info(
    { table, baseRunId: plan.baseRunId, work: plan.work, carried: plan.carried },
    'incremental: unchanged records carried over',
  );
  return { count: plan.work, delta, carried: plan.carried };
}

/** An incremental run's manifest of `table` and its delta: as read up front, or read now when it was not. */
async function readOnce(
  deps: ActivityDeps,
  runId: string,
  table: SourceTableName,
  sourceKeyField?: string,
  inFlight?: number,
): Promise<TableDelta> {
  return (
    (await storedDelta(deps.pool, runId, table)) ??
    (await readManifest(deps, runId, table, { sourceKeyField, keep: true, inFlight })).delta
  );
}

/**
 * An incremental run's manifests, read up front (before any table is imported): every table of the run whose manifest
 * and delta are not stored yet (a retry goes on where it stopped). Returns, per table compared with a previous run,
 * how many of that run's records vanished: the gate before anything is deleted, without a census of its own.
 */
export async function readManifests(
  deps: ActivityDeps,
  { runId, tables, sourceKeyFields, inFlight }: Parameters<ReimportActivities['readManifests']>[0],
): Promise<VanishedCount[]> {
  const counts: (VanishedCount | undefined)[] = [];
  await inParallel(tables, fileMakerLanes(TABLES_IN_FLIGHT, inFlight), async (table, i) => {
    const delta = await readOnce(deps, runId, table, sourceKeyFields?.[table], inFlight);
    heartbeat({ table });
    if (delta.previousRunId === null) return;
    counts[i] = {
      table,
      previousRunId: delta.previousRunId,
      previous: delta.changed + delta.unchanged + delta.vanished,
      vanished: delta.vanished,
    };
  });
  return counts.filter((c) => c !== undefined);
}

/**
 * Before the delete phase (and in a dry run): per table, how many records the previous completed run listed that
 * FileMaker no longer has, from a read of FileMaker's record ids now. The ids stay in this activity; only counts
 * leave it. A first run's tables are left out.
 */
export async function vanishedCensus(
  deps: ActivityDeps,
  { runId, tables, inFlight }: Parameters<ReimportActivities['vanishedCensus']>[0],
): Promise<VanishedCount[]> {
  const counts: (VanishedCount | undefined)[] = [];
  await inParallel(tables, fileMakerLanes(TABLES_IN_FLIGHT, inFlight), async (table, i) => {
    const previous = await previousKeys(deps.pool, runId, table);
    if (!previous) return;
    const listed = previous.keys.size;
    const source = SOURCE_TABLES[table];
    let read = 0;
    for await (const entry of deps.fm.manifest(source.odataTable, { idField: source.idField })) {
      const key = previous.byRecordId ? entry.rowId : normalizeFileMakerId(entry.id)?.value;
      if (key !== undefined) previous.keys.delete(key);
      if (++read % 2000 === 0) heartbeat({ table, records: read });
    }
    counts[i] = { table, previousRunId: previous.previousRunId, previous: listed, vanished: previous.keys.size };
  });
  return counts.filter((c) => c !== undefined);
}

/**
 * Records FileMaker holds now that this run's manifest of `table` does not: ROWID above the manifest's highest, so
 * inserted after the table was read (FileMaker never gives a record id twice). Reported, not imported: the next run
 * imports them. Undefined when the manifest has no ROWIDs (a server that cannot select them).
 */
export async function arrivalsOf(
  deps: Pick<ActivityDeps, 'pool' | 'fm'>,
  runId: string,
  table: SourceTableName,
): Promise<string[] | undefined> {
  const { pool, fm } = deps;
  const m = await manifestRowIds(pool, runId, table);
  if (!m || m.with_row_id < m.rows) return undefined;
  const source = SOURCE_TABLES[table];
  // Validation has no durable cooldown of its own: an overload that outlasts the client's short repeats is waited
  // out here (about two minutes in all) before it fails the run.
  for (let attempt = 1; ; attempt++) {
    try {
      const arrivals: string[] = [];
      const opts = { idField: source.idField, afterRowId: m.max ?? '0' };
      for await (const e of fm.manifest(source.odataTable, opts)) {
        arrivals.push(normalizeFileMakerId(e.id)?.value ?? `ROWID ${e.rowId ?? '?'}`);
        if (arrivals.length >= ARRIVALS_LISTED) break;
      }
      return arrivals;
    } catch (err) {
      if (!(err instanceof FileMakerOverloadedError) || attempt >= ARRIVALS_OVERLOAD_ATTEMPTS) throw err;
      heartbeat({ table, overloaded: attempt });
      await delay(Math.min(30_000, 1000 * 2 ** attempt));
    }
  }
}
