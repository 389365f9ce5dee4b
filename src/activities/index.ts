/**
 * createActivities(deps): every activity of the reimport, over explicit dependencies (pool, S3, FileMaker client,
 * config, logger). Activities speak in ids, counts and keys; errors that the workflow acts on are ApplicationFailures
 * whose type is the error's stable code.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { FileMakerOverloadedError, FmReimportError, ManifestError, TransferQuotaError } from '../errors';
import { ERROR_CODES } from '../error-codes';
import { normalizeFileMakerId } from '../domain/ids';
import { SOURCE_TABLES, type SourceTableName } from '../domain/tables';
import type { FmRecord, MapContext, MapOutcome } from '../domain/types';
import { mapDocument } from '../domain/mappers/documents';
import { mapImage } from '../domain/mappers/images';
import { checkSchemaVersion } from '../store/migrate';
import { cleanString, refusalOf } from '../store/sanitize';
import type { ActivityDeps } from './deps';
import { importRecordChunk, loadMapContext, mapperFor, targetFor, type SourceOwners } from './records';
import type { DryRunTableResult, ReimportActivities, TableReconciliation } from './types';
import { runBookkeeping } from './runs';
import { ledgerBalance } from '../store/ledger';
import { hasManifest, manifestRowIds, writeManifest } from '../store/manifest';
import { manifestRows, type ManifestRead } from '../domain/manifest';
import { missingFields } from './source-checks';
import { FILE_TABLES, hasContainer, importFileBatch } from './files';
import { transferUsedByRun } from '../store/transfer';
import { estimateDownloadBytes, reconcileObjects, verifyObjects } from './verify';
import { importExportBatch } from './export-images';
import { CONTAINER_PATH_REASONS, probeContainerPath } from './container-probe';

export type { ActivityDeps } from './deps';

const OWNER_TABLES: SourceTableName[] = ['API_Contacts', 'API_Referrer', 'API_Company'];
/** Ids of records that arrived during a run listed per table in its report; more are there for the next run. */
const ARRIVALS_LISTED = 1000;
const ARRIVALS_OVERLOAD_ATTEMPTS = 7;
/** Ids a dry run lists per reason, for the clinic to fix before the run. */
const DRY_RUN_IDS_LISTED = 20;

/** Converts our errors into ApplicationFailures the workflow can branch on (by `type`, never by class). */
export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof FileMakerOverloadedError || err instanceof TransferQuotaError) {
    return ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: true });
  }
  if (err instanceof FmReimportError) {
    return ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: !err.retryable });
  }
  return err;
}

function wrap<T extends Record<string, (...args: never[]) => Promise<unknown>>>(acts: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(acts)) {
    out[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toFailure(err);
      }
    };
  }
  return out as T;
}

/** A manifest source key as text (FileMaker numbers arrive as JSON numbers); empty as null. */
function sourceKeyText(v: unknown): string | null {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  // Cleaned like every text that reaches PostgreSQL: a NUL in a source key would fail the whole manifest insert.
  if (typeof v === 'string' && v.trim() !== '') return cleanString(v.trim());
  return null;
}

/** The mapper a dry run counts outcomes with: the core mappers, and the files tables' record mappers. */
function dryRunMapper(table: SourceTableName): ((r: FmRecord, ctx: MapContext) => MapOutcome<unknown>) | undefined {
  if (table === 'API_Docs') return mapDocument;
  if (table === 'API_Images') return mapImage;
  return mapperFor(table);
}

