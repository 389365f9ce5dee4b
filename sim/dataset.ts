// Generates the clinic's data set from a seed. Metadata records live in memory (they are small and PATCH must really
// change them); container bytes are never stored, only described (see containers.ts).
import * as C from './content';
import { Rng, hash32 } from './prng';
import { IMAGE_CONTAINERS, TABLES, TABLE_BY_NAME, presetCount, type Preset, type TableDef } from './schema';

export type FieldValue = string | number;
export type ContainerKind = 'pdf' | 'docx' | 'jpg' | 'png' | 'heic';
export type BrokenMode = 'http500' | 'truncate';

export interface ContainerInfo {
  state: 'ok' | 'empty' | 'broken';
  kind: ContainerKind;
  size: number;
  filename: string;
  /** FileMaker sometimes serves container URLs without an extension. */
  urlExt: boolean;
  brokenMode: BrokenMode;
}

export interface SimRecord {
  /** Position in the table's record array; stable for the life of the simulator. */
  readonly index: number;
  readonly recordId: number;
  modId: number;
  fields: Record<string, FieldValue>;
  readonly containers: Record<string, ContainerInfo>;
  readonly quality: string[];
}

export interface SimTable {
  readonly def: TableDef;
  readonly index: number;
  readonly records: SimRecord[];
  readonly byRecordId: Map<number, SimRecord>;
  /** Primary key (`id`) exactly as stored, uppercase. */
  readonly byId: Map<string, SimRecord>;
  /** Bumped on every write so cached sort orders and portal indexes know to rebuild. */
  version: number;
}

export interface DatasetOptions {
  preset: Preset;
  scale: number;
  seed: number;
  sizeScale: number;
}

export class Dataset {
  readonly tables = new Map<string, SimTable>();
  readonly tableList: SimTable[] = [];

  constructor(readonly opts: DatasetOptions) {
    const gen = new Generator(opts, this);
    TABLES.forEach((def, index) => {
      const count = presetCount(def, opts.preset, opts.scale);
      const table: SimTable = { def, index, records: [], byRecordId: new Map(), byId: new Map(), version: 0 };
      this.tables.set(def.name, table);
      this.tableList.push(table);
      for (let i = 0; i < count; i++) {
        const rng = new Rng(opts.seed, def.name, i);
        const rec: SimRecord = {
          index: i,
          // Gaps imitate deleted records: recordId is FileMaker's internal serial, not a row number.
          recordId: i + 1 + Math.floor(i / 9) * 2,
          modId: rng.int(0, 12),
          fields: {},
          containers: {},
          quality: [],
        };
        gen.fill(def, rec, rng);
        table.records.push(rec);
        table.byRecordId.set(rec.recordId, rec);
        const id = rec.fields.id;
        if (typeof id === 'string') table.byId.set(id, rec);
      }
    });
  }

  table(name: string): SimTable | undefined {
    return this.tables.get(name);
  }

  ids(name: string): string[] {
    return (this.tables.get(name)?.records ?? []).map((r) => String(r.fields.id));
  }
}

const DAY = 86_400_000;
const T_START = Date.UTC(2015, 0, 1);
const T_END = Date.UTC(2024, 5, 30);
const pad = (v: number, w = 2) => String(v).padStart(w, '0');

function isoTs(ms: number): string {
  const dt = new Date(ms);
  return `${dt.getUTCFullYear()}-${pad(dt.getUTCMonth() + 1)}-${pad(dt.getUTCDate())}T${pad(dt.getUTCHours())}:${pad(dt.getUTCMinutes())}:${pad(dt.getUTCSeconds())}`;
}

/**
 * Picks one case per dimension. The first records of every table take each case in turn, so even the tiny preset
 * contains every data-quality case at least once; after that cases occur at their rates.
 */
function dimension(rng: Rng, index: number, offset: number, cases: readonly (readonly [string, number])[]): string {
  const forced = index - offset;
  if (forced >= 0 && forced < cases.length) return cases[forced]![0];
  let x = rng.next();
  for (const [tag, p] of cases) {
    if (x < p) return tag;
    x -= p;
  }
  return '';
}

class Generator {
  private readonly cache = new Map<string, string[]>();
  private readonly clinicians: string[];

  constructor(
    private readonly opts: DatasetOptions,
    private readonly ds: Dataset,
  ) {
    const r = new Rng(opts.seed, 'clinicians');
    this.clinicians = Array.from({ length: 9 }, () => r.uuid());
  }

