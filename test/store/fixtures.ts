/**
 * Shared set-up for the store tests: a migrated database per test file, and generators of mapper-shaped rows
 * (exactly the columns of docs/target-schema.md).
 */
import { createHash } from 'node:crypto';
import { after } from 'node:test';
import type pg from 'pg';
import { createPool } from '../../src/store/db';
import { migrate } from '../../src/store/migrate';
import { createTestDatabase } from '../helpers/stack';

export async function migratedDatabase(): Promise<{ url: string; pool: pg.Pool }> {
  const { url } = await createTestDatabase();
  await migrate(url);
  const pool = createPool({ url, caFile: undefined, poolMax: 8 });
  after(() => pool.end());
  return { url, pool };
}

/** A deterministic UUID-shaped id (the real mappers use UUIDv5; the store only needs the shape). */
export function idFor(table: string, fmId: string): string {
  const h = createHash('sha256').update(`${table}:${fmId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function fmId(prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`.slice(0, 36).toLowerCase();
}

export function clinicRow(i: number) {
  const f = fmId('c', i);
  return {
    id: idFor('clinics', f),
    filemaker_id: f,
    filemaker_metadata: { id: f.toUpperCase(), Name: `Clinic ${i}`, 'SMS Toggle': 'Yes' },
    name: `Clinic ${i}`,
    sms_enabled: true,
  };
}

export function patientRow(i: number, clinicId: string | null = null) {
  const f = fmId('a', i);
  return {
    id: idFor('patients', f),
    filemaker_id: f,
    filemaker_metadata: {
      id: f.toUpperCase(),
      nameFirst: `First${i}`,
      nameLast: `Last${i}`,
      DOB: '03/14/1962',
      gender: 'Female',
      'Health Number': `HN${i}`,
      Funding: 'NDIS',
    },
    first_name: `First${i}`,
    last_name: `Last${i}`,
    middle_name: null,
    title: 'Ms',
    dob: '1962-03-14',
    sex: 'F',
    health_number: `HN${i}`,
    funding: 'NDIS',
    clinic_id: clinicId,
    ndis_plan_start: '2024-01-01',
    ndis_plan_end: '2024-12-31',
    ndis_coordinator_name: null,
    ndis_coordinator_email: null,
    contact_json: { phones: [{ label: 'Mobile', number: `0400 000 ${i % 1000}`, kind: 'mobile' }], emails: [] },
    address_json: [
      {
        label: 'Home',
        line1: `${i} Example St`,
        line2: '',
        suburb: 'Newtown',
        state: 'NSW',
        postcode: '2042',
        country: 'Australia',
      },
    ],
  };
}

export function noteRow(i: number, patientId: string | null) {
  const f = fmId('b', i);
  return {
    id: idFor('notes', f),
    filemaker_id: f,
    filemaker_metadata: { id: f.toUpperCase(), Note: `note ${i}` },
    patient_id: patientId,
    note_type: 'Clinical',
    content: `note ${i}`,
    note_date: '2023-05-06T09:30:00+10:00',
    author: 'clinician',
  };
}

export async function count(pool: pg.Pool, table: string): Promise<number> {
  const r = await pool.query<{ n: number }>(`select count(*)::int as n from ${table}`);
  return r.rows[0]!.n;
}
