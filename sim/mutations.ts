// Changes to the clinic's data while the simulator serves: the admin port's `POST /mutations` and the `live` option,
// which changes the data on its own at given rates. Both go through `applyMutation`, and every change is journaled
// (Dataset.journal) so a verifier can tell which records existed for the whole of a run, which arrived, which went.
import {
  SimTable,
  indexAt,
  indexListLength,
  type ChangeOp,
  type ContainerInfo,
  type ContainerKind,
  type Dataset,
  type FieldValue,
  type JournalEntry,
  type SimRecord,
} from './dataset';
import { nowTimestamp } from './format';
import { Rng } from './prng';
import { IMAGE_CONTAINERS } from './schema';

export interface Mutation {
  op: ChangeOp;
  table: string;
  /** FileMaker's record id; omitted for update/delete/replaceContainer, a record is picked (seeded). */
  recordId?: number;
  /** Values to write (insert, update); an update without them changes one field. */
  fields?: Record<string, FieldValue>;
  /** The container field to replace; omitted, one of the record's is picked. */
  field?: string;
  /** Insert: containers described over the generated ones (state, kind of the bytes, declared kind, size, name). */
  containers?: Record<string, ContainerSpec>;
}

/** What an insert may say about a container; what it leaves out stays as generated. */
export type ContainerSpec = Partial<Pick<ContainerInfo, 'state' | 'kind' | 'declaredKind' | 'size' | 'filename'>>;

export interface MutationResult {
  op: ChangeOp;
  table: string;
  recordId: number;
  id: string;
}

/** A mutation list the simulator refuses, whole. */
export class MutationError extends Error {}

const OPS: readonly ChangeOp[] = ['insert', 'update', 'delete', 'replaceContainer'];
const MUTATION_KEYS = new Set(['op', 'table', 'recordId', 'fields', 'field', 'containers']);
const KINDS: readonly ContainerKind[] = ['pdf', 'docx', 'jpg', 'png', 'heic'];
const STATES: readonly ContainerInfo['state'][] = ['ok', 'empty', 'broken'];
/** Fields a random update leaves alone: keys (relationships would break), record-keeping, containers. */
const KEY_FIELD = /^(id|_kf|recid$|best_image_container$)|Timestamp$/i;

function containerFields(table: SimTable): string[] {
  return table.def.fields.filter((f) => f.type === 'container').map((f) => f.name);
}

function parseFields(table: SimTable, raw: unknown, where: string): Record<string, FieldValue> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new MutationError(`${where}: not an object`);
  const out: Record<string, FieldValue> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const f = table.def.fields.find((x) => x.name === k);
    if (!f) throw new MutationError(`${where}: ${table.def.name} has no field '${k}'`);
    if (f.type === 'container') throw new MutationError(`${where}: '${k}' is a container (use replaceContainer)`);
    if (typeof v !== 'string' && typeof v !== 'number')
      throw new MutationError(`${where}.${k}: not a string or number`);
    out[k] = v;
  }
  return out;
}

function parseContainers(table: SimTable, raw: unknown, where: string): Record<string, ContainerSpec> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new MutationError(`${where}: not an object`);
  const out: Record<string, ContainerSpec> = {};
  for (const [field, spec] of Object.entries(raw as Record<string, unknown>)) {
    const at = `${where}.${field}`;
    if (!containerFields(table).includes(field)) throw new MutationError(`${at}: not a container of ${table.def.name}`);
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
      throw new MutationError(`${at}: not an object`);
    const s = spec as Record<string, unknown>;
    const bad = Object.keys(s).find((k) => !['state', 'kind', 'declaredKind', 'size', 'filename'].includes(k));
    if (bad) throw new MutationError(`${at}: unknown key '${bad}'`);
    if (s.state !== undefined && !STATES.includes(s.state as ContainerInfo['state']))
      throw new MutationError(`${at}.state must be one of ${STATES.join(', ')}`);
    for (const k of ['kind', 'declaredKind'])
      if (s[k] !== undefined && !KINDS.includes(s[k] as ContainerKind))
        throw new MutationError(`${at}.${k} must be one of ${KINDS.join(', ')}`);
    if (s.size !== undefined && (typeof s.size !== 'number' || !Number.isInteger(s.size) || s.size < 0))
      throw new MutationError(`${at}.size must be a non-negative integer`);
    if (s.filename !== undefined && typeof s.filename !== 'string')
      throw new MutationError(`${at}.filename must be a string`);
    out[field] = s;
  }
  return out;
}

