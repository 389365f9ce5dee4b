/**
 * Validation of an incoming record and a small reader the mappers use to pull typed, cleaned values out of it while
 * collecting findings. Messages name ids and fields, never values: the ledger and logs must hold no patient data.
 */
import { z } from 'zod';
import { normalizeFileMakerId, targetId } from './ids';
import {
  TEXT_LIMITS,
  cleanText,
  parseBoolean,
  parseDate,
  parseFmTimestamp,
  sanitizeRaw,
  type DateIssue,
  type ParsedDate,
} from './normalize';
import { type ReasonCode } from './reasons';
import { setOwnKey } from './own-key';
import { SOURCE_TABLES, type SourceTableName, type TargetTable } from './tables';
import {
  type BaseRow,
  type Finding,
  type FmFieldValue,
  type MapContext,
  type MapOutcome,
  type PatientRef,
} from './types';

/** Cap for one value inside filemaker_metadata (jsonb); far above any real field, it only stops hostile input. */
export const METADATA_MAX_CHARS = 10_000_000;

/** Stored in filemaker_metadata instead of a container URL: URLs expire and differ on every read. */
export const CONTAINER_MARKER = '[container]';

const fieldValue = z.union([z.string(), z.number(), z.null()]);
const fmRecordSchema = z.object({
  recordId: z.union([z.string(), z.number()]).optional(),
  modId: z.union([z.string(), z.number()]).optional(),
  fieldData: z.record(z.string(), fieldValue),
  portalData: z.record(z.string(), z.array(z.unknown())).optional(),
});

const isPlain = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
};
const isKey = (v: unknown) => v === undefined || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/**
 * True when `input` is a record fmRecordSchema accepts, as parsed JSON gives it (plain objects): checked by hand, so
 * that zod is asked only about a record it may refuse, for its message. zod copies every record whole (fields and
 * portal rows), and that copy was a fifth of a core chunk's mapping time and much of its garbage.
 */
function plainRecordShape(input: unknown): boolean {
  if (!isPlain(input) || !isKey(input['recordId']) || !isKey(input['modId'])) return false;
  const { fieldData, portalData } = input;
  if (!isPlain(fieldData)) return false;
  for (const k in fieldData) {
    const v = fieldData[k];
    if (v !== null && typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) return false;
  }
  if (portalData === undefined) return true;
  if (!isPlain(portalData)) return false;
  for (const k in portalData) if (!Array.isArray(portalData[k])) return false;
  return true;
}

const DATE_FINDING: Record<DateIssue, ReasonCode> = {
  ambiguous: 'DATE_AMBIGUOUS',
  impossible: 'DATE_IMPOSSIBLE',
  unparseable: 'DATE_UNPARSEABLE',
};

/** An id made safe and short for a message (a non-UUID id could hold anything someone typed). */
export function messageId(id: string): string {
  return id.length > 100 ? `${id.slice(0, 100)}…` : id;
}

/** A field name made safe to put in a message (it comes from the layout, but is still source data). */
function fieldName(name: string): string {
  return cleanText(name, { maxLength: 100 }).value;
}

export class RecordReader {
  readonly findings: Finding[] = [];
  /** Lower-case, trimmed FileMaker id. */
  readonly filemakerId: string;

  constructor(
    readonly table: SourceTableName,
    private readonly fields: Readonly<Record<string, FmFieldValue>>,
    filemakerId: string,
    readonly ctx: MapContext,
  ) {
    this.filemakerId = filemakerId;
  }

  /** The columns every target row starts with: its deterministic id, the FileMaker id and the source's fields. */
  base(target: TargetTable): BaseRow {
    return {
      id: targetId(target, this.filemakerId),
      filemaker_id: this.filemakerId,
      filemaker_metadata: this.metadata(),
    };
  }

