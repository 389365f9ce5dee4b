/**
 * The dry run of one table: the whole pipeline but the writes — manifest, fetch and map from FileMaker, links
 * predicted against what a run would import, rows the store would refuse counted as failed — and the bytes its files
 * would download. Writes nothing, to PostgreSQL, S3 or FileMaker.
 */
import { heartbeat } from '@temporalio/activity';
import { normalizeFileMakerId } from '../domain/ids';
import { manifestRows, type ManifestRead } from '../domain/manifest';
import { mapDocument } from '../domain/mappers/documents';
import { mapImage } from '../domain/mappers/images';
import { SOURCE_TABLES, type SourceTableName } from '../domain/tables';
import type { FmRecord, MapContext, MapOutcome } from '../domain/types';
import type { FileMakerClient } from '../filemaker';
import { refusalOf } from '../store/sanitize';
import type { ActivityDeps } from './deps';
import { FILE_TABLES, hasContainer } from './files';
import { loadMapContext, mapperFor, targetFor, type SourceOwners } from './records';
import type { DryRunTableResult, ReimportActivities } from './types';
import { estimateDownloadBytes } from './verify';

/** Ids a dry run lists per reason, for the clinic to fix before the run. */
const DRY_RUN_IDS_LISTED = 20;

/** The mapper a dry run counts outcomes with: the core mappers, and the files tables' record mappers. */
function dryRunMapper(table: SourceTableName): ((r: FmRecord, ctx: MapContext) => MapOutcome<unknown>) | undefined {
  if (table === 'API_Docs') return mapDocument;
  if (table === 'API_Images') return mapImage;
  return mapperFor(table);
}
/** The records of an owner table a run would import (ids that key a row), with `field`'s value of each. */
async function importableIds(fm: FileMakerClient, table: SourceTableName, field?: string) {
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
}

/** What a dry run of `table` resolves links against: the owners a run would have imported by then. */
async function sourceOwners(fm: FileMakerClient, table: SourceTableName): Promise<SourceOwners> {
  const needs = (t: SourceTableName[]) => t.includes(table);
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : null);
  const clinics = needs(['API_Contacts', 'API_event', 'API_Contact_Details'])
    ? (await importableIds(fm, 'API_Clinic_Name', 'Name')).map((c) => ({ id: c.id, name: text(c.value) ?? undefined }))
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
    ? (await importableIds(fm, 'API_Contacts', 'id_Clinic')).map((p) => [p.id, text(p.value)] as const)
    : [];
  const referrers = needs(['API_ContactToReferrer', 'API_ReferrerToCompany_Join', 'API_Contact_Details'])
    ? (await importableIds(fm, 'API_Referrer')).map((r) => r.id)
    : [];
  const companies = needs(['API_ReferrerToCompany_Join', 'API_Contact_Details'])
    ? (await importableIds(fm, 'API_Company')).map((c) => c.id)
    : [];
  return { clinics, patients, referrers, companies };
}

/** The `dryRunTable` activity: what a run would do with every record of `table`, reading FileMaker only. */
export async function dryRunTable(
  deps: ActivityDeps,
  { runId, table }: Parameters<ReimportActivities['dryRunTable']>[0],
): Promise<DryRunTableResult> {
  const { fm } = deps;
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
  const ctx = await loadMapContext(deps, runId, table, { source: await sourceOwners(fm, table) });
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
      const refused = o.kind === 'row' && target && target !== 'contact_details' ? refusalOf(target, o.row) : undefined;
      if (refused) count('failed', refused.reason);
      else count(o.kind === 'row' ? o.state : o.kind === 'skip' ? 'skipped' : 'failed', o.reason);
      if (FILE_TABLES.includes(table) && hasContainer(table, rec as FmRecord)) withFiles.set(id, rec.modId);
    }
  }
  const estimatedBytes = withFiles.size > 0 ? await estimateDownloadBytes(deps, table, withFiles) : 0;
  return { table, manifest: rows.length, byState, byReason, failedIds, estimatedBytes };
}