/** The layout's calculation follows the containers: the first one that holds something. */
function bestImageContainer(rec: SimRecord): string {
  return IMAGE_CONTAINERS.find((c) => rec.containers[c]?.state !== 'empty') ?? '';
}

/**
 * Checks a whole list before anything is applied: known ops, tables and fields, and record ids that will still exist
 * when their turn comes (a list may delete a record once, not twice).
 */
export function parseMutations(ds: Dataset, body: unknown): Mutation[] {
  if (!Array.isArray(body)) throw new MutationError('expected a JSON list of mutations');
  const gone = new Set<string>();
  const removed = new Map<string, number>();
  return body.map((raw: unknown, n): Mutation => {
    const where = `mutations[${n}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new MutationError(`${where}: not an object`);
    const m = raw as Record<string, unknown>;
    for (const k of Object.keys(m)) if (!MUTATION_KEYS.has(k)) throw new MutationError(`${where}: unknown key '${k}'`);
    const op = m.op as ChangeOp;
    if (!OPS.includes(op)) throw new MutationError(`${where}: op must be one of ${OPS.join(', ')}`);
    const table = typeof m.table === 'string' ? ds.table(m.table) : undefined;
    if (!table) throw new MutationError(`${where}: no table ${JSON.stringify(m.table)}`);
    const out: Mutation = { op, table: table.def.name };
    if (m.fields !== undefined) {
      if (op !== 'insert' && op !== 'update') throw new MutationError(`${where}: fields are for insert and update`);
      out.fields = parseFields(table, m.fields, `${where}.fields`);
    }
    if (m.containers !== undefined) {
      if (op !== 'insert') throw new MutationError(`${where}: containers are for insert`);
      out.containers = parseContainers(table, m.containers, `${where}.containers`);
    }
    if (m.field !== undefined) {
      if (op !== 'replaceContainer') throw new MutationError(`${where}: field is for replaceContainer`);
      if (typeof m.field !== 'string' || !containerFields(table).includes(m.field))
        throw new MutationError(`${where}: ${table.def.name} has no container field ${JSON.stringify(m.field)}`);
      out.field = m.field;
    }
    if (op === 'replaceContainer' && containerFields(table).length === 0)
      throw new MutationError(`${where}: ${table.def.name} has no container field`);
    if (op === 'insert') {
      if (m.recordId !== undefined) throw new MutationError(`${where}: an insert takes no recordId`);
      return out;
    }
    if (m.recordId === undefined) {
      const left = table.count - (removed.get(table.def.name) ?? 0);
      if (left <= 0) throw new MutationError(`${where}: ${table.def.name} has no record left to pick`);
      if (op === 'delete') removed.set(table.def.name, (removed.get(table.def.name) ?? 0) + 1);
      return out;
    }
    const recordId = typeof m.recordId === 'string' && /^\d+$/.test(m.recordId) ? Number(m.recordId) : m.recordId;
    if (typeof recordId !== 'number' || !Number.isInteger(recordId) || recordId < 1)
      throw new MutationError(`${where}: recordId must be a positive integer`);
    const key = `${table.def.name}|${recordId}`;
    if (table.indexOfRecordId(recordId) < 0 || gone.has(key))
      throw new MutationError(`${where}: ${table.def.name} has no record with that recordId`);
    if (op === 'delete') {
      gone.add(key);
      removed.set(table.def.name, (removed.get(table.def.name) ?? 0) + 1);
    }
    out.recordId = recordId;
    return out;
  });
}

/** A live record's position, picked with `rng`, other than those of the record ids in `spare`. */
function pickRecord(table: SimTable, rng: Rng, spare: ReadonlySet<number>): number {
  const rows = table.rows();
  const n = indexListLength(rows);
  const start = Math.floor(rng.next() * n);
  for (let k = 0; k < n; k++) {
    const index = indexAt(rows, (start + k) % n);
    if (!spare.has(SimTable.recordIdOf(index))) return index;
  }
  throw new MutationError(`${table.def.name} has no record left to pick`);
}

/** One field changed the way a user would: a value some other record of the table holds. */
function someEdit(table: SimTable, rec: SimRecord, rng: Rng): Record<string, FieldValue> {
  const editable = table.def.fields.filter((f) => f.type !== 'container' && !KEY_FIELD.test(f.name));
  if (editable.length === 0) return {};
  const f = editable[Math.floor(rng.next() * editable.length)]!;
  const donor = table.generated(Math.floor(rng.next() * Math.max(1, table.generatedCount)));
  let v = donor.fields[f.name] ?? '';
  if (v === rec.fields[f.name]) v = typeof v === 'number' ? v + 1 : `${v} (edited)`;
  return { [f.name]: v };
}

/** New bytes for a container: same kind and name, another size and content (a re-scan), readable. */
function replacement(old: ContainerInfo, sizeScale: number, rng: Rng): ContainerInfo {
  const base = old.size > 0 ? old.size : 200_000 * sizeScale;
  let size = Math.max(512, Math.round(base * (0.6 + rng.next() * 0.8)));
  if (size === old.size) size++;
  return { ...old, state: 'ok', size, rev: (old.rev ?? 0) + 1 };
}

function pickContainer(table: SimTable, rec: SimRecord, rng: Rng): string {
  const all = containerFields(table);
  const filled = all.filter((f) => rec.containers[f] && rec.containers[f].state !== 'empty');
  const from = filled.length ? filled : all;
  return from[Math.floor(rng.next() * from.length)]!;
}

/**
 * Applies one checked mutation and journals it. `rng` picks records and values the mutation leaves open; a picked
 * record is never one whose id is in `spare` (those a list names itself).
 */
export function applyMutation(
  ds: Dataset,
  m: Mutation,
  rng: Rng,
  source: JournalEntry['source'],
  spare: ReadonlySet<number> = new Set(),
): MutationResult {
  const table = ds.table(m.table)!;
  const done = (rec: SimRecord, field?: string): MutationResult => {
    ds.log(m.op, table, rec, source, field);
    return { op: m.op, table: table.def.name, recordId: rec.recordId, id: String(rec.fields.id ?? '') };
  };
  if (m.op === 'insert') {
    const rec = table.insert(m.fields ?? {}, nowTimestamp());
    for (const [field, spec] of Object.entries(m.containers ?? {})) {
      const c = { ...rec.containers[field]!, ...spec };
      if (c.state === 'empty') c.size = 0;
      rec.containers[field] = c;
    }
    if (m.containers && table.def.name === 'API_Images') rec.fields.best_image_container = bestImageContainer(rec);
    return done(rec);
  }
  const index = m.recordId === undefined ? pickRecord(table, rng, spare) : table.indexOfRecordId(m.recordId);
  if (m.op === 'delete') {
    const rec = table.remove(index);
    if (!rec) throw new MutationError(`${table.def.name} has no record with that recordId`);
    return done(rec);
  }
  const rec = table.mutable(index);
  if (!rec) throw new MutationError(`${table.def.name} has no record with that recordId`);
  let field: string | undefined;
  if (m.op === 'update') {
    Object.assign(rec.fields, m.fields ?? someEdit(table, rec, rng));
  } else {
    field = m.field ?? pickContainer(table, rec, rng);
    rec.containers[field] = replacement(rec.containers[field]!, ds.opts.sizeScale, rng);
    if (table.def.name === 'API_Images') rec.fields.best_image_container = bestImageContainer(rec);
  }
  rec.modId++;
  rec.fields.modificationTimestamp = nowTimestamp();
  table.written(rec);
  return done(rec, field);
}

/** Checks then applies a list: all of it, or nothing when any mutation is refused. */
export function mutate(ds: Dataset, body: unknown, rng: Rng): MutationResult[] {
  const list = parseMutations(ds, body);
  // A pick must not take a record the list names later, or that mutation would fail half-way through the list.
  const named = (t: string) => new Set(list.flatMap((m) => (m.table === t && m.recordId ? [m.recordId] : [])));
  return list.map((m) => applyMutation(ds, m, rng, 'admin', named(m.table)));
}

// ---------------------------------------------------------------------------------------------------------------
// The `live` option.

export interface LiveOptions {
  insertsPerSecond?: number;
  updatesPerSecond?: number;
  deletesPerSecond?: number;
  replaceContainersPerSecond?: number;
  /** Tables to change (default: all). */
  tables?: string[];
  /** Seed of the sequence of changes (default: the simulator's): the same seed gives the same changes in order. */
  seed?: number;
}

const RATES = {
  insert: 'insertsPerSecond',
  update: 'updatesPerSecond',
  delete: 'deletesPerSecond',
  replaceContainer: 'replaceContainersPerSecond',
} as const satisfies Record<ChangeOp, keyof LiveOptions>;

/** The live option's deletes stop before a table falls below this share of its generated records. */
const KEEP_SHARE = 0.75;
const TICK_MS = 50;

export function parseLiveOptions(ds: Dataset, raw: unknown): LiveOptions | null {
  if (raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new MutationError('live must be an object or null');
  const o = raw as Record<string, unknown>;
  const out: LiveOptions = {};
  for (const [k, v] of Object.entries(o)) {
    if ((Object.values(RATES) as string[]).includes(k)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
        throw new MutationError(`live.${k} must be a non-negative number`);
      out[k as (typeof RATES)[ChangeOp]] = v;
    } else if (k === 'seed') {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new MutationError('live.seed must be an integer');
      out.seed = v;
    } else if (k === 'tables') {
      if (!Array.isArray(v) || v.length === 0 || v.some((t) => typeof t !== 'string' || !ds.table(t)))
        throw new MutationError('live.tables must list tables of the database');
      out.tables = v as string[];
    } else throw new MutationError(`live: unknown key '${k}'`);
  }
  const tables = (out.tables ?? ds.tableList.map((t) => t.def.name)).map((t) => ds.table(t)!);
  if ((out.replaceContainersPerSecond ?? 0) > 0 && !tables.some((t) => containerFields(t).length))
    throw new MutationError('live.replaceContainersPerSecond needs a table with containers');
  return out;
}

/** `inserts=2,updates=5,deletes=1,containers=1[,seed=7][,tables=API_Docs;API_Notes]`, as the CLI takes it. */
export function parseLiveSpec(spec: string): LiveOptions {
  const names: Record<string, (typeof RATES)[ChangeOp]> = {
    inserts: 'insertsPerSecond',
    updates: 'updatesPerSecond',
    deletes: 'deletesPerSecond',
    containers: 'replaceContainersPerSecond',
  };
  const out: LiveOptions = {};
  for (const part of spec.split(',').filter(Boolean)) {
    const [k = '', v = ''] = part.split('=');
    if (k === 'tables') out.tables = v.split(';').filter(Boolean);
    else if (k === 'seed' || k in names) {
      const n = Number(v);
      if (v === '' || !Number.isFinite(n)) throw new MutationError(`--live ${k}: expected a number`);
      if (k === 'seed') out.seed = n;
      else out[names[k]!] = n;
    } else throw new MutationError(`--live: unknown '${k}' (inserts, updates, deletes, containers, seed, tables)`);
  }
  return out;
}

/**
 * Changes the data on its own at the `live` rates. Which change comes next (op, table, record, values) is drawn from
 * the live seed alone, so the same seed on the same data gives the same changes in the same order; only how many fall
 * in each tick depends on the clock. Tables are picked in proportion to their size; deletes spare a table at 3/4 of
 * its records (it gets an update instead), so the data set never collapses.
 */
export class LiveChanges {
  private opts: LiveOptions | null = null;
  private timer: NodeJS.Timeout | undefined;
  private rng = new Rng(0);
  private started = 0;
  private done = 0;

  constructor(
    private readonly ds: Dataset,
    private readonly defaultSeed: number,
  ) {}

  get options(): LiveOptions | null {
    return this.opts;
  }

  set(opts: LiveOptions | null): void {
    this.stop();
    this.opts = opts;
    if (!opts) return;
    this.rng = new Rng(opts.seed ?? this.defaultSeed, 'live');
    this.started = Date.now();
    this.done = 0;
    if (this.total() <= 0) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private total(): number {
    const o = this.opts ?? {};
    return Object.values(RATES).reduce((sum, k) => sum + (o[k] ?? 0), 0);
  }

  private tick(): void {
    const due = Math.floor((this.total() * (Date.now() - this.started)) / 1000);
    for (; this.done < due; this.done++) applyMutation(this.ds, this.next(), this.rng, 'live');
  }

  /** The next change, drawn from the live rng. */
  private next(): Mutation {
    const o = this.opts!;
    let x = this.rng.next() * this.total();
    let op: ChangeOp = 'update';
    for (const candidate of OPS) {
      const rate = o[RATES[candidate]] ?? 0;
      if (x < rate) {
        op = candidate;
        break;
      }
      x -= rate;
    }
    let tables = (o.tables ?? this.ds.tableList.map((t) => t.def.name)).map((t) => this.ds.table(t)!);
    if (op === 'replaceContainer') tables = tables.filter((t) => containerFields(t).length > 0);
    const weight = tables.reduce((sum, t) => sum + Math.max(1, t.generatedCount), 0);
    let y = this.rng.next() * weight;
    const table = tables.find((t) => (y -= Math.max(1, t.generatedCount)) < 0) ?? tables[tables.length - 1]!;
    if (op === 'delete' && table.count <= Math.ceil(table.generatedCount * KEEP_SHARE)) op = 'update';
    if (op !== 'insert' && table.count === 0) op = 'insert';
    return { op, table: table.def.name };
  }
}