  private parentIds(table: string): string[] {
    let ids = this.cache.get(table);
    if (!ids) {
      ids = this.ds.ids(table);
      this.cache.set(table, ids);
    }
    return ids;
  }

  /** A foreign key as the clinic stored it: usually right, sometimes lowercase, padded, orphaned or missing. */
  private fk(rng: Rng, rec: SimRecord, parent: string, mode: string, tagSuffix: string): string {
    const ids = this.parentIds(parent);
    if (mode === 'none' || ids.length === 0) {
      rec.quality.push(`no_${tagSuffix}`);
      return '';
    }
    if (mode === 'orphan') {
      rec.quality.push(`orphan_${tagSuffix}`);
      return rng.uuid();
    }
    const id = rng.pick(ids);
    if (mode === 'lower') {
      rec.quality.push('fk_lowercase');
      return id.toLowerCase();
    }
    if (mode === 'space') {
      rec.quality.push('fk_whitespace');
      return rng.chance(0.5) ? ` ${id} ` : `${id}\t`;
    }
    return id;
  }

  private fkMode(rng: Rng, i: number, offset: number, orphan: number, none: number): string {
    return dimension(rng, i, offset, [
      ['orphan', orphan],
      ['none', none],
      ['lower', 0.03],
      ['space', 0.01],
    ]);
  }

  /** Dates typed into text fields over the years: US, day-first, ISO, ambiguous, impossible, empty. */
  private messyDate(
    rng: Rng,
    rec: SimRecord,
    i: number,
    offset: number,
    fromYear: number,
    toYear: number,
    emptyRate: number,
  ): string {
    const mode = dimension(rng, i, offset, [
      ['dayfirst', 0.1],
      ['iso', 0.08],
      ['ambiguous', 0.05],
      ['impossible', 0.005],
      ['empty', emptyRate],
    ]);
    const y = rng.int(fromYear, toYear);
    const m = rng.int(1, 12);
    const dd = rng.int(1, 28);
    switch (mode) {
      case 'dayfirst': {
        rec.quality.push('dayfirst_date');
        return `${pad(rng.int(13, 28))}/${pad(m)}/${y}`;
      }
      case 'iso':
        rec.quality.push('iso_date');
        return `${y}-${pad(m)}-${pad(dd)}`;
      case 'ambiguous': {
        rec.quality.push('ambiguous_date');
        const a = rng.int(1, 11);
        return `${pad(a)}/${pad(a + 1)}/${y}`;
      }
      case 'impossible':
        rec.quality.push('impossible_date');
        return rng.pick([`02/30/${y}`, `13/45/${y}`, `04/31/${y}`, '00/00/0000']);
      case 'empty':
        rec.quality.push('empty_date');
        return '';
      default:
        return `${pad(m)}/${pad(dd)}/${y}`;
    }
  }

  private messyTime(rng: Rng, rec: SimRecord, i: number, offset: number): string {
    const mode = dimension(rng, i, offset, [
      ['24', 0.01],
      ['day', 0.01],
      ['ampm', 0.03],
    ]);
    const h = rng.int(7, 18);
    const m = rng.pick([0, 15, 30, 45]);
    if (mode !== '') rec.quality.push('odd_time');
    if (mode === '24') return '24:00:00';
    if (mode === 'day') return `1 day, ${pad(h)}:${pad(m)}:00`;
    if (mode === 'ampm') return `${h > 12 ? h - 12 : h}:${pad(m)} ${h >= 12 ? 'PM' : 'AM'}`;
    return `${pad(h)}:${pad(m)}:00`;
  }

  /** Free text with the occasional hostile string, unicode or control character. */
  private text(rng: Rng, rec: SimRecord, i: number, offset: number, words: number): string {
    const base = Array.from({ length: words }, () => rng.pick(C.WORDS)).join(' ');
    const mode = dimension(rng, i, offset, [
      ['hostile', 0.01],
      ['ctrl', 0.008],
      ['unicode', 0.02],
    ]);
    if (mode === 'hostile') {
      rec.quality.push('hostile_string');
      return `${base} ${rng.pick(C.HOSTILE_STRINGS)}`;
    }
    if (mode === 'ctrl') {
      rec.quality.push('nul_chars');
      const at = Math.floor(base.length / 2);
      return base.slice(0, at) + rng.pick(C.CONTROL_CHARS) + base.slice(at);
    }
    if (mode === 'unicode') {
      rec.quality.push('unicode_text');
      return `${base} — café naïve 日本語 ✓ 👣`;
    }
    return base;
  }

