/**
 * The catalogue of source tables: what the engine reads from FileMaker, in which phase, into which target tables.
 * Pre-flight checks every layout and `requiredFields` against the live file; the mappers refuse a record that lacks
 * one of them (MISSING_FIELD), because the earlier scripts lost every SMS by reading field names that did not exist.
 *
 * This module has no imports on purpose: workflows import `PHASES` from it and must stay free of Node built-ins.
 */

/** The phases that read a FileMaker table. */
export const IMPORT_PHASES = ['patients', 'appointments', 'notes', 'referrers', 'documents', 'images'] as const;
export type ImportPhase = (typeof IMPORT_PHASES)[number];

/** Run order of a reimport. */
export const PHASES = ['backup', 'delete', ...IMPORT_PHASES, 'validation'] as const;
export type PhaseName = (typeof PHASES)[number];

/** Target tables in creation order (parents first); the delete phase walks it backwards. */
export const TARGET_TABLES = [
  'clinics',
  'companies',
  'referrers',
  'patients',
  'appointments',
  'notes',
  'sms_messages',
  'patient_referrers',
  'referrer_companies',
  'documents',
  'image_batches',
  'images',
] as const;
export type TargetTable = (typeof TARGET_TABLES)[number];

export interface SourceTable {
  readonly name: SourceTableName;
  /** Data API layout name. */
  readonly layout: string;
  /** OData entity set name (the clinic's layouts are named after their table occurrences). */
  readonly odataTable: string;
  /** The primary key field (an uppercase UUID in the source). */
  readonly idField: 'id';
  /** Target tables the records land in (contact details are folded into their owner's JSON columns). */
  readonly targets: readonly TargetTable[];
  readonly phase: ImportPhase;
  /** Every field the mapper reads; pre-flight requires each on the layout. */
  readonly requiredFields: readonly string[];
  /** Container fields (short-lived URLs): never copied into filemaker_metadata as-is. */
  readonly containerFields: readonly string[];
}

/** The image containers in waterfall order: the first non-empty one that downloads wins. */
export const IMAGE_CONTAINER_FIELDS = [
  'image_Full',
  'image_Ex_large',
  'image_large',
  'image_medium',
  'image_small',
] as const;
export type ImageContainerField = (typeof IMAGE_CONTAINER_FIELDS)[number];

/** What a table declares; its name, layout and OData entity set are the key it is declared under. */
type SourceSpec = Pick<SourceTable, 'phase' | 'targets' | 'requiredFields' | 'containerFields'>;

function source(
  phase: ImportPhase,
  targets: readonly TargetTable[],
  requiredFields: readonly string[],
  containerFields: readonly string[] = [],
): SourceSpec {
  return { targets, phase, requiredFields, containerFields };
}

/** The tables in the order phases process them (parents before children). */
const SOURCE_SPECS = {
  API_Clinic_Name: source('patients', ['clinics'], ['id', 'Name', 'SMS Toggle']),
  API_Contacts: source(
    'patients',
    ['patients'],
    [
      'id',
      'nameFirst',
      'nameLast',
      'nameMiddle',
      'title',
      'DOB',
      'gender',
      'id_Clinic',
      'Clinic_Name',
      'Funding',
      'Health Number',
      'NDIS_PlanStart',
      'NDIS_PlanEnd',
      'NDIS_CoordinatorName',
      'NDIS_CoordinatorEmail',
    ],
  ),
  API_Contact_Details: source(
    'patients',
    ['patients', 'referrers', 'companies'],
    ['id', 'id.key', 'type', 'Name', 'ph', 'address 1', 'address 2', 'suburb', 'state', 'post code', 'country'],
  ),
  API_event: source(
    'appointments',
    ['appointments'],
    [
      'id',
      'id_Contact',
      'idCal',
      'id_Clinic',
      'id_Clinician',
      'startDate',
      'startTime',
      'endDate',
      'endTime',
      'allDay',
      'Type',
      'note',
      'Status',
    ],
  ),
  API_Notes: source(
    'notes',
    ['notes'],
    ['id', 'id_Key', 'Note', 'Date', 'Note Type', 'creationAccountName', 'creationTimestamp'],
  ),
  API_Messages: source(
    'notes',
    ['sms_messages'],
    ['id', '_kf_ContactID', 'MessageBody', 'RecipientPhoneMobile', 'SentTimestamp', 'MessageStatus'],
  ),
  API_Company: source('referrers', ['companies'], ['id', 'Name', 'ABN', 'Type']),
  API_Referrer: source(
    'referrers',
    ['referrers'],
    ['id', 'title', 'nameFirst', 'nameLast', 'Specialty', 'Practice', 'RECORD_ACTIVE_INDICATOR'],
  ),
  API_ContactToReferrer: source(
    'referrers',
    ['patient_referrers'],
    ['id', 'id_Contact', 'id_Perscriber', 'date', 'Reason', 'Status'],
  ),
  API_ReferrerToCompany_Join: source(
    'referrers',
    ['referrer_companies'],
    ['id', 'id_Referrer', 'id_Company', 'Position', 'Primary'],
  ),
  API_Docs: source(
    'documents',
    ['documents'],
    ['id', 'id_Contact', 'id_Order', 'Type', 'Date', 'num', 'imported', 'NexusExportDate', 'Doc'],
    ['Doc'],
  ),
  API_Images: source(
    'images',
    ['image_batches', 'images'],
    [
      'id',
      'recid',
      'id_Contact',
      'ID.KEY',
      'Name of file',
      'Type',
      'date',
      'result',
      'best_image_container',
      'NexusExportDate',
      ...IMAGE_CONTAINER_FIELDS,
    ],
    IMAGE_CONTAINER_FIELDS,
  ),
};

export type SourceTableName = keyof typeof SOURCE_SPECS;
export const SOURCE_TABLE_NAMES = Object.keys(SOURCE_SPECS) as readonly SourceTableName[];

export const SOURCE_TABLES = Object.fromEntries(
  SOURCE_TABLE_NAMES.map((name): [SourceTableName, SourceTable] => [
    name,
    { name, layout: name, odataTable: name, idField: 'id', ...SOURCE_SPECS[name] },
  ]),
) as Readonly<Record<SourceTableName, SourceTable>>;

/** Source tables of a phase in the order the phase processes them (parents before children). */
export function tablesForPhase(phase: PhaseName): readonly SourceTable[] {
  return SOURCE_TABLE_NAMES.map((n) => SOURCE_TABLES[n]).filter((t) => t.phase === phase);
}

/** Layout → fields, for the pre-flight "every layout and field the engine needs exists" check. */
export function requiredLayoutFields(): ReadonlyMap<string, readonly string[]> {
  return new Map(SOURCE_TABLE_NAMES.map((n) => [SOURCE_TABLES[n].layout, SOURCE_TABLES[n].requiredFields]));
}
