/**
 * Core-record import (patients, appointments, notes, referrers): one chunk of a table's manifest per activity.
 * Read the chunk's records from the run's manifest, fetch them by record id (never by paging a find), map each with
 * the pure mappers, upsert the rows in bulk, and give every record a ledger state — including records FileMaker no
 * longer has (SOURCE_DELETED), records whose id cannot key a row (MISSING_ID, DUPLICATE_ID) and records that map to
 * an error. A bad record costs that record, never the chunk.
 */
import { heartbeat } from '@temporalio/activity';
import { createMapContext, type MapContextSource } from '../domain/context';
import { normalizeFileMakerId } from '../domain/ids';
import { mapAppointment } from '../domain/mappers/appointments';
import { documentPatientRefs } from '../domain/mappers/documents';
import { imagePatientRefs } from '../domain/mappers/images';
import { mapClinic, mapContactDetail, mapPatient } from '../domain/mappers/patients';
import { mapNote, mapSms } from '../domain/mappers/notes';
import { mapCompany, mapPatientReferrer, mapReferrer, mapReferrerCompany } from '../domain/mappers/referrers';
import type { FmRecord, MapContext, MapOutcome } from '../domain/types';
import { SOURCE_TABLES, type SourceTableName, type TargetTable } from '../domain/tables';
import type { ActivityDeps } from './deps';
import type { ChunkInput, ChunkResult } from './types';
import {
  clinicNames,
  companyIds,
  manifestOwners,
  patientClinics,
  patientContactDetails,
  referrerCompanyContactDetails,
  referrerIds,
} from '../store/lookups';
import { manifestSlice } from '../store/manifest';
import { emptyChunkResult, recordLedger, splitIdIssues, type LedgerEntry } from './outcomes';
import { upsertTargetRows, type MappedRow } from './upsert';

type Mapper = (record: FmRecord, ctx: MapContext) => MapOutcome<unknown>;

interface CoreTable {
  mapper: Mapper;
  target: TargetTable | 'contact_details';
  /** The fields that hold the patient a record links to: a chunk loads only those patients, not all of them. */
  patientFields?: readonly string[];
  /** The field that holds the owner a contact detail belongs to (its owner's details, likewise). */
  ownerField?: string;
}

const MAPPERS: Partial<Record<SourceTableName, CoreTable>> = {
  API_Clinic_Name: { mapper: mapClinic, target: 'clinics' },
  API_Contacts: { mapper: mapPatient, target: 'patients' },
  API_Contact_Details: { mapper: mapContactDetail, target: 'contact_details', ownerField: 'id.key' },
  API_event: { mapper: mapAppointment, target: 'appointments', patientFields: ['id_Contact'] },
  API_Notes: { mapper: mapNote, target: 'notes', patientFields: ['id_Key'] },
  API_Messages: { mapper: mapSms, target: 'sms_messages', patientFields: ['_kf_ContactID'] },
  API_Company: { mapper: mapCompany, target: 'companies' },
  API_Referrer: { mapper: mapReferrer, target: 'referrers' },
  API_ContactToReferrer: { mapper: mapPatientReferrer, target: 'patient_referrers', patientFields: ['id_Contact'] },
  API_ReferrerToCompany_Join: { mapper: mapReferrerCompany, target: 'referrer_companies' },
};

/** The normalised ids that `records` hold in `fields` (each once). */
function idsIn(
  records: Iterable<{ fieldData: Readonly<Record<string, unknown>> }>,
  fields: readonly string[],
): string[] {
  const ids = new Set<string>();
  for (const r of records) {
    for (const f of fields) {
      const id = normalizeFileMakerId(r.fieldData[f])?.value;
      if (id !== undefined) ids.add(id);
    }
  }
  return [...ids];
}

/**
 * The patient ids (normalised) a record of `table` may link to, from its fields; undefined for a table whose records
 * link to no patient.
 */
