/**
 * The pre-flight's container probe: is OData's `$value` the container? Some servers answer it with the filename as
 * `text/plain`, an empty 200 or base64 text. One non-empty sample container per files table is read both ways —
 * over `$value` and through the Data API (the record's container URL) — and compared by size and SHA-256. When
 * `$value` is unusable the run reads every container through the Data API and its report says why; when it is
 * usable, a single answer the client still finds suspect is read again through the Data API (see ./files.ts).
 *
 * The two reads count against the transfer quota (`transfer_log.source_table` `preflight`, outside every table's
 * own count): at most two container reads per files table and run, which a run that needs no file pays too. Nothing of the sample (its id, name or bytes) leaves this module: only the path and a reason code.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { normalizeFileMakerId } from '../domain/ids';
import { SOURCE_TABLES, type SourceTableName } from '../domain/tables';
import { FileMakerError, FileMakerOverloadedError } from '../errors';
import { FM_ERRORS, type FileMakerRecord } from '../filemaker';
import type { ContainerDownload } from '../filemaker/client';
import type { ActivityDeps } from './deps';
import { fileWritesFor } from './file-writes';
import type { ContainerPath } from './types';

/** Why the run reads containers the way it does. */
export const CONTAINER_PATH_REASONS = {
  /** FM_CONTAINER_API=dataapi: no probe. */
  CONFIGURED: 'CONFIGURED',
  /** `$value` answered the sample's exact bytes. */
  PROBED: 'PROBED',
  /** No sample was read (a dry run, no files phase, no non-empty container among the first records, no budget). */
  NOT_PROBED: 'NOT_PROBED',
  /** `$value` answered 2xx bytes of another size or SHA-256 than the Data API's. */
  VALUE_MISMATCH: 'ODATA_VALUE_MISMATCH',
} as const;

/** Records of a table looked at for a non-empty container (the first of the manifest). */
const SAMPLE_RECORDS = 20;
/** Samples tried when the Data API itself cannot read one (a damaged container). */
const SAMPLE_ATTEMPTS = 3;
/** `transfer_log.filemaker_id` of a probe read: this and the path it read (`probe@odata`, `probe@dataapi`). */
export const PROBE_ID = 'probe@';
/** `transfer_log.source_table` of the probe reads. */
export const PROBE_TABLE = 'preflight';
/** A probe read is reserved at this size when FileMaker announces none. */
const UNANNOUNCED_BYTES = 1024 * 1024;

export interface ContainerProbe {
  path: ContainerPath;
  reason: string;
}

interface Digest {
  size: number;
  sha256: string;
}

/**
 * Errors about the session or the server as a whole (or not FileMaker's at all): the pre-flight fails with them (an
 * overload cools down and asks again). Any other error is about the one container read: a damaged sample (its
 * connection cut, as the Data API does for a truncated container), or `$value` itself.
 */
function aboutFileMaker(err: unknown): boolean {
  return (
    !(err instanceof FileMakerError) ||
    err instanceof FileMakerOverloadedError ||
    [FM_ERRORS.AUTH_FAILED, FM_ERRORS.SESSION_INVALID, FM_ERRORS.TLS, FM_ERRORS.FILE_UNAVAILABLE].includes(
      err.code as never,
    )
  );
}

async function digest(body: Readable): Promise<Digest> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: h.digest('hex') };
}

/**
 * Decides how this run reads containers, from the first of `tables` whose sample tells. A read the transfer budget
 * has no room for is not made (the run stays on `$value`, each suspect answer still read again per file).
 */
export async function probeContainerPath(
  deps: ActivityDeps,
  runId: string,
  tables: readonly SourceTableName[],
): Promise<ContainerProbe> {
  if (deps.config.filemaker.containerApi === 'dataapi') {
    return { path: 'dataapi', reason: CONTAINER_PATH_REASONS.CONFIGURED };
  }
  let probed = false;
  for (const table of tables) {
    const verdict = await probeTable(deps, runId, table);
    if (verdict === undefined) continue;
    if (verdict.path === 'dataapi') return verdict;
    probed = true;
  }
  return { path: 'odata', reason: probed ? CONTAINER_PATH_REASONS.PROBED : CONTAINER_PATH_REASONS.NOT_PROBED };
}

