/**
 * FileMaker ids and the deterministic target ids derived from them.
 *
 * FileMaker keys are uppercase UUIDs, but foreign keys typed or imported by hand arrive lower-cased or padded with
 * whitespace; earlier migrations lost patient links on exactly that. Every id is therefore normalised once, here,
 * and every comparison and lookup uses the normalised form.
 *
 * Uses node:crypto (SHA-1 for UUIDv5), so workflows must not import this module; activities and mappers do.
 */
import { createHash } from 'node:crypto';
import { type TargetTable } from './tables';

/**
 * The project namespace for UUIDv5 target ids. Fixed forever: changing it would give every row and every S3 key a
 * new id on the next run.
 */
export const PROJECT_NAMESPACE = '6f1c9a52-3b7e-4d0a-9c4e-2a8f5d7b1e63';

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface NormalizedId {
  /** Trimmed, lower-cased, control characters removed. */
  readonly value: string;
  /** Whether the id has the 8-4-4-4-12 hex shape; non-UUID ids are kept but reported (NON_UUID_ID). */
  readonly isUuid: boolean;
}

/**
 * Normalise a FileMaker id or foreign key: remove control characters and whitespace at either end, lower-case.
 * Returns null for an empty value. Numbers (a key typed into a number field) become their decimal text.
 */
export function normalizeFileMakerId(raw: unknown): NormalizedId | null {
  let s: string;
  if (typeof raw === 'string') s = raw;
  else if (typeof raw === 'number' && Number.isFinite(raw)) s = String(raw);
  else return null;
  const value = s
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .trim()
    .toLowerCase();
  if (value === '') return null;
  return { value, isUuid: UUID_SHAPE.test(value) };
}

export function isUuid(value: string): boolean {
  return UUID_SHAPE.test(value);
}

function uuidBytes(uuid: string): Buffer {
  if (!UUID_SHAPE.test(uuid)) throw new RangeError('namespace is not a lower-case UUID');
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

function formatUuid(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Namespaces' bytes: every target id hashes under the same one, parsed once instead of once per id. */
const namespaceBytes = new Map<string, Buffer>();

/** RFC 9562 UUID version 5 (SHA-1, name-based). */
export function uuidv5(name: string, namespace: string): string {
  let ns = namespaceBytes.get(namespace);
  if (!ns) namespaceBytes.set(namespace, (ns = uuidBytes(namespace)));
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  return formatUuid(bytes);
}

/**
 * The deterministic primary key of a target row: UUIDv5 of `"{table}:{filemaker id}"` under PROJECT_NAMESPACE.
 * The id is normalised first, so `ABC` and ` abc ` give the same row. For `image_batches` the "FileMaker id" is the
 * batch key (`{patient_id|unlinked}/{yyyy-mm-dd|undated}`).
 */
export function targetId(table: TargetTable | 'contact_details', filemakerId: string): string {
  const id = normalizeFileMakerId(filemakerId);
  if (id === null) throw new RangeError(`targetId(${table}): empty FileMaker id`);
  return uuidv5(`${table}:${id.value}`, PROJECT_NAMESPACE);
}
