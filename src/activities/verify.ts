/**
 * Files-phase checks that need S3: every object a run recorded, confirmed by a listing with the size and ETag the
 * ledger holds (else by HEAD with its size and SHA-256); and the dry run's estimate of the bytes a run would download
 * (files not already stored).
 */
import { headObject, inventory } from '../s3';
import { averageRecordedBytes, ledgerLookup, recordedObjects, type RecordedObject } from '../store/ledger';
import type { SourceTableName } from '../domain/tables';
import { KEY_PREFIX } from '../domain/keys';
import type { ActivityDeps } from './deps';
import type { Pool } from '../store/db';
import { inParallel } from '../parallel';
import type { ObjectCheck } from './types';

const HEADS_IN_FLIGHT = 16;
const LISTINGS_IN_FLIGHT = 4;
const MISMATCHES_KEPT = 50;
/** Objects to check under this share of the table's are each HEADed rather than confirmed from a listing. */
const HEAD_RATHER_THAN_LIST = 0.1;

/** Average sizes the clinic reported, used until the ledger knows better. */
export const DEFAULT_FILE_BYTES: Partial<Record<SourceTableName, number>> = {
  API_Docs: 512 * 1024,
  API_Images: 3 * 1024 * 1024,
};

/** What the object checks use: the ledger, the bucket, the log, and the activity's heartbeat when there is one. */
export type ObjectCheckDeps = Pick<ActivityDeps, 'pool' | 's3' | 'logger'> & {
  config: { s3: { bucket: string } };
  heartbeat?: (details: unknown) => void;
};

/** HEADs each object against the ledger's size and SHA-256; returns the ids that differ (or have no object), sorted. */
async function headCheck(
  deps: ObjectCheckDeps,
  table: SourceTableName,
  rows: readonly RecordedObject[],
): Promise<string[]> {
  const mismatched: string[] = [];
  await inParallel(rows, HEADS_IN_FLIGHT, async (r, i) => {
    const h = await headObject(deps.s3, deps.config.s3.bucket, r.s3_key);
    const ok = h !== undefined && r.bytes !== null && h.size === Number(r.bytes) && h.sha256 === r.sha256;
    if (!ok) mismatched.push(r.filemaker_id);
    if (i % 500 === 0) deps.heartbeat?.({ table, checked: i });
  });
  return mismatched.sort();
}

function reportMismatches(
  deps: ObjectCheckDeps,
  table: SourceTableName,
  checked: number,
  headed: number,
  mismatched: string[],
): ObjectCheck {
  if (mismatched.length > 0) {
    deps.logger.error({ table, mismatched: mismatched.length, checked }, 'stored objects differ from the ledger');
  }
  return { checked, mismatches: mismatched.slice(0, MISMATCHES_KEPT), headed };
}

/**
 * The object check of a files phase's reconciliation and of the run's validation. Each object was confirmed when it
 * was stored — S3 verified the SHA-256 we sent and echoed it, or a HEAD showed the size and SHA-256 — or relinked (a
 * HEAD showed them), and the ledger keeps the ETag S3 gave it then. One listing of the bucket under the prefixes of
 * the run's keys then shows, for every object, whether it is still there with that size and that ETag (bytes written
 * since would have another ETag). Every object that is not (or has no ETag recorded) is HEADed against the ledger's
 * size and SHA-256. The validation phase at the end of a run checks again from a listing of its own, so an object
 * written again or deleted after its phase is still found. A phase's check may leave the objects of carried-over
 * entries to the validation (`leaveCarried`): an incremental run neither read nor wrote them, the run they come from
 * checked them, and validation checks them all.
 */