/** One table's verdict, or undefined when it has no sample that the Data API can read. */
async function probeTable(
  deps: ActivityDeps,
  runId: string,
  table: SourceTableName,
): Promise<ContainerProbe | undefined> {
  const { fm } = deps;
  const source = SOURCE_TABLES[table];
  const ids: string[] = [];
  for await (const e of fm.manifest(source.odataTable, { idField: source.idField, pageSize: SAMPLE_RECORDS })) {
    const id = normalizeFileMakerId(e.id)?.value;
    if (id !== undefined) ids.push(id);
    if (ids.length >= SAMPLE_RECORDS) break;
  }
  if (ids.length === 0) return undefined;
  const records = await fm.findByIds(source.layout, source.idField, ids);
  const samples = records
    .map((record) => ({ record, field: source.containerFields.find((f) => nonEmpty(record, f)) }))
    .filter((s): s is { record: FileMakerRecord; field: string } => s.field !== undefined)
    .slice(0, SAMPLE_ATTEMPTS);
  for (const { record, field } of samples) {
    let truth: Digest | null | undefined;
    try {
      truth = await read(deps, runId, field, 'dataapi', () =>
        fm.downloadRecordContainer(source.layout, record.recordId, field),
      );
    } catch (err) {
      if (aboutFileMaker(err)) throw err;
      continue; // this container is damaged: another sample
    }
    if (truth === undefined) return undefined; // no budget left for a probe
    if (truth === null) continue;
    let value: Digest | null | undefined;
    try {
      value = await read(deps, runId, field, 'odata', () =>
        fm.downloadODataContainer(source.odataTable, { rowId: record.recordId }, field),
      );
    } catch (err) {
      if (aboutFileMaker(err)) throw err;
      deps.logger.warn(
        { table, field, reason: (err as FileMakerError).code },
        '$value unusable: containers via the Data API',
      );
      return { path: 'dataapi', reason: (err as FileMakerError).code };
    }
    if (value === undefined) return undefined;
    if (value === null || value.size !== truth.size || value.sha256 !== truth.sha256) {
      deps.logger.warn({ table, field }, '$value differs from the Data API: containers via the Data API');
      return { path: 'dataapi', reason: CONTAINER_PATH_REASONS.VALUE_MISMATCH };
    }
    return { path: 'odata', reason: CONTAINER_PATH_REASONS.PROBED };
  }
  return undefined;
}

function nonEmpty(record: FileMakerRecord, field: string): boolean {
  const v = record.fieldData[field];
  return typeof v === 'string' && v.trim() !== '';
}

/**
 * One probe read, its bytes reserved and settled like any download's. Null for an empty container (204 or none),
 * undefined when the budget has no room for it.
 */
async function read(
  deps: ActivityDeps,
  runId: string,
  field: string,
  path: ContainerPath,
  open: () => Promise<ContainerDownload | null>,
): Promise<Digest | null | undefined> {
  const dl = await open();
  if (dl === null) return null;
  if (dl.status === 204) {
    dl.body.resume();
    return null;
  }
  const writes = fileWritesFor(deps.pool);
  const reservation = await writes.tryReserve({
    runId,
    table: PROBE_TABLE,
    filemakerId: `${PROBE_ID}${path}`,
    field,
    bytes: dl.contentLength ?? UNANNOUNCED_BYTES,
    budgetBytes: deps.config.filemaker.transferBudgetBytes,
    usedOutsideBytes: deps.config.filemaker.transferUsedBytes,
  });
  if (!reservation) {
    dl.body.destroy();
    return undefined;
  }
  try {
    return await digest(dl.body);
  } catch (err) {
    if (err instanceof FileMakerError) throw err;
    // The body broke off (the socket's own error): a damaged container, as the Data API serves a truncated one.
    throw new FileMakerError(`probe of container ${field}: the body broke off`, undefined, dl.status, {
      code: FM_ERRORS.CONTAINER_TRUNCATED,
    });
  } finally {
    await writes.settle([{ reservation, bytes: dl.received() }]);
  }
}