export function patientRefsOf(table: SourceTableName): ((record: FmRecord) => string[]) | undefined {
  if (table === 'API_Docs') return documentPatientRefs;
  if (table === 'API_Images') return imagePatientRefs;
  const fields = MAPPERS[table]?.patientFields;
  return fields && ((record) => idsIn([record], fields));
}

export function mapperFor(table: SourceTableName): Mapper | undefined {
  return MAPPERS[table]?.mapper;
}

/** The target table a core table's rows are written to. */
export function targetFor(table: SourceTableName): TargetTable | 'contact_details' | undefined {
  return MAPPERS[table]?.target;
}

/**
 * What exists in the source, by table, when a dry run predicts links: the records a run would import (read from
 * FileMaker, since a dry run writes nothing and the database may be empty or hold an older run's rows).
 */
export interface SourceOwners {
  clinics: readonly { id: string; name?: string }[];
  /** Patient id → the patient's clinic id (as FileMaker holds it), or null. */
  patients: readonly (readonly [string, string | null])[];
  referrers: readonly string[];
  companies: readonly string[];
}

/** What a caller narrows a map context to. */
export interface MapContextScope {
  /** Links resolved against these instead of the target database and the run's manifests (a dry run). */
  source?: SourceOwners;
  /**
   * The only patient ids (normalised) the records to map can refer to: just those patients are loaded, instead of
   * every patient (a files batch of 40 records would otherwise load and index all of them: the clinic has ~2,800).
   */
  patients?: readonly string[];
  /**
   * The only owner ids (normalised) the records to map can name: a chunk of patients, referrers or companies loads
   * its own owners' kept contact details, not all of them (~10,700 for the clinic's patients), and a chunk of contact
   * details only the owners its details name, not the whole of the run's owner manifests.
   */
  owners?: readonly string[];
}

/** The lookups a table's mapper needs, from what exists in the target database (and the run's manifests). */
export async function loadMapContext(
  deps: ActivityDeps,
  runId: string,
  table: SourceTableName,
  scope: MapContextScope = {},
): Promise<MapContext> {
  const { source } = scope;
  const { pool } = deps;
  const src: { -readonly [K in keyof MapContextSource]: MapContextSource[K] } = {
    timeZone: deps.config.clinicTimeZone,
  };
  const needs = (t: SourceTableName[]) => t.includes(table);
  // The lookups are independent (each fills its own part of the context): one round trip's wait for all of them.
  const loads: Promise<void>[] = [];
  const load = (fn: () => Promise<void>) => loads.push(fn());
  if (source) {
    src.clinics = source.clinics;
    src.patients = source.patients;
    src.referrers = source.referrers;
    src.companies = source.companies;
  } else {
    if (needs(['API_Contacts', 'API_event', 'API_Contact_Details'])) {
      load(async () => {
        src.clinics = await clinicNames(pool);
      });
    }
    if (needs(['API_event', 'API_Notes', 'API_Messages', 'API_ContactToReferrer', 'API_Docs', 'API_Images'])) {
      load(async () => {
        const only = scope.patients;
        const rows = await patientClinics(pool, only);
        src.patients = rows.map((r) => [r.id, r.clinic] as const);
        if (only) src.patientsAmong = new Set(only);
      });
    }
    if (needs(['API_Contact_Details'])) {
      // Owners may be imported later in the run (referrers, companies): the run's manifests say what exists.
      load(async () => {
        const rows = await manifestOwners(pool, runId, scope.owners);
        src.patients = rows
          .filter((r) => r.source_table === 'API_Contacts')
          .map((r) => [r.filemaker_id, null] as const);
        src.referrers = rows.filter((r) => r.source_table === 'API_Referrer').map((r) => r.filemaker_id);
        src.companies = rows.filter((r) => r.source_table === 'API_Company').map((r) => r.filemaker_id);
      });
    }
    if (needs(['API_ContactToReferrer', 'API_ReferrerToCompany_Join'])) {
      load(async () => {
        src.referrers = await referrerIds(pool);
      });
    }
    if (needs(['API_ReferrerToCompany_Join'])) {
      load(async () => {
        src.companies = await companyIds(pool);
      });
    }
  }
  if (needs(['API_Contacts'])) {
    load(async () => {
      const rows = await patientContactDetails(pool, scope.owners);
      src.contactDetails = rows.map((r, i) => ({ recordId: String(i), modId: '0', fieldData: r.field_data }));
    });
  }
  if (needs(['API_Referrer', 'API_Company'])) {
    load(async () => {
      const rows = await referrerCompanyContactDetails(pool, scope.owners);
      src.contactDetails = rows.map((r, i) => ({ recordId: String(i), modId: '0', fieldData: r.field_data }));
    });
  }
  await Promise.all(loads);
  return createMapContext(src);
}