export async function reconcileObjects(
  deps: ObjectCheckDeps,
  runId: string,
  table: SourceTableName,
  { leaveCarried = false }: { leaveCarried?: boolean } = {},
): Promise<ObjectCheck> {
  const recorded = await recordedObjects(deps.pool, runId, table);
  const rows = leaveCarried ? recorded.filter((r) => !r.carried) : recorded;
  if (rows.length < recorded.length * HEAD_RATHER_THAN_LIST) {
    // A few objects beside the table's: a listing would read the whole folder for them.
    return reportMismatches(deps, table, rows.length, rows.length, await headCheck(deps, table, rows));
  }
  const awaiting = new Map<string, RecordedObject>();
  for (const r of rows) if (r.object_etag !== null && r.bytes !== null) awaiting.set(r.s3_key, r);
  // Disjoint slices of the folders listed side by side: S3 lists one page after the other, and a files phase's
  // folder holds tens of thousands of objects.
  await inParallel(listingPrefixes([...awaiting.keys()]), LISTINGS_IN_FLIGHT, async (prefix) => {
    for await (const o of inventory(deps.s3, deps.config.s3.bucket, prefix)) {
      const r = awaiting.get(o.key);
      if (r && o.size === Number(r.bytes) && o.etag === r.object_etag) awaiting.delete(o.key);
    }
  });
  const unconfirmed = rows.filter((r) => r.object_etag === null || r.bytes === null || awaiting.has(r.s3_key));
  if (unconfirmed.length > 0) {
    deps.logger.info(
      { table, objects: rows.length, heads: unconfirmed.length },
      'objects not listed as they were confirmed when stored: checking them by HEAD',
    );
  }
  const mismatched = await headCheck(deps, table, unconfirmed);
  return reportMismatches(deps, table, rows.length, unconfirmed.length, mismatched);
}

/**
 * The prefixes to list for these keys: the table's folder under the import prefix (`…/documents/`, `…/images/`) for
 * the keys the files phases make, the key's own folder for any other.
 */
export function commonPrefixes(keys: readonly string[]): string[] {
  const prefixes = new Set<string>();
  for (const key of keys) {
    const under = key.startsWith(`${KEY_PREFIX}/`) ? key.slice(KEY_PREFIX.length + 1) : undefined;
    const folder = under?.split('/')[0];
    if (under !== undefined && folder !== undefined && under.includes('/')) prefixes.add(`${KEY_PREFIX}/${folder}/`);
    else prefixes.add(key.slice(0, key.lastIndexOf('/') + 1));
  }
  return [...prefixes].sort();
}

/**
 * The prefixes one listing per slice covers these keys with: each folder of `commonPrefixes` narrowed by the first
 * character after it (`…/documents/0`, `…/documents/1`, …, `…/documents/u` for unlinked). Every key starts with one
 * of them, and none starts with another, so each object is listed once.
 */
export function listingPrefixes(keys: readonly string[]): string[] {
  const folders = commonPrefixes(keys);
  const prefixes = new Set<string>();
  for (const key of keys) {
    // The longest folder the key is under (the empty folder is under every key).
    let folder = '';
    for (const f of folders) if (key.startsWith(f) && f.length > folder.length) folder = f;
    // One character, not one UTF-16 unit (a key that is its folder is listed with the whole folder).
    const next = key.codePointAt(folder.length);
    prefixes.add(next === undefined ? folder : folder + String.fromCodePoint(next));
  }
  // A slice inside another's (`t` and `texts/a`, from keys in different folders) is listed by that one.
  const slices: string[] = [];
  for (const p of [...prefixes].sort()) if (!slices.some((q) => p.startsWith(q))) slices.push(p);
  return slices;
}

/** The average size of a table's files: as the ledger recorded them, else as the clinic reported them. */
export async function averageFileBytes(
  pool: Pool,
  table: SourceTableName,
): Promise<{ bytes: number; from: 'ledger' | 'reported' }> {
  const recorded = await averageRecordedBytes(pool, table);
  if (recorded !== null && recorded !== undefined) return { bytes: Number(recorded), from: 'ledger' };
  return { bytes: DEFAULT_FILE_BYTES[table] ?? 0, from: 'reported' };
}

/**
 * Bytes a run would download for these ids (id → the record's modId now): 0 for a file already stored as recorded at
 * this record version (it is relinked), the recorded size when the ledger knows it, else the table's average so far
 * (or the clinic's reported average).
 */
export async function estimateDownloadBytes(
  deps: ActivityDeps,
  table: SourceTableName,
  modIds: ReadonlyMap<string, string>,
): Promise<number> {
  const ids = [...modIds.keys()];
  const priors = await ledgerLookup(deps.pool, table, ids);
  const { bytes: average } = await averageFileBytes(deps.pool, table);
  let total = 0;
  await inParallel(ids, HEADS_IN_FLIGHT, async (id) => {
    const prior = priors.get(id);
    if (prior && prior.bytes !== null && prior.sha256 !== null) {
      const h =
        prior.sourceModId === modIds.get(id)
          ? await headObject(deps.s3, deps.config.s3.bucket, prior.s3Key)
          : undefined;
      if (h && h.size === prior.bytes && h.sha256 === prior.sha256) return;
      total += prior.bytes;
      return;
    }
    total += average;
  });
  return total;
}
