// The clinic's FileMaker schema as the simulator serves it. Layout names equal OData table names; field names are
// the ones the engine's mappers are written against, spaces and dots included.

export type FieldType = 'text' | 'number' | 'date' | 'timestamp' | 'container';

export interface FieldDef {
  readonly name: string;
  readonly type: FieldType;
}

export interface PortalDef {
  /** Portal object name on the layout (what `portalData` is keyed by and `_limit.{name}` addresses). */
  readonly name: string;
  /** Related table occurrence; portal rows carry fields as `{table}::{field}`. */
  readonly table: string;
  /** Field in the related table matched against the parent's `id`. */
  readonly foreignKey: string;
}

export interface TableDef {
  readonly name: string;
  readonly fields: readonly FieldDef[];
  readonly portals: readonly PortalDef[];
  /** Table occurrences that only OData exposes (no layout of that name). */
  readonly odataOnly: boolean;
  readonly counts: { readonly tiny: number; readonly seed: number };
}

const ts: FieldDef[] = [
  { name: 'creationTimestamp', type: 'timestamp' },
  { name: 'modificationTimestamp', type: 'timestamp' },
];
const t = (name: string): FieldDef => ({ name, type: 'text' });
const n = (name: string): FieldDef => ({ name, type: 'number' });
const d = (name: string): FieldDef => ({ name, type: 'date' });
const c = (name: string): FieldDef => ({ name, type: 'container' });

function table(
  name: string,
  tiny: number,
  seed: number,
  fields: FieldDef[],
  extra: { portals?: PortalDef[]; odataOnly?: boolean } = {},
): TableDef {
  return {
    name,
    fields: [...fields, ...ts],
    portals: extra.portals ?? [],
    odataOnly: extra.odataOnly ?? false,
    counts: { tiny, seed },
  };
}

export const IMAGE_CONTAINERS = ['image_Full', 'image_Ex_large', 'image_large', 'image_medium', 'image_small'] as const;

export const TABLES: readonly TableDef[] = [
  table('API_Clinic_Name', 5, 16, [t('id'), t('Name'), n('SMS Toggle')]),
  table('API_Company', 10, 93, [t('id'), t('Name'), t('ABN'), t('Type')]),
  table('API_Referrer', 14, 228, [
    t('id'),
    t('title'),
    t('nameFirst'),
    t('nameLast'),
    t('Specialty'),
    t('Practice'),
    t('RECORD_ACTIVE_INDICATOR'),
  ]),
  table(
    'API_Contacts',
    40,
    2845,
    [
      t('id'),
      t('nameFirst'),
      t('nameLast'),
      t('nameMiddle'),
      t('title'),
      t('DOB'),
      t('gender'),
      t('id_Clinic'),
      t('Clinic_Name'),
      t('Funding'),
      t('Health Number'),
      t('NDIS_PlanStart'),
      t('NDIS_PlanEnd'),
      t('NDIS_CoordinatorName'),
      t('NDIS_CoordinatorEmail'),
    ],
    { portals: [{ name: 'Contact_Details', table: 'API_Contact_Details', foreignKey: 'id.key' }] },
  ),
  table('API_Contact_Details', 90, 10697, [
    t('id'),
    t('id.key'),
    t('type'),
    t('Name'),
    t('ph'),
    t('address 1'),
    t('address 2'),
    t('suburb'),
    t('state'),
    t('post code'),
    t('country'),
  ]),
  table('API_event', 60, 15149, [
    t('id'),
    t('id_Contact'),
    t('idCal'),
    t('id_Clinic'),
    t('id_Clinician'),
    t('startDate'),
    t('startTime'),
    t('endDate'),
    t('endTime'),
    n('allDay'),
    t('Type'),
    t('note'),
    t('Status'),
  ]),
  table('API_Notes', 60, 11408, [t('id'), t('id_Key'), t('Note'), t('Date'), t('Note Type'), t('creationAccountName')]),
  table('API_Messages', 30, 5352, [
    t('id'),
    t('_kf_ContactID'),
    t('MessageBody'),
    t('RecipientPhoneMobile'),
    { name: 'SentTimestamp', type: 'timestamp' },
    t('MessageStatus'),
  ]),
  table('API_ContactToReferrer', 24, 1705, [
    t('id'),
    t('id_Contact'),
    t('id_Perscriber'),
    t('date'),
    t('Reason'),
    t('Status'),
  ]),
  table('API_ReferrerToCompany_Join', 10, 72, [
    t('id'),
    t('id_Referrer'),
    t('id_Company'),
    t('Position'),
    n('Primary'),
  ]),
  table('API_Docs', 48, 11269, [
    t('id'),
    t('id_Contact'),
    t('id_Order'),
    t('Type'),
    t('Date'),
    n('num'),
    n('imported'),
    d('NexusExportDate'),
    c('Doc'),
  ]),
  table('API_Images', 40, 6664, [
    t('id'),
    n('recid'),
    t('id_Contact'),
    t('ID.KEY'),
    t('Name of file'),
    t('Type'),
    t('date'),
    t('result'),
    t('best_image_container'),
    d('NexusExportDate'),
    ...IMAGE_CONTAINERS.map(c),
  ]),
  // FileMaker lets a table occurrence name contain spaces; only OData exposes this one, URL-encoded.
  table('Clinic Settings', 3, 3, [t('id'), t('Setting'), t('Value'), n('Number Value'), d('Effective Date')], {
    odataOnly: true,
  }),
];

export const TABLE_BY_NAME: ReadonlyMap<string, TableDef> = new Map(TABLES.map((td) => [td.name, td]));

export type Preset = 'tiny' | 'demo' | 'seed';

export function presetCount(def: TableDef, preset: Preset, scale: number): number {
  const base =
    preset === 'tiny'
      ? def.counts.tiny
      : preset === 'seed'
        ? def.counts.seed
        : Math.max(def.counts.tiny, Math.round(def.counts.seed / 10));
  // Clinics and settings are configuration, not volume: they do not grow with the scale knob.
  if (def.name === 'API_Clinic_Name' || def.odataOnly) return base;
  // scale 0 gives empty layouts, which FileMaker answers differently (101 on a records request).
  return scale === 0 ? 0 : Math.max(1, Math.round(base * scale));
}