  /** A mapped row's outcome: imported, or unlinked for `unlinked` when a link it may lack is missing. */
  outcome<Row>(row: Row, unlinked?: ReasonCode): MapOutcome<Row> {
    return unlinked
      ? { kind: 'row', row, state: 'unlinked', reason: unlinked, findings: this.findings }
      : { kind: 'row', row, state: 'imported', findings: this.findings };
  }

  /** The patient `field` names: unlinked NO_PATIENT when it is empty, PATIENT_NOT_FOUND when no patient has the id. */
  patient(field: string): { patient?: PatientRef; unlinked?: ReasonCode } {
    const fk = this.fk(field);
    if (fk === null) return { unlinked: 'NO_PATIENT' };
    const patient = this.ctx.patientId(fk);
    return patient ? { patient } : { unlinked: 'PATIENT_NOT_FOUND' };
  }

  /**
   * A link the row cannot exist without (its column is not null): the target `resolve` finds for the field's id, or a
   * skip for `reason` when the field is empty or names no known `what`.
   */
  requiredLink<T>(
    field: string,
    resolve: (fk: string) => T | undefined,
    reason: ReasonCode,
    what: string,
  ): { ok: true; target: T } | { ok: false; skip: MapOutcome<never> } {
    const fk = this.fk(field);
    const target = fk === null ? undefined : resolve(fk);
    if (target !== undefined) return { ok: true, target };
    const why = fk === null ? 'empty' : `not a known ${what}`;
    return { ok: false, skip: { kind: 'skip', reason, message: `${this.describe()}: ${fieldName(field)} is ${why}` } };
  }

  raw(field: string): FmFieldValue {
    return this.fields[field] ?? '';
  }

  /** Cleaned text; '' when empty. Records TEXT_SANITIZED / TEXT_TRUNCATED findings. */
  text(field: string, maxLength: number = TEXT_LIMITS.short): string {
    const r = cleanText(this.raw(field), { maxLength });
    if (r.sanitized) this.flag('TEXT_SANITIZED', field);
    if (r.truncated) this.flag('TEXT_TRUNCATED', field);
    return r.value;
  }

  /** Cleaned text, null when empty. */
  optText(field: string, maxLength: number = TEXT_LIMITS.short): string | null {
    const v = this.text(field, maxLength);
    return v === '' ? null : v;
  }

  date(field: string): string | null {
    return this.dateResult(field).value;
  }

  dateResult(field: string): ParsedDate {
    const r = parseDate(this.raw(field), { preferDayFirst: this.ctx.preferDayFirst });
    if (r.issue) this.flag(DATE_FINDING[r.issue], field);
    return r;
  }

  /** An ISO instant from a FileMaker timestamp (or date) in the clinic's zone. */
  timestamp(field: string): string | null {
    const r = parseFmTimestamp(this.raw(field), {
      timeZone: this.ctx.timeZone,
      preferDayFirst: this.ctx.preferDayFirst,
    });
    if (r.issue) this.flag(DATE_FINDING[r.issue], field);
    return r.value;
  }

  /** A normalised foreign key, null when empty; a non-UUID key is kept and flagged NON_UUID_ID. */
  fk(field: string): string | null {
    const id = normalizeFileMakerId(this.raw(field));
    if (id === null) return null;
    if (!id.isUuid) this.flag('NON_UUID_ID', field);
    return id.value;
  }

  bool(field: string): boolean {
    const r = parseBoolean(this.raw(field));
    if (r.invalid) this.flag('INVALID_BOOLEAN', field);
    return r.value;
  }

  flag(code: ReasonCode, field?: string): void {
    this.findings.push(field === undefined ? { code } : { code, field });
  }

  /** The sanitised fieldData for `filemaker_metadata`, keys in source order. */
  metadata(): Record<string, FmFieldValue> {
    const containers = containerFieldsOf(this.table);
    const out: Record<string, FmFieldValue> = {};
    const put = (k: string, v: FmFieldValue) => setOwnKey(out, k, v);
    // The keys alone: Object.entries made an array per field, for every record of the run.
    for (const key of Object.keys(this.fields)) {
      const value = this.fields[key]!;
      const k = sanitizeRaw(key, 1_000).value as string;
      if (containers.has(key)) {
        put(k, value === '' ? '' : CONTAINER_MARKER);
        continue;
      }
      const r = sanitizeRaw(value, METADATA_MAX_CHARS);
      if (r.truncated) this.flag('METADATA_TRUNCATED', key);
      put(k, r.value);
    }
    return out;
  }

