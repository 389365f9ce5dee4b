/**
 * Where each core source table's rows land (contact details have a table of their own), for the end-to-end tests
 * that compare target tables with the source.
 */
import type { SourceTableName } from '../../src/domain/tables';

export const CORE_TARGET_OF: Readonly<Partial<Record<SourceTableName, string>>> = {
  API_Clinic_Name: 'clinics',
  API_Contacts: 'patients',
  API_Contact_Details: 'contact_details',
  API_event: 'appointments',
  API_Notes: 'notes',
  API_Messages: 'sms_messages',
  API_Company: 'companies',
  API_Referrer: 'referrers',
  API_ContactToReferrer: 'patient_referrers',
  API_ReferrerToCompany_Join: 'referrer_companies',
};