  private name(rng: Rng, rec: SimRecord, i: number, offset: number): [string, string] {
    const mode = dimension(rng, i, offset, [
      ['unicode', 0.04],
      ['hostile', 0.01],
      ['ctrl', 0.004],
    ]);
    let first: string = rng.pick(C.FIRST_NAMES);
    let last: string = rng.pick(C.LAST_NAMES);
    if (mode === 'unicode') {
      rec.quality.push('unicode_name');
      first = rng.pick(C.UNICODE_FIRST_NAMES);
      last = rng.pick(C.UNICODE_LAST_NAMES);
    } else if (mode === 'hostile') {
      rec.quality.push('hostile_string');
      last = rng.pick(C.HOSTILE_STRINGS);
    } else if (mode === 'ctrl') {
      rec.quality.push('nul_chars');
      first = `${first}${rng.pick(C.CONTROL_CHARS)}`;
    }
    return [first, last];
  }

  private timestamps(rng: Rng, rec: SimRecord): number {
    const created = T_START + Math.floor(rng.next() * (T_END - T_START));
    const modified = Math.min(T_END, created + Math.floor(rng.next() * 400 * DAY));
    rec.fields.creationTimestamp = isoTs(created);
    rec.fields.modificationTimestamp = isoTs(modified);
    return created;
  }

  private phone(rng: Rng): string {
    return rng.chance(0.8)
      ? `04${rng.int(10, 99)} ${rng.int(100, 999)} ${rng.int(100, 999)}`
      : `+614${rng.int(10000000, 99999999)}`;
  }