export function createActivities(deps: ActivityDeps): ReimportActivities {
  const { pool, fm, config, logger } = deps;
  const runs = runBookkeeping(deps);

  const buildManifestOf = async (runId: string, table: SourceTableName, sourceKeyField?: string): Promise<number> => {
    const source = SOURCE_TABLES[table];
    const entries: ManifestRead[] = [];
    // The highest ROWID read, while every entry has one (key paging by ROWID); undefined otherwise.
    let maxRowId: bigint | undefined = 0n;
    const fields = sourceKeyField ? [sourceKeyField] : undefined;
    for await (const entry of fm.manifest(source.odataTable, { idField: source.idField, fields })) {
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
    await writeManifest(pool, runId, table, rows);
    // Cross-check: the manifest must account for every record FileMaker counts, or something was skipped. On a live
    // file records arrive between the last page and the count; with ROWIDs, FileMaker counts only those at or below
    // the highest ROWID read: each of them that still exists was there when the key paging passed its place.
    const counted = await fm.count(
      source.odataTable,
      maxRowId !== undefined ? { rowIdAtMost: maxRowId.toString() } : undefined,
    );
    if (counted > rows.length) {
      throw new ManifestError(`${table}: manifest has ${rows.length} records, FileMaker counts ${counted}`);
    }
    const issues = rows.filter((r) => r.id_issue !== null).length;
    if (issues > 0) logger.warn({ table, records: issues }, 'records whose id cannot key a row: failed with a reason');
    return rows.length;
  };

  /**
   * Records FileMaker holds now that this run's manifest of `table` does not: ROWID above the manifest's highest, so
   * inserted after the table was read (FileMaker never gives a record id twice). Reported, not imported: the next run
   * imports them. Undefined when the manifest has no ROWIDs (a server that cannot select them).
   */
  const arrivalsOf = async (runId: string, table: SourceTableName): Promise<string[] | undefined> => {
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
  };

  /**
   * `phase`: the files phase's own reconciliation (objects listed with the ETag recorded when they were confirmed
   * on storing; any other one HEADed);
   * `validation`: the run's last check, a HEAD of every object.
   */
  const reconcileTable = async (
    runId: string,
    table: SourceTableName,
    checkedBy: 'phase' | 'validation',
  ): Promise<TableReconciliation> => {
    const { by, manifest, missing } = await ledgerBalance(pool, runId, table);
    const pending = (by.pending ?? 0) + (by.missing ?? 0);
    const files = FILE_TABLES.includes(table);
    const objects = !files
      ? { checked: 0, mismatches: [] as string[], headed: 0 }
      : checkedBy === 'phase'
        ? await reconcileObjects({ ...deps, heartbeat }, runId, table)
        : await verifyObjects({ ...deps, heartbeat }, runId, table);
    const transferred = files ? await transferUsedByRun(pool, runId, table) : undefined;
    const arrivals = checkedBy === 'validation' ? await arrivalsOf(runId, table) : undefined;
    return {
      table,
      manifest,
      imported: by.imported ?? 0,
      unlinked: by.unlinked ?? 0,
      skipped: by.skipped ?? 0,
      failed: by.failed ?? 0,
      pending,
      missing,
      objectsChecked: objects.checked,
      objectMismatches: objects.mismatches,
      objectsHeaded: objects.headed,
      ...(transferred !== undefined ? { bytesTransferred: transferred } : {}),
      ...(arrivals !== undefined ? { arrivals } : {}),
      ok: pending === 0 && objects.mismatches.length === 0,
    };
  };

  /** The records of an owner table a run would import (ids that key a row), with `field`'s value of each. */
  const importableIds = async (table: SourceTableName, field?: string) => {
    const t = SOURCE_TABLES[table];
    const read: (ManifestRead & { value: unknown })[] = [];
    for await (const e of fm.manifest(t.odataTable, { idField: t.idField, ...(field ? { fields: [field] } : {}) })) {
      const id = normalizeFileMakerId(e.id)?.value ?? null;
      read.push({
        record_id: e.rowId ?? null,
        filemaker_id: id,
        id_issue: null,
        mod_id: null,
        source_key: null,
        value: e.fields?.[field ?? ''],
      });
    }
    const valueOf = new Map(read.map((r) => [r.record_id ?? `id:${r.filemaker_id}`, r.value]));
    return manifestRows(read).flatMap((r) =>
      r.id_issue === null && r.filemaker_id !== null ? [{ id: r.filemaker_id, value: valueOf.get(r.record_id) }] : [],
    );
  };

  /** What a dry run of `table` resolves links against: the owners a run would have imported by then. */
  const sourceOwners = async (table: SourceTableName): Promise<SourceOwners> => {
    const needs = (t: SourceTableName[]) => t.includes(table);
    const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : null);
    const clinics = needs(['API_Contacts', 'API_event', 'API_Contact_Details'])
      ? (await importableIds('API_Clinic_Name', 'Name')).map((c) => ({ id: c.id, name: text(c.value) ?? undefined }))
      : [];
    const patients = needs([
      'API_event',
      'API_Notes',
      'API_Messages',
      'API_ContactToReferrer',
      'API_Docs',
      'API_Images',
      'API_Contact_Details',
    ])
      ? (await importableIds('API_Contacts', 'id_Clinic')).map((p) => [p.id, text(p.value)] as const)
      : [];
    const referrers = needs(['API_ContactToReferrer', 'API_ReferrerToCompany_Join', 'API_Contact_Details'])
      ? (await importableIds('API_Referrer')).map((r) => r.id)
      : [];
    const companies = needs(['API_ReferrerToCompany_Join', 'API_Contact_Details'])
      ? (await importableIds('API_Company')).map((c) => c.id)
      : [];
    return { clinics, patients, referrers, companies };
  };

  const acts: ReimportActivities = {
    async preflight(input) {
      const problems: string[] = [];
      const { version } = await checkSchemaVersion(pool);
      const sourceCounts: Partial<Record<SourceTableName, number>> = {};
      const tables = Object.values(SOURCE_TABLES).filter((t) => input.phases.includes(t.phase));
      for (const t of tables) {
        const absent = await missingFields(fm, t);
        if (absent.length) problems.push(`${t.layout} lacks ${absent.join(', ')}`);
        sourceCounts[t.name] = await fm.count(t.odataTable);
      }
      await runs.checkBucketWritable();
      // After the layouts: a missing field fails the pre-flight before any container is read.
      const fileTables =
        problems.length || input.dryRun
          ? []
          : FILE_TABLES.filter((t) => sourceCounts[t] !== undefined && !(t === 'API_Images' && input.imagesFromExport));
      const probe = fileTables.length
        ? await probeContainerPath(deps, input.runId, fileTables)
        : config.filemaker.containerApi === 'dataapi'
          ? { path: 'dataapi' as const, reason: CONTAINER_PATH_REASONS.CONFIGURED }
          : { path: 'odata' as const, reason: CONTAINER_PATH_REASONS.NOT_PROBED };
      const used = await runs.transferUsedThisYear();
      const left = config.filemaker.transferBudgetBytes - used;
      // A spent budget does not stop the run here: files already stored are relinked for free, and a files phase
      // that needs bytes pauses before its first download until the budget is raised.
      if (left <= 0) logger.warn({ left }, 'the annual FileMaker transfer budget is spent; downloads will pause');
      if (problems.length) {
        throw ApplicationFailure.create({
          message: `pre-flight failed: ${problems.join('; ')}`,
          type: ERROR_CODES.PREFLIGHT_FAILED,
          nonRetryable: true,
        });
      }
      return {
        schemaVersion: version,
        sourceCounts,
        transferLeftBytes: left,
        transferBudgetBytes: config.filemaker.transferBudgetBytes,
        containerPath: probe.path,
        containerPathReason: probe.reason,
      };
    },
    startRun: (i) => runs.startRun(i.runId, i.workflowId, i.options),
    finishRun: (i) => runs.finishRun(i.runId, i.status, i.report),
    backup: (i) => runs.backup(i.runId),
    restore: (i) => runs.restore(i.runId),
    deleteRunObjects: (i) => runs.deleteRunObjects(i.runId),
    deleteImported: () => runs.deleteImported(),
    async buildManifest({ runId, table, sourceKeyField }) {
      // Contact details are owned by patients, referrers and companies: know which of those exist first. An owner
      // table this run has already read keeps its manifest: read again from a live file, it would list records that
      // arrived after the owner's own import and that no phase of this run imports.
      if (table === 'API_Contact_Details') {
        for (const owner of OWNER_TABLES)
          if (!(await hasManifest(pool, runId, owner))) await buildManifestOf(runId, owner);
      }
      return { count: await buildManifestOf(runId, table, sourceKeyField) };
    },
    importChunk: (input) => importRecordChunk(deps, input),
    importFiles: ({ exportSource, ...input }) =>
      exportSource ? importExportBatch(deps, { ...input, exportSource }) : importFileBatch(deps, input),
    finishTable: ({ table }) => runs.foldContactDetails(table),
    reconcileTable: ({ runId, table }) => reconcileTable(runId, table, 'phase'),
    async dryRunTable({ runId, table }): Promise<DryRunTableResult> {
      const source = SOURCE_TABLES[table];
      const read: ManifestRead[] = [];
      for await (const e of fm.manifest(source.odataTable, { idField: source.idField })) {
        read.push({
          record_id: e.rowId ?? null,
          filemaker_id: normalizeFileMakerId(e.id)?.value ?? null,
          id_issue: null,
          mod_id: null,
          source_key: null,
        });
      }
      const rows = manifestRows(read);
      // A dry run writes nothing and the database may be empty or hold an older run: links are predicted against
      // the records a run would import, read from FileMaker.
      const ctx = await loadMapContext(deps, runId, table, { source: await sourceOwners(table) });
      const mapper = dryRunMapper(table);
      const target = targetFor(table);
      const byState = { imported: 0, unlinked: 0, skipped: 0, failed: 0 };
      const byReason: Record<string, number> = {};
      const count = (state: keyof typeof byState, reason: string | undefined) => {
        byState[state]++;
        if (reason) byReason[reason] = (byReason[reason] ?? 0) + 1;
      };
      // The records a run would fail for their id, as it would; their ids listed for the clinic to fix.
      const failedIds: Record<string, string[]> = {};
      for (const r of rows) {
        if (r.id_issue === null) continue;
        count('failed', r.id_issue);
        const list = (failedIds[r.id_issue] ??= []);
        if (list.length < DRY_RUN_IDS_LISTED) list.push(r.filemaker_id ?? `record ${r.record_id}`);
      }
      const keyed = rows.flatMap((r) =>
        r.id_issue === null && r.filemaker_id !== null ? [{ recordId: r.record_id, id: r.filemaker_id }] : [],
      );
      // Id → the record's modId: an object stored at another version is downloaded again.
      const withFiles = new Map<string, string>();
      for (let i = 0; i < keyed.length; i += 100) {
        const part = keyed.slice(i, i + 100);
        const records = await fm.recordsById(source.layout, source.idField, part);
        heartbeat({ table, done: i });
        for (const { recordId, id } of part) {
          const rec = records.get(recordId);
          if (!rec) {
            count('skipped', 'SOURCE_DELETED');
            continue;
          }
          const o = mapper ? mapper(rec as FmRecord, ctx) : undefined;
          if (!o) continue;
          // A row the store would refuse costs its record in the run: the dry run says so too.
          const refused =
            o.kind === 'row' && target && target !== 'contact_details' ? refusalOf(target, o.row) : undefined;
          if (refused) count('failed', refused.reason);
          else count(o.kind === 'row' ? o.state : o.kind === 'skip' ? 'skipped' : 'failed', o.reason);
          if (FILE_TABLES.includes(table) && hasContainer(table, rec as FmRecord)) withFiles.set(id, rec.modId);
        }
      }
      const estimatedBytes = withFiles.size > 0 ? await estimateDownloadBytes(deps, table, withFiles) : 0;
      return { table, manifest: rows.length, byState, byReason, failedIds, estimatedBytes };
    },
    async validate({ runId, tables }) {
      const results: TableReconciliation[] = [];
      for (const t of tables) results.push(await reconcileTable(runId, t, 'validation'));
      return {
        tables: results,
        objectMismatches: results.flatMap((r) => r.objectMismatches),
        ok: results.every((r) => r.ok),
      };
    },
    async notify(event) {
      await deps.notify(event);
    },
  };
  return wrap(
    acts as unknown as Record<string, (...args: never[]) => Promise<unknown>>,
  ) as unknown as ReimportActivities;
}
