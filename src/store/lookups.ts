/**
 * What the mappers look up in the target database: the owners a record can link to (clinics, patients, referrers,
 * companies), the owners the run's manifests say will exist, and the kept contact details. Ids only, never values.
 */
import type { Pool } from './db';

async function rowsOf<T extends Record<string, unknown>>(pool: Pool, sql: string, params: unknown[] = []) {
  return (await pool.query<T>(sql, params)).rows;
}

/** Every clinic's id and name. */
export function clinicNames(pool: Pool): Promise<{ id: string; name: string }[]> {
  return rowsOf<{ id: string; name: string }>(pool, 'select filemaker_id as id, name from clinics');
}

/** Patients (all, or only those of `only`) with their clinic's id. */
export function patientClinics(
  pool: Pool,
  only: readonly string[] | undefined,
): Promise<{ id: string; clinic: string | null }[]> {
  return rowsOf<{ id: string; clinic: string | null }>(
    pool,
    `select p.filemaker_id as id, c.filemaker_id as clinic from patients p left join clinics c on c.id = p.clinic_id
          ${only ? 'where p.filemaker_id = any($1::text[])' : ''}`,
    only ? [only] : [],
  );
}

/** The owners (patients, referrers, companies: all, or only those of `only`) of the run's manifests whose id keys a row. */
export function manifestOwners(
  pool: Pool,
  runId: string,
  only?: readonly string[],
): Promise<{ source_table: string; filemaker_id: string }[]> {
  return rowsOf<{ source_table: string; filemaker_id: string }>(
    pool,
    `select source_table, filemaker_id from source_manifest
          where run_id = $1 and source_table in ('API_Contacts', 'API_Referrer', 'API_Company') and id_issue is null
          ${only ? 'and filemaker_id = any($2::text[])' : ''}`,
    only ? [runId, only] : [runId],
  );
}

/** Every referrer's id. */
export async function referrerIds(pool: Pool): Promise<string[]> {
  return (await rowsOf<{ id: string }>(pool, 'select filemaker_id as id from referrers')).map((r) => r.id);
}

/** Every company's id. */
export async function companyIds(pool: Pool): Promise<string[]> {
  return (await rowsOf<{ id: string }>(pool, 'select filemaker_id as id from companies')).map((r) => r.id);
}

/**
 * The kept contact details of patients (all, or only those owned by `owners`: normalised ids), in owner and detail id
 * order.
 */
export function patientContactDetails(
  pool: Pool,
  owners?: readonly string[],
): Promise<{ owner: string; field_data: Record<string, string | number> }[]> {
  return rowsOf<{ owner: string; field_data: Record<string, string | number> }>(
    pool,
    `select owner_filemaker_id as owner, field_data from contact_details where owner_table = 'patients'
          ${owners ? 'and owner_filemaker_id = any($1::text[])' : ''} order by owner_filemaker_id, filemaker_id`,
    owners ? [owners] : [],
  );
}

/** The kept contact details of referrers and companies (all, or only those owned by `owners`), in id order. */
export function referrerCompanyContactDetails(
  pool: Pool,
  owners?: readonly string[],
): Promise<{ field_data: Record<string, string | number> }[]> {
  return rowsOf<{ field_data: Record<string, string | number> }>(
    pool,
    `select field_data from contact_details where owner_table in ('referrers', 'companies')
          ${owners ? 'and owner_filemaker_id = any($1::text[])' : ''} order by owner_filemaker_id, filemaker_id`,
    owners ? [owners] : [],
  );
}