  fill(def: TableDef, rec: SimRecord, rng: Rng): void {
    const f = rec.fields;
    const i = rec.index;
    f.id = rng.uuid();
    switch (def.name) {
      case 'API_Clinic_Name':
        f.Name = C.CLINIC_NAMES[i % C.CLINIC_NAMES.length] ?? 'Clinic';
        f['SMS Toggle'] = rng.chance(0.7) ? 1 : 0;
        break;
      case 'API_Company':
        f.Name = `${rng.pick(C.LAST_NAMES)} ${rng.pick(['Medical Centre', 'Family Practice', 'Support Services', 'Health'])}`;
        f.ABN = rng.chance(0.9)
          ? `${rng.int(10, 99)} ${rng.int(100, 999)} ${rng.int(100, 999)} ${rng.int(100, 999)}`
          : '';
        f.Type = rng.pick(C.COMPANY_TYPES);
        break;
      case 'API_Referrer': {
        const [first, last] = this.name(rng, rec, i, 2);
        const active = dimension(rng, i, 0, [
          ['Archived', 0.2],
          ['', 0.05],
        ]);
        f.title = rng.pick(['Dr', 'Dr', 'Mr', 'Ms', '']);
        f.nameFirst = first;
        f.nameLast = last;
        f.Specialty = rng.pick(C.SPECIALTIES);
        f.Practice = `${rng.pick(C.LAST_NAMES)} Medical`;
        f.RECORD_ACTIVE_INDICATOR = active === '' && i >= 2 ? 'Active' : active;
        if (f.RECORD_ACTIVE_INDICATOR === 'Archived') rec.quality.push('archived');
        if (f.RECORD_ACTIVE_INDICATOR === '') rec.quality.push('no_active_indicator');
        break;
      }
      case 'API_Contacts': {
        const [first, last] = this.name(rng, rec, i, 0);
        f.nameFirst = first;
        f.nameLast = last;
        f.nameMiddle = rng.chance(0.3) ? rng.pick(C.FIRST_NAMES) : '';
        f.title = rng.pick(C.TITLES);
        f.DOB = this.messyDate(rng, rec, i, 3, 1930, 2018, 0.03);
        f.gender = rng.pick(C.GENDERS);
        const clinicMode = dimension(rng, i, 8, [
          ['orphan', 0.01],
          ['lower', 0.03],
        ]);
        f.id_Clinic = this.fk(rng, rec, 'API_Clinic_Name', clinicMode, 'clinic');
        const clinic = this.ds.table('API_Clinic_Name')?.byId.get(String(f.id_Clinic).trim().toUpperCase());
        f.Clinic_Name = clinic ? String(clinic.fields.Name) : rng.chance(0.5) ? 'Old Clinic' : '';
        f.Funding = rng.pick(C.FUNDING);
        f['Health Number'] = rng.chance(0.7) ? `${rng.int(2000, 6999)} ${rng.int(10000, 99999)} ${rng.int(1, 9)}` : '';
        const ndis = f.Funding === 'NDIS';
        f.NDIS_PlanStart = ndis ? this.messyDate(rng, rec, i, 99, 2019, 2024, 0.1) : '';
        f.NDIS_PlanEnd = ndis ? this.messyDate(rng, rec, i, 99, 2020, 2025, 0.1) : '';
        f.NDIS_CoordinatorName = ndis ? `${rng.pick(C.FIRST_NAMES)} ${rng.pick(C.LAST_NAMES)}` : '';
        f.NDIS_CoordinatorEmail = ndis ? `coord${rng.int(1, 999)}@example.org` : '';
        break;
      }
      case 'API_Contact_Details': {
        const owner = dimension(rng, i, 0, [
          ['referrer', 0.12],
          ['company', 0.05],
          ['orphan', 0.03],
        ]);
        const mode = owner === 'orphan' ? 'orphan' : this.fkMode(rng, i, 4, 0, 0);
        const parent = owner === 'referrer' ? 'API_Referrer' : owner === 'company' ? 'API_Company' : 'API_Contacts';
        if (owner === 'referrer' || owner === 'company') rec.quality.push(`owner_${owner}`);
        f['id.key'] = this.fk(rng, rec, parent, mode === 'none' ? '' : mode, 'owner');
        const type = rng.pick(['Mobile', 'Mobile', 'Phone', 'Email', 'Email', 'Address'] as const);
        f.type = type;
        f.Name =
          type === 'Mobile'
            ? 'Mobile'
            : type === 'Phone'
              ? rng.pick(['Home', 'Work'])
              : type === 'Email'
                ? 'Email'
                : 'Home Address';
        const [suburb, state, pc] = rng.pick(C.SUBURBS);
        const addr = type === 'Address';
        f.ph =
          type === 'Email'
            ? `${rng.pick(C.FIRST_NAMES).toLowerCase()}${rng.int(1, 99)}@example.com`
            : addr
              ? ''
              : this.phone(rng);
        f['address 1'] = addr ? `${rng.int(1, 200)} ${rng.pick(C.STREETS)}` : '';
        f['address 2'] = addr && rng.chance(0.2) ? `Unit ${rng.int(1, 30)}` : '';
        f.suburb = addr ? suburb : '';
        f.state = addr ? state : '';
        f['post code'] = addr ? pc : '';
        f.country = addr ? rng.pick(['Australia', 'Australia', 'AU', '']) : '';
        break;
      }
      case 'API_event': {
        // ~35% of the clinic's appointments lack a patient or a start (admin blocks, half-entered bookings).
        const who = dimension(rng, i, 0, [
          ['none', 0.2],
          ['orphan', 0.02],
          ['lower', 0.03],
          ['space', 0.01],
        ]);
        f.id_Contact = this.fk(rng, rec, 'API_Contacts', who, 'patient');
        f.idCal = rng.pick(this.clinicians).toLowerCase();
        f.id_Clinic = this.fk(rng, rec, 'API_Clinic_Name', '', 'clinic');
        f.id_Clinician = rng.pick(this.clinicians);
        const noStart = dimension(rng, i, 4, [['no_start', 0.15]]) === 'no_start';
        f.startDate = noStart ? '' : this.messyDate(rng, rec, i, 5, 2016, 2024, 0);
        f.startTime = noStart ? '' : this.messyTime(rng, rec, i, 10);
        if (noStart) rec.quality.push('no_start');
        f.endDate = noStart || rng.chance(0.1) ? '' : String(f.startDate);
        f.endTime = noStart ? '' : this.messyTime(rng, rec, i, 99);
        f.allDay = rng.chance(0.03) ? 1 : 0;
        f.Type = rng.pick(C.EVENT_TYPES);
        f.note = rng.chance(0.3) ? this.text(rng, rec, i, 13, 8) : '';
        f.Status =
          i < 6 ? (['Booked', 'Arrived', 'Completed', 'Cancelled', 'DNA', ''][i] ?? '') : rng.pick(C.EVENT_STATUS);
        break;
      }
      case 'API_Notes': {
        const kind = dimension(rng, i, 0, [
          ['empty', 0.01],
          ['long', 0.001],
        ]);
        const who = this.fkMode(rng, i, 2, 0.0075, 0.002);
        f.id_Key = this.fk(rng, rec, 'API_Contacts', who, 'patient');
        if (kind === 'empty') {
          rec.quality.push('empty_note');
          f.Note = '';
        } else if (kind === 'long') {
          rec.quality.push('long_text');
          const target = rng.int(100_000, 250_000);
          const parts: string[] = [];
          let len = 0;
          while (len < target) {
            const s = this.text(rng, rec, 1_000_000, 0, 40);
            parts.push(s);
            len += s.length + 1;
          }
          f.Note = parts.join('\n');
        } else {
          f.Note = this.text(rng, rec, i, 6, rng.int(5, 60));
        }
        f.Date = this.messyDate(rng, rec, i, 9, 2015, 2024, 0.01);
        f['Note Type'] = rng.pick(C.NOTE_TYPES);
        f.creationAccountName = rng.pick(C.ACCOUNTS);
        break;
      }
      case 'API_Messages': {
        f._kf_ContactID = this.fk(rng, rec, 'API_Contacts', this.fkMode(rng, i, 0, 0.02, 0.005), 'patient');
        f.MessageBody = `Hi ${rng.pick(C.FIRST_NAMES)}, reminder of your appointment. ${this.text(rng, rec, i, 4, 6)}`;
        f.RecipientPhoneMobile = rng.chance(0.97) ? this.phone(rng) : '';
        const sent = T_START + Math.floor(rng.next() * (T_END - T_START));
        f.SentTimestamp = rng.chance(0.98) ? isoTs(sent) : '';
        f.MessageStatus = rng.pick(C.MESSAGE_STATUS);
        break;
      }
      case 'API_ContactToReferrer':
        f.id_Contact = this.fk(rng, rec, 'API_Contacts', this.fkMode(rng, i, 0, 0.01, 0), 'patient');
        f.id_Perscriber = this.fk(rng, rec, 'API_Referrer', this.fkMode(rng, i, 4, 0.01, 0), 'referrer');
        f.date = this.messyDate(rng, rec, i, 8, 2015, 2024, 0.05);
        f.Reason = rng.pick(C.REFERRAL_REASONS);
        f.Status = rng.pick(['Active', 'Active', 'Inactive', '']);
        break;
      case 'API_ReferrerToCompany_Join':
        f.id_Referrer = this.fk(rng, rec, 'API_Referrer', this.fkMode(rng, i, 0, 0.02, 0), 'referrer');
        f.id_Company = this.fk(rng, rec, 'API_Company', this.fkMode(rng, i, 4, 0.02, 0), 'company');
        f.Position = rng.pick(C.POSITIONS);
        f.Primary = rng.chance(0.6) ? 1 : 0;
        break;
      case 'API_Docs':
        this.fillDoc(rec, rng);
        break;
      case 'API_Images':
        this.fillImage(rec, rng);
        break;
      case 'Clinic Settings':
        f.Setting = ['Timezone', 'SMS Sender', 'Invoice Prefix'][i] ?? `Setting ${i}`;
        f.Value = ['Australia/Sydney', 'WEPodiatry', 'INV-'][i] ?? '';
        f['Number Value'] = i * 10;
        f['Effective Date'] = `2020-0${1 + (i % 9)}-01`;
        break;
    }
    this.timestamps(rng, rec);
  }