  /** "API_Notes <id>": the prefix of every message about this record. */
  describe(): string {
    return `${this.table} ${messageId(this.filemakerId)}`;
  }
}

/** Each table's container fields as a set, built once: metadata() asks for every record. */
const containerFields = new Map<SourceTableName, ReadonlySet<string>>();

function containerFieldsOf(table: SourceTableName): ReadonlySet<string> {
  let set = containerFields.get(table);
  if (!set) containerFields.set(table, (set = new Set(SOURCE_TABLES[table].containerFields)));
  return set;
}

type ErrorOutcome = Extract<MapOutcome<never>, { kind: 'error' }>;

/**
 * Validate the record shape with zod, require every field the table's mapper reads, and normalise `id`.
 * null field values (OData) are read as `""`.
 */
/** Maps `input` as a record of `table` with `body`; a record that cannot be read is its own outcome (error). */
export function mapRecord<Row>(
  input: unknown,
  table: SourceTableName,
  ctx: MapContext,
  body: (r: RecordReader) => MapOutcome<Row>,
): MapOutcome<Row> {
  const read = readRecord(input, table, ctx);
  return read.ok ? body(read.reader) : read.outcome;
}

export function readRecord(
  input: unknown,
  table: SourceTableName,
  ctx: MapContext,
): { ok: true; reader: RecordReader } | { ok: false; outcome: ErrorOutcome } {
  const parsed = plainRecordShape(input) ? undefined : fmRecordSchema.safeParse(input);
  if (parsed !== undefined && !parsed.success) {
    const paths = [...new Set(parsed.error.issues.map((i) => i.path.map((p) => fieldName(String(p))).join('.')))];
    return {
      ok: false,
      outcome: {
        kind: 'error',
        reason: 'INVALID_RECORD',
        message: `${table} record has invalid ${paths.length > 0 ? paths.slice(0, 10).join(', ') : 'shape'}`,
      },
    };
  }
  // Read the input's own keys, not zod's copy: zod assigns keys with `=`, which drops a field named `__proto__`.
  // A null prototype keeps such a field ordinary here too; its value is checked like every other.
  const fields = Object.create(null) as Record<string, FmFieldValue>;
  const fieldData = (input as { fieldData: Record<string, unknown> }).fieldData;
  for (const k of Object.keys(fieldData)) {
    const v = fieldData[k];
    if (v !== null && typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) {
      return {
        ok: false,
        outcome: {
          kind: 'error',
          reason: 'INVALID_RECORD',
          message: `${table} record has invalid fieldData.${fieldName(k)}`,
        },
      };
    }
    fields[k] = v ?? '';
  }
  const given = (input as { recordId?: string | number }).recordId;
  const recordId = given === undefined ? '?' : fieldName(String(given));
  const id = normalizeFileMakerId(fields.id);
  if (id === null) {
    return {
      ok: false,
      outcome: { kind: 'error', reason: 'MISSING_ID', message: `${table} recordId ${recordId} has no id` },
    };
  }
  const missing = SOURCE_TABLES[table].requiredFields.filter((f) => !(f in fields));
  if (missing.length > 0) {
    return {
      ok: false,
      outcome: {
        kind: 'error',
        reason: 'MISSING_FIELD',
        message: `${table} ${messageId(id.value)} lacks field(s) ${missing.map(fieldName).join(', ')}`,
      },
    };
  }
  const reader = new RecordReader(table, fields, id.value, ctx);
  if (!id.isUuid) reader.flag('NON_UUID_ID', 'id');
  return { ok: true, reader };
}
