/**
 * Referrers phase: companies (API_Company), referrers (API_Referrer), patient↔referrer links (API_ContactToReferrer)
 * and referrer↔company links (API_ReferrerToCompany_Join).
 *
 * The archived rule: a referrer with RECORD_ACTIVE_INDICATOR = Archived is imported with is_active = false. Nothing
 * is dropped; the clinic's new system hides inactive referrers from pick lists but keeps their history.
 */
import { targetId } from '../ids';
import { TEXT_LIMITS, cleanText } from '../normalize';
import { readRecord } from '../record';
import {
  type AddressEntry,
  type BaseRow,
  type ContactJson,
  type FmRecord,
  type MapContext,
  type MapOutcome,
} from '../types';
import { foldContactDetails } from './patients';

export interface CompanyRow extends BaseRow {
  readonly name: string;
  readonly abn: string | null;
  readonly type: string | null;
  readonly contact_json: ContactJson;
  readonly address_json: AddressEntry[];
}

export function mapCompany(record: FmRecord, ctx: MapContext): MapOutcome<CompanyRow> {
  const read = readRecord(record, 'API_Company', ctx);
  if (!read.ok) return read.outcome;
  const r = read.reader;
  const name = r.text('Name');
  if (name === '') r.flag('EMPTY_NAME', 'Name');
  const folded = foldContactDetails(ctx.contactDetailsFor?.(r.filemakerId) ?? []);
  const row: CompanyRow = {
    id: targetId('companies', r.filemakerId),
    filemaker_id: r.filemakerId,
    filemaker_metadata: r.metadata(),
    name,
    abn: r.optText('ABN'),
    type: r.optText('Type'),
    contact_json: folded.contact_json,
    address_json: folded.address_json,
  };
  return { kind: 'row', row, state: 'imported', findings: [...r.findings, ...folded.findings] };
}

export interface ReferrerRow extends BaseRow {
  readonly title: string | null;
  readonly first_name: string | null;
  readonly last_name: string | null;
  readonly specialty: string | null;
  readonly practice: string | null;
  readonly is_active: boolean;
  readonly contact_json: ContactJson;
  readonly address_json: AddressEntry[];
}

/** RECORD_ACTIVE_INDICATOR → is_active: Archived → false; Active or empty → true; anything else → undefined. */
export function referrerIsActive(raw: unknown): boolean | undefined {
  const v = cleanText(raw).value.toLowerCase();
  if (v === 'archived') return false;
  if (v === 'active' || v === '') return true;
  return undefined;
}

export function mapReferrer(record: FmRecord, ctx: MapContext): MapOutcome<ReferrerRow> {
  const read = readRecord(record, 'API_Referrer', ctx);
  if (!read.ok) return read.outcome;
  const r = read.reader;
  let isActive = referrerIsActive(r.raw('RECORD_ACTIVE_INDICATOR'));
  if (isActive === undefined) {
    r.flag('UNKNOWN_ACTIVE_INDICATOR', 'RECORD_ACTIVE_INDICATOR');
    isActive = true;
  }
  const folded = foldContactDetails(ctx.contactDetailsFor?.(r.filemakerId) ?? []);
  const row: ReferrerRow = {
    id: targetId('referrers', r.filemakerId),
    filemaker_id: r.filemakerId,
    filemaker_metadata: r.metadata(),
    title: r.optText('title'),
    first_name: r.optText('nameFirst'),
    last_name: r.optText('nameLast'),
    specialty: r.optText('Specialty'),
    practice: r.optText('Practice'),
    is_active: isActive,
    contact_json: folded.contact_json,
    address_json: folded.address_json,
  };
  return { kind: 'row', row, state: 'imported', findings: [...r.findings, ...folded.findings] };
}

export interface PatientReferrerRow extends BaseRow {
  readonly patient_id: string;
  readonly referrer_id: string;
  readonly referral_date: string | null;
  readonly reason: string | null;
  readonly status: string | null;
}

/** A link needs both ends (the columns are not null): an empty or unknown end skips the link with its reason. */
export function mapPatientReferrer(record: FmRecord, ctx: MapContext): MapOutcome<PatientReferrerRow> {
  const read = readRecord(record, 'API_ContactToReferrer', ctx);
  if (!read.ok) return read.outcome;
  const r = read.reader;
  const patientFk = r.fk('id_Contact');
  const patient = patientFk === null ? undefined : ctx.patientId(patientFk);
  if (!patient) {
    return {
      kind: 'skip',
      reason: 'MISSING_PATIENT',
      message: `${r.describe()}: id_Contact is ${patientFk === null ? 'empty' : 'not a known patient'}`,
    };
  }
  // `id_Perscriber` (sic) is the field's real name on the clinic's layout.
  const referrerFk = r.fk('id_Perscriber');
  const referrer = referrerFk === null ? undefined : ctx.referrerId(referrerFk);
  if (!referrer) {
    return {
      kind: 'skip',
      reason: 'MISSING_REFERRER',
      message: `${r.describe()}: id_Perscriber is ${referrerFk === null ? 'empty' : 'not a known referrer'}`,
    };
  }
  const row: PatientReferrerRow = {
    id: targetId('patient_referrers', r.filemakerId),
    filemaker_id: r.filemakerId,
    filemaker_metadata: r.metadata(),
    patient_id: patient.id,
    referrer_id: referrer,
    referral_date: r.date('date'),
    reason: r.optText('Reason', TEXT_LIMITS.medium),
    status: r.optText('Status'),
  };
  return { kind: 'row', row, state: 'imported', findings: r.findings };
}

export interface ReferrerCompanyRow extends BaseRow {
  readonly referrer_id: string;
  readonly company_id: string;
  readonly position: string | null;
  readonly is_primary: boolean;
}

export function mapReferrerCompany(record: FmRecord, ctx: MapContext): MapOutcome<ReferrerCompanyRow> {
  const read = readRecord(record, 'API_ReferrerToCompany_Join', ctx);
  if (!read.ok) return read.outcome;
  const r = read.reader;
  const referrerFk = r.fk('id_Referrer');
  const referrer = referrerFk === null ? undefined : ctx.referrerId(referrerFk);
  if (!referrer) {
    return {
      kind: 'skip',
      reason: 'MISSING_REFERRER',
      message: `${r.describe()}: id_Referrer is ${referrerFk === null ? 'empty' : 'not a known referrer'}`,
    };
  }
  const companyFk = r.fk('id_Company');
  const company = companyFk === null ? undefined : ctx.companyId(companyFk);
  if (!company) {
    return {
      kind: 'skip',
      reason: 'MISSING_COMPANY',
      message: `${r.describe()}: id_Company is ${companyFk === null ? 'empty' : 'not a known company'}`,
    };
  }
  const row: ReferrerCompanyRow = {
    id: targetId('referrer_companies', r.filemakerId),
    filemaker_id: r.filemakerId,
    filemaker_metadata: r.metadata(),
    referrer_id: referrer,
    company_id: company,
    position: r.optText('Position'),
    is_primary: r.bool('Primary'),
  };
  return { kind: 'row', row, state: 'imported', findings: r.findings };
}