  private exportDate(rng: Rng, rec: SimRecord): string {
    // A minority was already exported by an earlier run; the rest is what "not yet exported" finds select.
    if (dimension(rng, rec.index, 1, [['exported', 0.1]]) !== 'exported') return '';
    rec.quality.push('already_exported');
    return `2024-0${rng.int(1, 6)}-${pad(rng.int(1, 28))}`;
  }

  private fillDoc(rec: SimRecord, rng: Rng): void {
    const f = rec.fields;
    const i = rec.index;
    f.id_Contact = this.fk(rng, rec, 'API_Contacts', this.fkMode(rng, i, 2, 0.01, 0.01), 'patient');
    f.id_Order = rng.chance(0.2) ? rng.uuid() : '';
    const type = rng.pick(C.DOC_TYPES);
    f.Type = type;
    f.Date = this.messyDate(rng, rec, i, 6, 2015, 2024, 0.02);
    f.num = rng.int(1, 99999);
    f.imported = rng.chance(0.1) ? 1 : 0;
    f.NexusExportDate = this.exportDate(rng, rec);
    const state = dimension(rng, i, 0, [
      ['empty', 0.03],
      ['broken', 0.02],
    ]);
    const kind = i < 5 ? (['pdf', 'docx', 'jpg', 'png', 'heic'] as const)[i]! : rng.pick(DOC_KINDS);
    const size = Math.round(Math.min(40e6, rng.logNormal(300_000, 1.0)) * this.opts.sizeScale);
    const stem = rng.chance(0.05)
      ? `Lettre d'orientation – ${rng.pick(C.UNICODE_LAST_NAMES)}`
      : `${type}_${rng.pick(C.LAST_NAMES)}_${f.num}`;
    rec.containers.Doc = this.container(rng, rec, state, kind, size, `${stem}.${kind}`);
  }

