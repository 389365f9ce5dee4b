// Generates the clinic's data set from a seed. Nothing is generated up front: a record is a pure function of
// (seed, table, index), foreign keys are picked from the other tables' counts and primary keys decode back to their
// record, so memory stays flat as the data set grows. Records that PATCH changes live in a per-table overlay.
// Container bytes are never stored, only described (see containers.ts).
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
  /** How many times the container was replaced while the simulator served: each time, other bytes. */
  rev?: number;
  /**
   * The kind FileMaker declares (content type, URL extension) when it is not the kind of the bytes: a PDF put into a
   * container as a JPEG.
   */
  declaredKind?: ContainerKind;
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

/** A list of record indexes: every record of a table in order (a count), or a selection (found set, sort order). */
export type IndexList = number | Int32Array;

export function indexListLength(rows: IndexList): number {
  return typeof rows === 'number' ? rows : rows.length;
}

export function indexAt(rows: IndexList, i: number): number {
  return typeof rows === 'number' ? i : rows[i]!;
}

/** The first of 0…n-1 where a condition that only turns from false to true holds (n when it never does). */
function firstAtLeast(n: number, holds: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (holds(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** How many generated records a table keeps for repeated reads (pages, then their containers and portals). */
const CACHE_SIZE = 512;

/**
 * One table. Records are not stored: each is a pure function of (seed, table, index), generated when asked for,
 * with a small cache for repeated reads. Only records that were written to (PATCH, mutations) or inserted live in an
 * overlay, and deleted ones in a set of positions, so memory stays flat however large the data set is.
 *
 * Positions only grow: an inserted record takes the next position after every earlier one (generated or inserted),
 * and a deleted record's position stays empty, so positions and record ids keep record order and are never reused.
 */
export class SimTable {
  /** Bumped on every write so cached sort orders and found sets know to rebuild. */
  version = 0;
  private readonly cache = new Map<number, SimRecord>();
  private readonly overlay = new Map<number, SimRecord>();
  /** Primary keys written by PATCH that are not some record's generated key, as FileMaker would now find them. */
  private readonly writtenIds = new Map<string, number>();
  private readonly deleted = new Set<number>();
  private inserted = 0;
  /** The live positions while some record is deleted, for the version they were listed at. */
  private liveRows: { version: number; rows: Int32Array } | undefined;

  constructor(
    readonly def: TableDef,
    readonly index: number,
    /** Records the seed generated; positions past it are records inserted since. */
    readonly generatedCount: number,
    private readonly gen: RecordGenerator,
  ) {}

  /** One past the last position ever used (deleted positions included). */
  get end(): number {
    return this.generatedCount + this.inserted;
  }

  /** How many records the table holds now. */
  get count(): number {
    return this.end - this.deleted.size;
  }

  /**
   * Every record's position in record (ROWID) order: a plain count while no record was deleted (positions 0…n-1),
   * else the positions, listed once per version.
   */
  rows(): IndexList {
    if (this.deleted.size === 0) return this.end;
    if (this.liveRows?.version !== this.version) {
      const rows = new Int32Array(this.count);
      let j = 0;
      for (let i = 0; i < this.end; i++) if (!this.deleted.has(i)) rows[j++] = i;
      this.liveRows = { version: this.version, rows };
    }
    return this.liveRows.rows;
  }

  /** The records whose record id is above `recordId`, in record order; no record is generated to find them. */
  rowsAfter(recordId: number): Int32Array {
    const first = firstAtLeast(this.end, (i) => SimTable.recordIdOf(i) > recordId);
    const rows = this.rows();
    if (typeof rows === 'number') return Int32Array.from({ length: Math.max(0, rows - first) }, (_, k) => first + k);
    return rows.subarray(firstAtLeast(rows.length, (j) => rows[j]! >= first));
  }

  /** Whether a position holds a record now. */
  exists(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.end && !this.deleted.has(index);
  }

  /** Every record, materialised in a fresh array: for verifiers and tests only (it costs memory in proportion). */
  get records(): SimRecord[] {
    return [...this.scan()];
  }

  /** The record at a position (0-based, record order), or undefined past the end or deleted. */
  at(index: number): SimRecord | undefined {
    if (!this.exists(index)) return undefined;
    const written = this.overlay.get(index);
    if (written) return written;
    let rec = this.cache.get(index);
    if (rec) {
      this.cache.delete(index);
    } else {
      rec = this.gen.record(this.def, index);
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(index, rec);
    return rec;
  }

  /** Like `at`, for scans: does not push out the cache's recent entries. */
  peek(index: number): SimRecord {
    return this.overlay.get(index) ?? this.cache.get(index) ?? this.gen.record(this.def, index);
  }

  /** The record as generated, ignoring writes. */
  generated(index: number): SimRecord {
    return this.cache.get(index) ?? this.gen.record(this.def, index);
  }

  /** Every record in record order, generated one by one. */
  *scan(): Generator<SimRecord> {
    const rows = this.rows();
    const n = indexListLength(rows);
    for (let j = 0; j < n; j++) yield this.peek(indexAt(rows, j));
  }

  /** Positions of written records, which may no longer hold their generated values. */
  writtenIndexes(): number[] {
    return [...this.overlay.keys()];
  }

  /** The record to write to: from then on it lives in the overlay. */
  mutable(index: number): SimRecord | undefined {
    const written = this.overlay.get(index);
    if (written) return written;
    const rec = this.at(index);
    if (!rec) return undefined;
    this.cache.delete(index);
    this.overlay.set(index, rec);
    return rec;
  }

  /** Call after writing to a record (from `mutable`). */
  written(rec: SimRecord): void {
    const id = rec.fields.id;
    if (typeof id === 'string' && !this.byId(id, true)) this.writtenIds.set(id, rec.index);
    this.version++;
  }

  /**
   * A new record at the next position: generated like the table's others (so its primary key is a fresh UUID of the
   * same kind, from the seed), created `now`, then `fields` written over it.
   */
  insert(fields: Record<string, FieldValue>, now: string): SimRecord {
    const rec = this.gen.record(this.def, this.end);
    rec.modId = 0;
    rec.fields.creationTimestamp = now;
    rec.fields.modificationTimestamp = now;
    Object.assign(rec.fields, fields);
    this.inserted++;
    this.overlay.set(rec.index, rec);
    this.written(rec);
    return rec;
  }

  /** Deletes the record at a position; answers it, or undefined when there is none. */
  remove(index: number): SimRecord | undefined {
    const rec = this.at(index);
    if (!rec) return undefined;
    this.deleted.add(index);
    this.overlay.delete(index);
    this.cache.delete(index);
    this.version++;
    return rec;
  }

  /** FileMaker's internal record id for a position. Gaps imitate deleted records. */
  static recordIdOf(index: number): number {
    return index + 1 + Math.floor(index / 9) * 2;
  }

  indexOfRecordId(recordId: number): number {
    if (!Number.isInteger(recordId) || recordId < 1) return -1;
    const block = Math.floor((recordId - 1) / 11);
    const within = (recordId - 1) % 11;
    if (within >= 9) return -1;
    const index = block * 9 + within;
    return this.exists(index) ? index : -1;
  }

  byRecordId(recordId: number): SimRecord | undefined {
    const i = this.indexOfRecordId(recordId);
    return i < 0 ? undefined : this.at(i);
  }

  /** Position whose generated primary key is exactly `id`, or -1. */
  indexOfGeneratedId(id: string): number {
    const i = this.gen.indexOfId(this.def.name, id);
    return this.exists(i) && this.gen.idOf(this.def.name, i) === id ? i : -1;
  }

  /** Record by primary key exactly as stored (generated or written since). */
  byId(id: string, exactOnly = false): SimRecord | undefined {
    const keys = exactOnly ? [id] : [id, id.toUpperCase()];
    for (const k of keys) {
      const i = this.indexOfGeneratedId(k);
      if (i >= 0) return this.at(i);
      const w = this.writtenIds.get(k);
      if (w !== undefined) return this.at(w);
    }
    return undefined;
  }
}

export interface DatasetOptions {
  preset: Preset;
  scale: number;
  seed: number;
  sizeScale: number;
  /** The first `count` documents are sound PDF containers of exactly `bytes` (for memory tests: one 1 GB file). */
  largeDocuments?: { count: number; bytes: number };
}

export type ChangeOp = 'insert' | 'update' | 'delete' | 'replaceContainer';

/** One change to the data while the simulator served, in the order they happened. */
export interface JournalEntry {
  seq: number;
  /** ISO time with milliseconds. */
  at: string;
  op: ChangeOp;
  table: string;
  /** FileMaker's record id (Data API `recordId`, OData `ROWID`). */
  recordId: number;
  /** The record's primary key. */
  id: string;
  /** The record's modification count after the change (before it, for a delete). */
  modId: number;
  /** The container field, for `replaceContainer`. */
  field?: string;
  /** Who made it: the admin port's mutations, the `live` option, or a Data API write. */
  source: 'admin' | 'live' | 'dataapi';
}

export class Dataset {
  readonly tables = new Map<string, SimTable>();
  readonly tableList: SimTable[] = [];
  /** Every change since start, for verifiers: which records existed throughout a run, which arrived, which went. */
  readonly journal: JournalEntry[] = [];

  constructor(readonly opts: DatasetOptions) {
    const counts = new Map(TABLES.map((def) => [def.name, presetCount(def, opts.preset, opts.scale)]));
    const gen = new RecordGenerator(opts, counts);
    TABLES.forEach((def, index) => {
      const table = new SimTable(def, index, counts.get(def.name)!, gen);
      this.tables.set(def.name, table);
      this.tableList.push(table);
    });
  }

  table(name: string): SimTable | undefined {
    return this.tables.get(name);
  }

  /** Appends a change to the journal (after it was made). */
  log(op: ChangeOp, table: SimTable, rec: SimRecord, source: JournalEntry['source'], field?: string): JournalEntry {
    const entry: JournalEntry = {
      seq: this.journal.length + 1,
      at: new Date().toISOString(),
      op,
      table: table.def.name,
      recordId: rec.recordId,
      id: String(rec.fields.id ?? ''),
      modId: rec.modId,
      ...(field === undefined ? {} : { field }),
      source,
    };
    this.journal.push(entry);
    return entry;
  }
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).toUpperCase().padStart(2, '0'));
const hex8 = (n: number) => HEX[n >>> 24]! + HEX[(n >>> 16) & 255]! + HEX[(n >>> 8) & 255]! + HEX[n & 255]!;

/**
 * A version-4 UUID from four draws, uppercase like FileMaker's Get(UUID). The same format as `Rng.uuid`, built
 * without string parsing because the generator makes one for every record it is asked for.
 */
function uuid(rng: RecordRng, tail?: number): string {
  const a = rng.u32();
  const b = hex8(rng.u32());
  const c = hex8(rng.u32());
  const d = rng.u32();
  const variant = '89AB'[parseInt(c[0]!, 16) & 3]!;
  return `${hex8(a)}-${b.slice(0, 4)}-4${b.slice(5)}-${variant}${c.slice(1, 4)}-${c.slice(4)}${hex8(tail ?? d)}`;
}

function feistelRound(v: number, key: number): number {
  let h = Math.imul(v ^ key, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h & 0xffff;
}

const DAY = 86_400_000;
const T_START = Date.UTC(2015, 0, 1);
const T_END = Date.UTC(2024, 5, 30);
const pad = (v: number, w = 2) => String(v).padStart(w, '0');

function isoTs(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

/** murmur3's finaliser over a key and a record position: the per-record seed, without building strings. */
function mix(key: number, index: number): number {
  let h = (key ^ Math.imul(index, 0x9e3779b1)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/**
 * The record generator's randomness: sfc32 like `Rng`, seeded from (seed, table) once per table and the record's
 * position per record with integer arithmetic only, since records are generated on every read.
 */
/** A record's own generator, from (table, index) alone: any record can be generated without the others. */
type RecordRng = Rng;
function recordRng(tableKey: number, index: number): RecordRng {
  return Rng.fromWords(
    mix(tableKey ^ 0x68e31da4, index),
    mix(tableKey ^ 0x1b56c4e9, index),
    mix(tableKey ^ 0x7f4a7c15, index),
  );
}

/**
 * Picks one case per dimension. The first records of every table take each case in turn, so even the tiny preset
 * contains every data-quality case at least once; after that cases occur at their rates.
 */
function dimension(
  rng: RecordRng,
  index: number,
  offset: number,
  cases: readonly (readonly [string, number])[],
): string {
  const forced = index - offset;
  if (forced >= 0 && forced < cases.length) return cases[forced]![0];
  let x = rng.next();
  for (const [tag, p] of cases) {
    if (x < p) return tag;
    x -= p;
  }
  return '';
}

class RecordGenerator {
  private readonly clinicians: string[];
  private readonly idKeys = new Map<string, Uint32Array>();
  private readonly tableKeys = new Map<string, number>();
  private clinics: SimRecord[] | undefined;
  /** Position of the parent the last `fk` call picked, or -1 (none, orphan). */
  private picked = -1;

  constructor(
    private readonly opts: DatasetOptions,
    private readonly counts: ReadonlyMap<string, number>,
  ) {
    const r = new Rng(opts.seed, 'clinicians');
    this.clinicians = Array.from({ length: 9 }, () => r.uuid());
  }

  /** A record as generated, from (seed, table, index) alone. */
  record(def: TableDef, index: number): SimRecord {
    const rng = recordRng(this.tableKey(def.name), index);
    const rec: SimRecord = {
      index,
      recordId: SimTable.recordIdOf(index),
      modId: rng.int(0, 12),
      fields: {},
      containers: {},
      quality: [],
    };
    this.fill(def, rec, rng);
    return rec;
  }

  private tableKey(table: string): number {
    let k = this.tableKeys.get(table);
    if (k === undefined) {
      k = hash32(this.opts.seed, table);
      this.tableKeys.set(table, k);
    }
    return k;
  }

  private feistelKeys(table: string): Uint32Array {
    let k = this.idKeys.get(table);
    if (!k) {
      k = Uint32Array.from([0, 1, 2, 3], (r) => hash32(this.opts.seed, table, 'id-permutation', r));
      this.idKeys.set(table, k);
    }
    return k;
  }

  /**
   * Primary keys are random-looking UUIDs whose last 32 bits are a keyed permutation of the record's position, so a
   * key leads back to its record without an index in memory.
   */
  private idFor(rng: RecordRng, table: string, index: number): string {
    const keys = this.feistelKeys(table);
    let l = index >>> 16;
    let r = index & 0xffff;
    for (let round = 0; round < 4; round++) {
      const t = r;
      r = l ^ feistelRound(r, keys[round]!);
      l = t;
    }
    return uuid(rng, ((l << 16) | r) >>> 0);
  }

  idOf(table: string, index: number): string {
    const rng = recordRng(this.tableKey(table), index);
    rng.int(0, 12); // modId comes first
    return this.idFor(rng, table, index);
  }

  /** The position a key would belong to if it were generated (-1 if it cannot be); callers check the key. */
  indexOfId(table: string, id: string): number {
    if (id.length !== 36 || !/^[0-9A-Fa-f]{8}$/.test(id.slice(28))) return -1;
    const keys = this.feistelKeys(table);
    const x = parseInt(id.slice(28), 16);
    let l = x >>> 16;
    let r = x & 0xffff;
    for (let round = 3; round >= 0; round--) {
      const t = l;
      l = r ^ feistelRound(l, keys[round]!);
      r = t;
    }
    return ((l << 16) | r) >>> 0;
  }

  /** A foreign key as the clinic stored it: usually right, sometimes lowercase, padded, orphaned or missing. */
  private fk(rng: RecordRng, rec: SimRecord, parent: string, mode: string, tagSuffix: string): string {
    const count = this.counts.get(parent) ?? 0;
    this.picked = -1;
    if (mode === 'none' || count === 0) {
      rec.quality.push(`no_${tagSuffix}`);
      return '';
    }
    if (mode === 'orphan') {
      rec.quality.push(`orphan_${tagSuffix}`);
      return uuid(rng);
    }
    const j = Math.floor(rng.next() * count);
    this.picked = j;
    const id = this.idOf(parent, j);
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

  /** Clinics as generated (a fixed handful: they do not grow with the scale), for names copied into contacts. */
  private clinic(index: number): SimRecord | undefined {
    if (!this.clinics) {
      const def = TABLE_BY_NAME.get('API_Clinic_Name')!;
      const n = this.counts.get(def.name) ?? 0;
      this.clinics = Array.from({ length: n }, (_, i) => this.record(def, i));
    }
    return this.clinics[index];
  }

  private fkMode(rng: RecordRng, i: number, offset: number, orphan: number, none: number): string {
    return dimension(rng, i, offset, [
      ['orphan', orphan],
      ['none', none],
      ['lower', 0.03],
      ['space', 0.01],
    ]);
  }

  /** Dates typed into text fields over the years: US, day-first, ISO, ambiguous, impossible, empty. */
  private messyDate(
    rng: RecordRng,
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

  private messyTime(rng: RecordRng, rec: SimRecord, i: number, offset: number): string {
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
  private text(rng: RecordRng, rec: SimRecord, i: number, offset: number, words: number): string {
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

  private name(rng: RecordRng, rec: SimRecord, i: number, offset: number): [string, string] {
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

  private timestamps(rng: RecordRng, rec: SimRecord): number {
    const created = T_START + Math.floor(rng.next() * (T_END - T_START));
    const modified = Math.min(T_END, created + Math.floor(rng.next() * 400 * DAY));
    rec.fields.creationTimestamp = isoTs(created);
    rec.fields.modificationTimestamp = isoTs(modified);
    return created;
  }

  private phone(rng: RecordRng): string {
    return rng.chance(0.8)
      ? `04${rng.int(10, 99)} ${rng.int(100, 999)} ${rng.int(100, 999)}`
      : `+614${rng.int(10000000, 99999999)}`;
  }

  private fill(def: TableDef, rec: SimRecord, rng: RecordRng): void {
    const f = rec.fields;
    const i = rec.index;
    f.id = this.idFor(rng, def.name, i);
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
        const clinic = this.picked >= 0 ? this.clinic(this.picked) : undefined;
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
        // Records 10-12 carry the forced odd start times, so they must have a start.
        const noStart = dimension(rng, i, 4, [['no_start', 0.15]]) === 'no_start' && (i < 10 || i > 12);
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

  private exportDate(rng: RecordRng, rec: SimRecord): string {
    // A minority was already exported by an earlier run; the rest is what "not yet exported" finds select.
    if (dimension(rng, rec.index, 1, [['exported', 0.1]]) !== 'exported') return '';
    rec.quality.push('already_exported');
    return `2024-0${rng.int(1, 6)}-${pad(rng.int(1, 28))}`;
  }

  private fillDoc(rec: SimRecord, rng: RecordRng): void {
    const f = rec.fields;
    const i = rec.index;
    f.id_Contact = this.fk(rng, rec, 'API_Contacts', this.fkMode(rng, i, 2, 0.01, 0.01), 'patient');
    f.id_Order = rng.chance(0.2) ? uuid(rng) : '';
    const type = rng.pick(C.DOC_TYPES);
    f.Type = type;
    f.Date = this.messyDate(rng, rec, i, 6, 2015, 2024, 0.02);
    f.num = rng.int(1, 99999);
    f.imported = rng.chance(0.1) ? 1 : 0;
    f.NexusExportDate = this.exportDate(rng, rec);
    let state = dimension(rng, i, 0, [
      ['empty', 0.03],
      ['broken', 0.02],
    ]);
    let kind = i < 5 ? (['pdf', 'docx', 'jpg', 'png', 'heic'] as const)[i]! : rng.pick(DOC_KINDS);
    let size = Math.round(Math.min(40e6, rng.logNormal(300_000, 1.0)) * this.opts.sizeScale);
    const large = this.opts.largeDocuments;
    if (large && i < large.count) {
      state = 'ok';
      kind = 'pdf';
      size = large.bytes;
    }
    const stem = rng.chance(0.05)
      ? `Lettre d'orientation – ${rng.pick(C.UNICODE_LAST_NAMES)}`
      : `${type}_${rng.pick(C.LAST_NAMES)}_${f.num}`;
    rec.containers.Doc = this.container(rng, rec, state, kind, size, `${stem}.${kind}`);
  }

  private fillImage(rec: SimRecord, rng: RecordRng): void {
    const f = rec.fields;
    const i = rec.index;
    f.recid = 10_000 + i;
    f.id_Contact = this.fk(rng, rec, 'API_Contacts', this.fkMode(rng, i, 2, 0.01, 0.01), 'patient');
    // ID.KEY looks like a patient key but is the image's own legacy key: linking on it was one of the clinic's bugs.
    f['ID.KEY'] = uuid(rng);
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
    rng: RecordRng,
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
