/**
 * Patients phase: clinics (API_Clinic_Name), patients (API_Contacts), and contact details (API_Contact_Details)
 * folded into their owner's `contact_json` / `address_json`. Details belong to patients, referrers or companies;
 * the referrers phase folds the same way with `foldContactDetails`.
 */
import { normalizeFileMakerId } from '../ids';
import { cleanText } from '../normalize';
import { mapRecord, readRecord, type RecordReader } from '../record';
import type { ReasonCode } from '../reasons';
import {
  type AddressEntry,
  type BaseRow,
  type ContactJson,
  type Finding,
  type FmFieldValue,
  type FmRecord,
  type MapContext,
  type MapOutcome,
} from '../types';

export interface ClinicRow extends BaseRow {
  readonly name: string;
  readonly sms_enabled: boolean;
}

export function mapClinic(record: FmRecord, ctx: MapContext): MapOutcome<ClinicRow> {
  return mapRecord(record, 'API_Clinic_Name', ctx, (r) => {
    const name = r.text('Name');
    if (name === '') r.flag('EMPTY_NAME', 'Name');
    const row: ClinicRow = {
      ...r.base('clinics'),
      name,
      sms_enabled: r.bool('SMS Toggle'),
    };
    return r.outcome(row);
  });
}

export type Sex = 'M' | 'F' | 'O' | 'U';

const SEX: Record<string, Sex> = {
  m: 'M',
  male: 'M',
  man: 'M',
  f: 'F',
  female: 'F',
  woman: 'F',
  o: 'O',
  other: 'O',
  x: 'O',
  'non-binary': 'O',
  nonbinary: 'O',
  intersex: 'O',
  indeterminate: 'O',
  '': 'U',
  u: 'U',
  unknown: 'U',
  'not stated': 'U',
  unspecified: 'U',
};

/** FileMaker `gender` → sex M/F/O/U; unknown values → U (flagged UNKNOWN_GENDER by the mapper). */
export function mapSex(raw: FmFieldValue): Sex | undefined {
  return SEX[cleanText(raw).value.toLowerCase()];
}

export interface PatientRow extends BaseRow {
  readonly first_name: string | null;
  readonly last_name: string | null;
  readonly middle_name: string | null;
  readonly title: string | null;
  readonly dob: string | null;
  readonly sex: Sex;
  readonly health_number: string | null;
  readonly funding: string | null;
  readonly clinic_id: string | null;
  readonly ndis_plan_start: string | null;
  readonly ndis_plan_end: string | null;
  readonly ndis_coordinator_name: string | null;
  readonly ndis_coordinator_email: string | null;
  readonly contact_json: ContactJson;
  readonly address_json: AddressEntry[];
}