  private fillImage(rec: SimRecord, rng: Rng): void {
    const f = rec.fields;
    const i = rec.index;
    f.recid = 10_000 + i;
    f.id_Contact = this.fk(rng, rec, 'API_Contacts', this.fkMode(rng, i, 2, 0.01, 0.01), 'patient');
    // ID.KEY looks like a patient key but is the image's own legacy key: linking on it was one of the clinic's bugs.
    f['ID.KEY'] = rng.uuid();
    const kind = i < 3 ? (['jpg', 'png', 'heic'] as const)[i]! : rng.pick(IMAGE_KINDS);
    f.Type = rng.pick(C.IMAGE_TYPES);
    f.date = this.messyDate(rng, rec, i, 7, 2015, 2024, 0.02);
    f.NexusExportDate = this.exportDate(rng, rec);
    f['Name of file'] = `IMG_${rng.int(1000, 9999)}_${String(f.Type).replace(/\s+/g, '_')}.${kind}`;
    const layout = dimension(rng, i, 0, [
      ['not_found_empty', 0.025],
      ['not_found_with', 0.015],
      ['partial', 0.12],
      ['best_broken', 0.03],
      ['all_broken', 0.005],
      ['only_small', 0.03],
    ]);
    f.result = layout === 'not_found_empty' || layout === 'not_found_with' ? 'Not found' : '';
    if (f.result) rec.quality.push('not_found_image');
    const medians = [3_500_000, 1_600_000, 700_000, 220_000, 45_000];
    let best = '';
    IMAGE_CONTAINERS.forEach((field, k) => {
      let state: ContainerInfo['state'] = 'ok';
      if (layout === 'not_found_empty') state = 'empty';
      else if (layout === 'partial' && k < 2) state = 'empty';
      else if (layout === 'only_small' && k < 4) state = 'empty';
      else if (layout === 'best_broken' && k === 0) state = 'broken';
      else if (layout === 'all_broken') state = k < 3 ? 'empty' : 'broken';
      // A few scattered empty lower renditions, as real data has.
      else if (k > 0 && rng.chance(0.02)) state = 'empty';
      const size = Math.round(rng.logNormal(medians[k] ?? 100_000, 0.35) * this.opts.sizeScale);
      const info = this.container(rng, rec, state, kind, size, String(f['Name of file']), false);
      rec.containers[field] = info;
      if (!best && state !== 'empty') best = field;
    });
    if (layout === 'not_found_empty' || layout === 'only_small' || layout === 'partial')
      rec.quality.push('empty_container');
    if (layout === 'best_broken') rec.quality.push('broken_container', 'best_broken_fallback');
    if (layout === 'all_broken') rec.quality.push('broken_container', 'no_usable_container');
    if (layout === 'partial' || layout === 'only_small') rec.quality.push('partial_containers');
    f.best_image_container = best;
  }

  private container(
    rng: Rng,
    rec: SimRecord,
    state: string,
    kind: ContainerKind,
    size: number,
    filename: string,
    tag = true,
  ): ContainerInfo {
    if (tag && state === 'empty') rec.quality.push('empty_container');
    if (tag && state === 'broken') rec.quality.push('broken_container');
    return {
      state: state === 'empty' ? 'empty' : state === 'broken' ? 'broken' : 'ok',
      kind,
      size: state === 'empty' ? 0 : Math.max(512, size),
      filename,
      urlExt: hash32(filename, rec.index) % 10 !== 0,
      brokenMode: rng.chance(0.5) ? 'http500' : 'truncate',
    };
  }
}

const DOC_KINDS: readonly ContainerKind[] = [
  'pdf',
  'pdf',
  'pdf',
  'pdf',
  'pdf',
  'pdf',
  'docx',
  'jpg',
  'jpg',
  'png',
  'heic',
];
const IMAGE_KINDS: readonly ContainerKind[] = ['jpg', 'jpg', 'jpg', 'jpg', 'jpg', 'jpg', 'jpg', 'png', 'png', 'heic'];

export function tableDef(name: string): TableDef | undefined {
  return TABLE_BY_NAME.get(name);
}
