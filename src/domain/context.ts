/**
 * Builds a `MapContext` from the FileMaker ids that exist. Target ids are deterministic (`targetId`), so a phase only
 * needs to know which source ids exist (from this run's manifests) to resolve every foreign key, before or after the
 * parent rows are written.
 */
import { normalizeFileMakerId, targetId } from './ids';
import { cleanText } from './normalize';
import { type FmRecord, type MapContext, type PatientRef } from './types';

export interface MapContextSource {
  readonly timeZone: string;
  readonly preferDayFirst?: boolean;
  /** Clinic FileMaker ids, optionally with their names (for the `Clinic_Name` fallback). */
  readonly clinics?: Iterable<string | { readonly id: string; readonly name?: string }>;
  /** Patient FileMaker id → that patient's clinic FileMaker id (or null). */
  readonly patients?: Iterable<readonly [string, string | null]>;
  /**
   * Set when `patients` holds only the patients among these ids (normalised), not every patient: a lookup of any
   * other id is then a programming error (the caller named the wrong fields) and throws, rather than answering
   * "no such patient" and quietly leaving a record unlinked.
   */
  readonly patientsAmong?: ReadonlySet<string>;
  readonly referrers?: Iterable<string>;
  readonly companies?: Iterable<string>;
  /** API_Contact_Details records; grouped by their normalised `id.key`. */
  readonly contactDetails?: Iterable<FmRecord>;
}

function norm(id: string): string | undefined {
  return normalizeFileMakerId(id)?.value;
}

export function createMapContext(src: MapContextSource): MapContext {
  const clinics = new Map<string, string>();
  const clinicsByName = new Map<string, string | null>();
  for (const c of src.clinics ?? []) {
    const { id, name } = typeof c === 'string' ? { id: c, name: undefined } : c;
    const key = norm(id);
    if (key === undefined) continue;
    const target = targetId('clinics', key);
    clinics.set(key, target);
    if (name !== undefined) {
      const n = cleanText(name).value.toLowerCase();
      // Two clinics with one name make the name useless as a key: remember the clash and answer nothing.
      if (n !== '') clinicsByName.set(n, clinicsByName.has(n) && clinicsByName.get(n) !== target ? null : target);
    }
  }
  const patients = new Map<string, PatientRef>();
  for (const [pid, clinicFmId] of src.patients ?? []) {
    const key = norm(pid);
    if (key === undefined) continue;
    const c = clinicFmId === null ? undefined : norm(clinicFmId);
    patients.set(key, { id: targetId('patients', key), clinicId: (c && clinics.get(c)) ?? null });
  }
  const idSet = (table: 'referrers' | 'companies', ids: Iterable<string> | undefined) => {
    const m = new Map<string, string>();
    for (const id of ids ?? []) {
      const key = norm(id);
      if (key !== undefined) m.set(key, targetId(table, key));
    }
    return m;
  };
  const referrers = idSet('referrers', src.referrers);
  const companies = idSet('companies', src.companies);
  const details = new Map<string, FmRecord[]>();
  for (const d of src.contactDetails ?? []) {
    const owner = normalizeFileMakerId(d.fieldData['id.key'])?.value;
    if (owner === undefined) continue;
    let list = details.get(owner);
    if (!list) details.set(owner, (list = []));
    list.push(d);
  }
  const lookup =
    <T>(m: Map<string, T>) =>
    (fmId: string) => {
      const key = norm(fmId);
      return key === undefined ? undefined : m.get(key);
    };
  const among = src.patientsAmong;
  const patientId = among
    ? (fmId: string) => {
        const key = norm(fmId);
        if (key !== undefined && !among.has(key)) {
          throw new Error('patient lookup of an id the map context was not loaded for');
        }
        return key === undefined ? undefined : patients.get(key);
      }
    : lookup(patients);
  return {
    timeZone: src.timeZone,
    preferDayFirst: src.preferDayFirst,
    patientId,
    clinicId: lookup(clinics),
    referrerId: lookup(referrers),
    companyId: lookup(companies),
    clinicIdByName: (name) => clinicsByName.get(cleanText(name).value.toLowerCase()) ?? undefined,
    contactDetailsFor: (owner) => {
      const key = norm(owner);
      return (key === undefined ? undefined : details.get(key)) ?? [];
    },
  };
}
