/**
 * Referrers phase: companies (API_Company), referrers (API_Referrer), patient↔referrer links (API_ContactToReferrer)
 * and referrer↔company links (API_ReferrerToCompany_Join).
 *
 * The archived rule: a referrer with RECORD_ACTIVE_INDICATOR = Archived is imported with is_active = false. Nothing
 * is dropped; the clinic's new system hides inactive referrers from pick lists but keeps their history.
 */
import { TEXT_LIMITS, cleanText } from '../normalize';
import { mapRecord } from '../record';
import {
  type AddressEntry,
  type BaseRow,
  type ContactJson,
  type FmRecord,
  type MapContext,
  type MapOutcome,
} from '../types';
import { contactOwnerOutcome, personName } from './patients';

export interface CompanyRow extends BaseRow {
  readonly name: string;
  readonly abn: string | null;
  readonly type: string | null;
  readonly contact_json: ContactJson;
  readonly address_json: AddressEntry[];
}

export function mapCompany(record: FmRecord, ctx: MapContext): MapOutcome<CompanyRow> {
  return mapRecord(record, 'API_Company', ctx, (r) => {
    const name = r.text('Name');
    if (name === '') r.flag('EMPTY_NAME', 'Name');
    return contactOwnerOutcome<CompanyRow>(r, {
      ...r.base('companies'),
      name,
      abn: r.optText('ABN'),
      type: r.optText('Type'),
    });
  });
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
  return mapRecord(record, 'API_Referrer', ctx, (r) => {
    let isActive = referrerIsActive(r.raw('RECORD_ACTIVE_INDICATOR'));
    if (isActive === undefined) {
      r.flag('UNKNOWN_ACTIVE_INDICATOR', 'RECORD_ACTIVE_INDICATOR');
      isActive = true;
    }
    return contactOwnerOutcome<ReferrerRow>(r, {
      ...r.base('referrers'),
      ...personName(r),
      specialty: r.optText('Specialty'),
      practice: r.optText('Practice'),
      is_active: isActive,
    });
  });
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
  return mapRecord(record, 'API_ContactToReferrer', ctx, (r) => {
    const patient = r.requiredLink('id_Contact', (fk) => ctx.patientId(fk), 'MISSING_PATIENT', 'patient');
    if (!patient.ok) return patient.skip;
    // `id_Perscriber` (sic) is the field's real name on the clinic's layout.
    const referrer = r.requiredLink('id_Perscriber', (fk) => ctx.referrerId(fk), 'MISSING_REFERRER', 'referrer');
    if (!referrer.ok) return referrer.skip;
    const row: PatientReferrerRow = {
      ...r.base('patient_referrers'),
      patient_id: patient.target.id,
      referrer_id: referrer.target,
      referral_date: r.date('date'),
      reason: r.optText('Reason', TEXT_LIMITS.medium),
      status: r.optText('Status'),
    };
    return r.outcome(row);
  });
}

export interface ReferrerCompanyRow extends BaseRow {
  readonly referrer_id: string;
  readonly company_id: string;
  readonly position: string | null;
  readonly is_primary: boolean;
}

export function mapReferrerCompany(record: FmRecord, ctx: MapContext): MapOutcome<ReferrerCompanyRow> {
  return mapRecord(record, 'API_ReferrerToCompany_Join', ctx, (r) => {
    const referrer = r.requiredLink('id_Referrer', (fk) => ctx.referrerId(fk), 'MISSING_REFERRER', 'referrer');
    if (!referrer.ok) return referrer.skip;
    const company = r.requiredLink('id_Company', (fk) => ctx.companyId(fk), 'MISSING_COMPANY', 'company');
    if (!company.ok) return company.skip;
    const row: ReferrerCompanyRow = {
      ...r.base('referrer_companies'),
      referrer_id: referrer.target,
      company_id: company.target,
      position: r.optText('Position'),
      is_primary: r.bool('Primary'),
    };
    return r.outcome(row);
  });
}