export function mapPatient(record: FmRecord, ctx: MapContext): MapOutcome<PatientRow> {
  return mapRecord(record, 'API_Contacts', ctx, (r) => {
    let sex = mapSex(r.raw('gender'));
    if (sex === undefined) {
      r.flag('UNKNOWN_GENDER', 'gender');
      sex = 'U';
    }

    // Clinic: by FileMaker id; by name when the id is empty or unknown (the name is only a fallback: clinics get renamed).
    let clinicId: string | null = null;
    let unlinked = false;
    const clinicFk = r.fk('id_Clinic');
    if (clinicFk !== null) clinicId = ctx.clinicId(clinicFk) ?? null;
    if (clinicId === null) {
      const name = r.text('Clinic_Name');
      const byName = name === '' ? undefined : ctx.clinicIdByName?.(name);
      if (byName !== undefined) {
        clinicId = byName;
        if (clinicFk !== null) r.flag('CLINIC_NOT_FOUND', 'id_Clinic');
      } else if (clinicFk !== null) {
        unlinked = true;
      } else {
        r.flag('NO_CLINIC', 'id_Clinic');
      }
    }

    return contactOwnerOutcome<PatientRow>(
      r,
      {
        ...r.base('patients'),
        ...personName(r),
        middle_name: r.optText('nameMiddle'),
        dob: r.date('DOB'),
        sex,
        health_number: r.optText('Health Number'),
        funding: r.optText('Funding'),
        clinic_id: clinicId,
        ndis_plan_start: r.date('NDIS_PlanStart'),
        ndis_plan_end: r.date('NDIS_PlanEnd'),
        ndis_coordinator_name: r.optText('NDIS_CoordinatorName'),
        ndis_coordinator_email: r.optText('NDIS_CoordinatorEmail'),
      },
      unlinked ? 'CLINIC_NOT_FOUND' : undefined,
    );
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Contact details

export type ContactDetailEntry =
  | { readonly type: 'phone'; readonly label: string; readonly number: string; readonly kind: 'mobile' | 'phone' }
  | { readonly type: 'email'; readonly label: string; readonly address: string }
  | ({ readonly type: 'address' } & AddressEntry);

const ADDRESS_FIELDS = ['address 1', 'address 2', 'suburb', 'state', 'post code', 'country'] as const;

/**
 * Classify one detail. `type` decides (Mobile, Phone, Email, Address, case-insensitive); when it is empty, unknown,
 * or names a kind whose value is empty, the content decides: a `ph` with `@` is an email, other `ph` a phone, else
 * the address fields. Values are cleaned but not reformatted (phone numbers keep their spacing).
 */
function detailEntry(r: RecordReader): ContactDetailEntry | undefined {
  const type = r.text('type').toLowerCase();
  const label = r.text('Name');
  const value = r.text('ph');
  const address = (): AddressEntry => ({
    label,
    line1: r.text('address 1'),
    line2: r.text('address 2'),
    suburb: r.text('suburb'),
    state: r.text('state'),
    postcode: r.text('post code'),
    country: r.text('country'),
  });
  const hasAddress = ADDRESS_FIELDS.some((f) => cleanText(r.raw(f)).value !== '');
  if ((type === 'mobile' || type === 'phone') && value !== '') {
    return { type: 'phone', label, number: value, kind: type };
  }
  if ((type === 'email' || type === 'e-mail') && value !== '') return { type: 'email', label, address: value };
  if (type === 'address') {
    if (hasAddress) return { type: 'address', ...address() };
    // Someone typed the whole address into the value field: keep it as the first line rather than lose it.
    if (value !== '') return { type: 'address', ...address(), line1: value };
    return undefined;
  }
  if (value === '' && !hasAddress) return undefined;
  r.flag('UNKNOWN_DETAIL_TYPE', 'type');
  if (value.includes('@')) return { type: 'email', label, address: value };
  if (value !== '') return { type: 'phone', label, number: value, kind: 'phone' };
  return { type: 'address', ...address() };
}

export interface ContactDetailRow {
  readonly filemaker_id: string;
  readonly owner_table: 'patients' | 'referrers' | 'companies';
  /** Target id of the owner row. */
  readonly owner_id: string;
  readonly owner_filemaker_id: string;
  readonly entry: ContactDetailEntry;
}

/** A person's name columns (patients, referrers), each null when empty. */
export function personName(r: RecordReader): {
  title: string | null;
  first_name: string | null;
  last_name: string | null;
} {
  return { title: r.optText('title'), first_name: r.optText('nameFirst'), last_name: r.optText('nameLast') };
}

/**
 * The outcome of a contact owner's row (patient, referrer, company): `row` with the contact details kept for the
 * owner folded into its JSON columns after its own, their findings after the record's; unlinked as in `r.outcome`.
 */
export function contactOwnerOutcome<Row extends BaseRow & Pick<FoldedContactDetails, 'contact_json' | 'address_json'>>(
  r: RecordReader,
  row: Omit<Row, 'contact_json' | 'address_json'>,
  unlinked?: ReasonCode,
): MapOutcome<Row> {
  const { contact_json, address_json, findings } = foldContactDetails(r.ctx.contactDetailsFor?.(r.filemakerId) ?? []);
  r.findings.push(...findings);
  return r.outcome({ ...row, contact_json, address_json } as Row, unlinked);
}

/**
 * The ledger outcome of one contact detail: imported when its owner exists (it is folded into that owner's JSON);
 * skipped NO_OWNER / OWNER_NOT_FOUND / EMPTY_CONTACT_DETAIL otherwise. Owners are looked up as patient, then
 * referrer, then company.
 */
export function mapContactDetail(record: FmRecord, ctx: MapContext): MapOutcome<ContactDetailRow> {
  return mapRecord(record, 'API_Contact_Details', ctx, (r) => {
    const owner = r.fk('id.key');
    if (owner === null) return { kind: 'skip', reason: 'NO_OWNER', message: `${r.describe()} has an empty id.key` };
    const entry = detailEntry(r);
    if (entry === undefined) {
      return { kind: 'skip', reason: 'EMPTY_CONTACT_DETAIL', message: `${r.describe()} has no ph or address fields` };
    }
    const patient = ctx.patientId(owner);
    const referrer = patient ? undefined : ctx.referrerId(owner);
    const company = patient || referrer ? undefined : ctx.companyId(owner);
    const [ownerTable, ownerId] = patient
      ? (['patients', patient.id] as const)
      : referrer
        ? (['referrers', referrer] as const)
        : company
          ? (['companies', company] as const)
          : [undefined, undefined];
    if (ownerTable === undefined) {
      return { kind: 'skip', reason: 'OWNER_NOT_FOUND', message: `${r.describe()}: id.key matches no owner` };
    }
    return {
      kind: 'row',
      row: {
        filemaker_id: r.filemakerId,
        owner_table: ownerTable,
        owner_id: ownerId,
        owner_filemaker_id: owner,
        entry,
      },
      state: 'imported',
      findings: r.findings,
    };
  });
}

export interface FoldedContactDetails {
  readonly contact_json: ContactJson;
  readonly address_json: AddressEntry[];
  readonly findings: readonly Finding[];
}

const FOLD_CONTEXT: MapContext = {
  timeZone: 'UTC',
  patientId: () => undefined,
  clinicId: () => undefined,
  referrerId: () => undefined,
  companyId: () => undefined,
};

/**
 * Fold an owner's contact details into `contact_json` and `address_json`. Details are ordered by their FileMaker id
 * so the JSON (and the table fingerprint) does not depend on the order FileMaker returned them in. Malformed and
 * empty details are left out here; `mapContactDetail` gives each its ledger state.
 */
export function foldContactDetails(details: readonly FmRecord[]): FoldedContactDetails {
  const readers: RecordReader[] = [];
  for (const d of details) {
    const read = readRecord(d, 'API_Contact_Details', FOLD_CONTEXT);
    if (read.ok) readers.push(read.reader);
  }
  readers.sort((a, b) => (a.filemakerId < b.filemakerId ? -1 : a.filemakerId > b.filemakerId ? 1 : 0));
  const contact: ContactJson = { phones: [], emails: [] };
  const addresses: AddressEntry[] = [];
  const findings: Finding[] = [];
  for (const r of readers) {
    const e = detailEntry(r);
    findings.push(...r.findings);
    if (e === undefined) continue;
    if (e.type === 'phone') contact.phones.push({ label: e.label, number: e.number, kind: e.kind });
    else if (e.type === 'email') contact.emails.push({ label: e.label, address: e.address });
    else {
      const { type: _type, ...address } = e;
      addresses.push(address);
    }
  }
  return { contact_json: contact, address_json: addresses, findings };
}

/** The normalised owner id of a contact detail (for grouping), or undefined. */
export function contactDetailOwner(record: FmRecord): string | undefined {
  return normalizeFileMakerId(record.fieldData['id.key'])?.value;
}
