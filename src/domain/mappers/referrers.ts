/**
 * Referrers phase: companies (API_Company), referrers (API_Referrer), patient↔referrer links (API_ContactToReferrer)
 * and referrer↔company links (API_ReferrerToCompany_Join).
 *
 * The archived rule: a referrer with RECORD_ACTIVE_INDICATOR = Archived is imported with is_active = false. Nothing
 * is dropped; the clinic's new system hides inactive referrers from pick lists but keeps their history.
 */
import { TEXT_LIMITS, cleanText } from '../normalize';
import { mapRecord, type RecordReader } from '../record';
import type { ReasonCode } from '../reasons';
import type { SourceTableName } from '../tables';
import {
  type AddressEntry,
  type BaseRow,
  type ContactJson,
  type FmRecord,
  type MapContext,
  type MapOutcome,
  type PatientRef,
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

/** One end of a link row: what its key field resolves to, and the reason the link is skipped without it. */
interface LinkEnd<T> {
  readonly resolve: (ctx: MapContext, fk: string) => T | undefined;
  readonly reason: ReasonCode;
  readonly what: string;
}

const PATIENT_END: LinkEnd<PatientRef> = {
  resolve: (ctx, fk) => ctx.patientId(fk),
  reason: 'MISSING_PATIENT',
  what: 'patient',
};
const REFERRER_END: LinkEnd<string> = {
  resolve: (ctx, fk) => ctx.referrerId(fk),
  reason: 'MISSING_REFERRER',
  what: 'referrer',
};
const COMPANY_END: LinkEnd<string> = {
  resolve: (ctx, fk) => ctx.companyId(fk),
  reason: 'MISSING_COMPANY',
  what: 'company',
};

/** A link needs both ends (the columns are not null): an empty or unknown end skips the link with its reason. */
function mapLink<A, B, Row>(
  record: FmRecord,
  table: SourceTableName,
  ctx: MapContext,
  [fromField, from]: readonly [string, LinkEnd<A>],
  [toField, to]: readonly [string, LinkEnd<B>],
  row: (r: RecordReader, from: A, to: B) => Row,
): MapOutcome<Row> {
  return mapRecord(record, table, ctx, (r) => {
    const a = r.requiredLink(fromField, (fk) => from.resolve(ctx, fk), from.reason, from.what);
    if (!a.ok) return a.skip;
    const b = r.requiredLink(toField, (fk) => to.resolve(ctx, fk), to.reason, to.what);
    if (!b.ok) return b.skip;
    return r.outcome(row(r, a.target, b.target));
  });
}

export function mapPatientReferrer(record: FmRecord, ctx: MapContext): MapOutcome<PatientReferrerRow> {
  return mapLink(
    record,
    'API_ContactToReferrer',
    ctx,
    ['id_Contact', PATIENT_END],
    // `id_Perscriber` (sic) is the field's real name on the clinic's layout.
    ['id_Perscriber', REFERRER_END],
    (r, patient, referrer): PatientReferrerRow => ({
      ...r.base('patient_referrers'),
      patient_id: patient.id,
      referrer_id: referrer,
      referral_date: r.date('date'),
      reason: r.optText('Reason', TEXT_LIMITS.medium),
      status: r.optText('Status'),
    }),
  );
}

export interface ReferrerCompanyRow extends BaseRow {
  readonly referrer_id: string;
  readonly company_id: string;
  readonly position: string | null;
  readonly is_primary: boolean;
}

export function mapReferrerCompany(record: FmRecord, ctx: MapContext): MapOutcome<ReferrerCompanyRow> {
  return mapLink(
    record,
    'API_ReferrerToCompany_Join',
    ctx,
    ['id_Referrer', REFERRER_END],
    ['id_Company', COMPANY_END],
    (r, referrer, company): ReferrerCompanyRow => ({
      ...r.base('referrer_companies'),
      referrer_id: referrer,
      company_id: company,
      position: r.optText('Position'),
      is_primary: r.bool('Primary'),
    }),
  );
}