export async function importRecordChunk(deps: ActivityDeps, input: ChunkInput): Promise<ChunkResult> {
  const spec = MAPPERS[input.table];
  if (!spec) throw new Error(`${input.table} is not a core-record table`);
  const source = SOURCE_TABLES[input.table];
  const slice = await manifestSlice(deps.pool, input.runId, input.table, input.offset, input.limit, input.work);
  const result = emptyChunkResult();
  if (slice.length === 0) return result;
  const { failed, keyed } = splitIdIssues(input.table, slice);
  const ledger: LedgerEntry[] = [...failed];
  const records = await deps.fm.recordsById(source.layout, source.idField, keyed);
  heartbeat({ fetched: records.size });
  // Only what the chunk's records link to. A record is mapped only when its id is still the manifest's, so its own id
  // is the owner its kept details name.
  const ctx = await loadMapContext(deps, input.runId, input.table, {
    owners: spec.ownerField ? idsIn(records.values(), [spec.ownerField]) : keyed.map((k) => k.id),
    patients: spec.patientFields && idsIn(records.values(), spec.patientFields),
  });

  const rows: MappedRow[] = [];
  for (const { recordId, id } of keyed) {
    const record = records.get(recordId);
    if (!record) {
      ledger.push({
        recordId,
        filemakerId: id,
        state: 'skipped',
        reasonCode: 'SOURCE_DELETED',
        message: `${input.table} record ${recordId}`,
      });
      continue;
    }
    if (normalizeFileMakerId(record.fieldData[source.idField])?.value !== id) {
      // The id was edited after the manifest was read: the row would be keyed by another record's id, perhaps.
      ledger.push({
        recordId,
        filemakerId: id,
        state: 'skipped',
        reasonCode: 'SOURCE_ID_CHANGED',
        message: `${input.table} record ${recordId}`,
        sourceModId: record.modId,
      });
      continue;
    }
    const outcome = spec.mapper(record as FmRecord, ctx);
    if (outcome.kind === 'row') {
      for (const f of outcome.findings) result.byReason[f.code] = (result.byReason[f.code] ?? 0) + 1;
      const row = outcome.row as Record<string, unknown>;
      // Contact details keep their raw fields: the owner's JSON is folded from them when the owner's table is done.
      if (spec.target === 'contact_details') row.field_data = record.fieldData;
      rows.push({
        recordId,
        filemakerId: id,
        row,
        state: outcome.state,
        reason: outcome.reason,
        sourceModId: record.modId,
      });
    } else {
      ledger.push({
        recordId,
        filemakerId: id,
        state: outcome.kind === 'skip' ? 'skipped' : 'failed',
        reasonCode: outcome.reason,
        message: outcome.message,
        sourceModId: record.modId,
      });
    }
  }

  // The rows' entries ride along their upsert; the entries of records without a row are written beside it (other
  // records: the two statements never touch one ledger row), and a row the database refused is written after.
  const [written] = await Promise.all([
    upsertTargetRows(deps.pool, spec.target, input.runId, rows, input.table),
    recordLedger(deps.pool, input.runId, input.table, ledger, result),
  ]);
  await recordLedger(deps.pool, input.runId, input.table, written, result);
  result.processed = slice.length;
  return result;
}
