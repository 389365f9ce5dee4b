/**
 * The container probe: is OData's `$value` the container? Some servers answer it with the filename as `text/plain`,
 * an empty 200 or base64 text. One non-empty sample container per files table is read both ways — over `$value` and
 * through the Data API (the record's container URL) — and compared by size and SHA-256. When `$value` is unusable the
 * run reads every container through the Data API and its report says why; when it is usable, a single answer the
 * client still finds suspect is read again through the Data API (see ./files/download.ts).
 *
 * One home for the run's pre-flight (`probeContainerPath`) and the operator's read-only `doctor` (`probeContainers`,
 * `sampleTable`), so the two cannot disagree on the sample, the size cap or what makes `$value` unusable. Only the
 * pre-flight counts its reads against the transfer quota, through the `reserve` hook (`transfer_log.source_table`
 * `preflight`, outside every table's own count); the doctor reads without it and writes nothing.
 *
 * Per files table: the first SAMPLE_RECORDS records of the manifest, of which the first SAMPLE_ATTEMPTS with a file
 * are tried in turn. A sample is passed over, and the next one tried, when the Data API cannot read it (a damaged
 * container), when it is empty by now or holds 0 bytes (an empty `$value` answer would not tell), or when it is
 * larger than SAMPLE_MAX_BYTES (it would be read twice). Errors about the session or the server are thrown. Nothing
 * of the sample (its id, name or bytes) leaves this module: the table and field names, sizes, types, the SHA-256 and
 * reason codes.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config';
import { normalizeFileMakerId } from '../domain/ids';
import { SOURCE_TABLES, type SourceTable, type SourceTableName } from '../domain/tables';
import { FileMakerError, FileMakerOverloadedError } from '../errors';
import { FM_ERRORS, type ContainerDownload, type FileMakerClient, type FileMakerRecord } from '../filemaker';
import type { ActivityDeps } from './deps';
import type { FileResources } from './files';
import type { ContainerPath } from './types';

/** What the probe asks of the FileMaker client (a fake in the unit tests). */
export type ProbeClient = Pick<
  FileMakerClient,
  'manifest' | 'findByIds' | 'downloadRecordContainer' | 'downloadODataContainer'
>;

/** Why the run reads containers the way it does. */
export const CONTAINER_PATH_REASONS = {
  /** FM_CONTAINER_API=dataapi: no probe. */
  CONFIGURED: 'CONFIGURED',
  /** `$value` answered the sample's exact bytes. */
  PROBED: 'PROBED',
  /** No sample was read (a dry run, no files phase, no readable container among the first records, no budget). */
  NOT_PROBED: 'NOT_PROBED',
  /** `$value` answered 2xx bytes of another size or SHA-256 than the Data API's (or none, or too many). */
  VALUE_MISMATCH: 'ODATA_VALUE_MISMATCH',
} as const;

/** Records of a table looked at for a non-empty container (the first of the manifest). */
export const SAMPLE_RECORDS = 20;
/** Samples tried per table when one cannot tell (damaged, emptied, too large). */
const SAMPLE_ATTEMPTS = 3;
/** A sample larger than this is passed over: it would be read twice, against the transfer quota. */
export const SAMPLE_MAX_BYTES = 32 * 1024 * 1024;
/** `transfer_log.filemaker_id` of a probe read: this and the path it read (`probe@odata`, `probe@dataapi`). */
export const PROBE_ID = 'probe@';
/** `transfer_log.source_table` of the probe reads. */
export const PROBE_TABLE = 'preflight';

export interface ContainerProbe {
  path: ContainerPath;
  reason: string;
}

/** One read of a sample: its size, SHA-256 and the type the server named. */
export interface ContainerRead {
  readonly size: number;
  readonly sha256: string;
  readonly contentType: string | undefined;
}

/** A read that gave no bytes to compare: an empty container, larger than the cap, or no room in the budget. */
type NoRead = 'empty' | 'too-large' | 'no-budget';

/** A table's first records and those with a file, with the container field that holds it (waterfall order). */
export interface TableSample {
  readonly table: SourceTable;
  readonly records: readonly FileMakerRecord[];
  readonly withFile: readonly { record: FileMakerRecord; field: string }[];
}

/** What one table's sample said. */
export type TableProbe =
  | {
      readonly table: SourceTableName;
      readonly field: string;
      readonly outcome: 'usable';
      readonly dataApi: ContainerRead;
    }
  | {
      readonly table: SourceTableName;
      readonly field: string;
      readonly outcome: 'unusable';
      /** The client's code for `$value`'s answer, or ODATA_VALUE_MISMATCH. */
      readonly reason: string;
      readonly dataApi: ContainerRead;
      /** What `$value` gave: other bytes, nothing, too many, or the error it was refused with. */
      readonly odata: ContainerRead | Exclude<NoRead, 'no-budget'> | FileMakerError;
    }
  | {
      readonly table: SourceTableName;
      readonly outcome: 'not-probed';
      /** Why each sample tried could not tell (`field: code`), or why none was tried. */
      readonly passedOver: readonly string[];
    };

export interface ContainerProbeResult extends ContainerProbe {
  /** The tables in the order probed; the probe stops at the first where `$value` is unusable. */
  readonly tables: readonly TableProbe[];
}

/**
 * Called once a probe read is open and its announced size known, before its body is read: returns how to settle the
 * bytes really received, or undefined when the budget has no room (the read is dropped, the table left unprobed).
 */
export type ProbeReserve = (read: {
  table: SourceTableName;
  field: string;
  path: ContainerPath;
  announcedBytes: number | undefined;
}) => Promise<((receivedBytes: number) => Promise<void>) | undefined>;

export interface ProbeOptions {
  /** The transfer-quota accounting (the pre-flight's); without it the reads are not counted anywhere. */
  reserve?: ProbeReserve;
}

/**
 * Errors about the session or the server as a whole (or not FileMaker's at all): the probe fails with them (an
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

/** A table's first records in manifest order (one page), read as the engine reads them (Data API `_find`). */
export async function firstRecords(
  fm: Pick<ProbeClient, 'manifest' | 'findByIds'>,
  table: SourceTable,
): Promise<FileMakerRecord[]> {
  const ids: string[] = [];
  for await (const e of fm.manifest(table.odataTable, { idField: table.idField, pageSize: SAMPLE_RECORDS })) {
    const id = normalizeFileMakerId(e.id)?.value;
    if (id !== undefined) ids.push(id);
    if (ids.length >= SAMPLE_RECORDS) break;
  }
  return ids.length ? fm.findByIds(table.layout, table.idField, ids) : [];
}

/** The table's first records and the ones with a non-empty container. */
export async function sampleTable(fm: ProbeClient, table: SourceTable): Promise<TableSample> {
  const records = await firstRecords(fm, table);
  const withFile = records.flatMap((record) => {
    const field = table.containerFields.find((f) => {
      const v = record.fieldData[f];
      return typeof v === 'string' && v.trim() !== '';
    });
    return field === undefined ? [] : [{ record, field }];
  });
  return { table, records, withFile };
}

/**
 * How the samples say containers must be read: the Data API from the first table whose `$value` is unusable, else
 * OData (`PROBED` when a table's sample was equal both ways, `NOT_PROBED` when none could tell).
 */
export async function probeContainers(
  fm: ProbeClient,
  samples: readonly TableSample[],
  opts: ProbeOptions = {},
): Promise<ContainerProbeResult> {
  const tables: TableProbe[] = [];
  for (const sample of samples) {
    const verdict = await probeTable(fm, sample, opts);
    tables.push(verdict);
    if (verdict.outcome === 'unusable') return { path: 'dataapi', reason: verdict.reason, tables };
  }
  const probed = tables.some((t) => t.outcome === 'usable');
  return { path: 'odata', reason: probed ? CONTAINER_PATH_REASONS.PROBED : CONTAINER_PATH_REASONS.NOT_PROBED, tables };
}

async function probeTable(fm: ProbeClient, sample: TableSample, opts: ProbeOptions): Promise<TableProbe> {
  const { table: source } = sample;
  const table = source.name;
  const passedOver: string[] = [];
  if (sample.withFile.length === 0) passedOver.push(`no container in the first ${sample.records.length} records`);
  for (const { record, field } of sample.withFile.slice(0, SAMPLE_ATTEMPTS)) {
    let dataApi: ContainerRead | NoRead;
    try {
      dataApi = await read(opts, { table, field, path: 'dataapi' }, () =>
        fm.downloadRecordContainer(source.layout, record.recordId, field),
      );
    } catch (err) {
      if (aboutFileMaker(err)) throw err;
      passedOver.push(`${field}: ${(err as FileMakerError).code}`); // a damaged container: another sample
      continue;
    }
    if (dataApi === 'no-budget') return { table, outcome: 'not-probed', passedOver: [...passedOver, 'no budget'] };
    if (typeof dataApi === 'string') {
      passedOver.push(`${field}: ${dataApi === 'empty' ? 'emptied' : 'too large'}`);
      continue;
    }
    if (dataApi.size === 0) {
      // A zero-byte file (an empty container to the files phases): `$value` answers it with an empty 200, which is
      // also what an unusable `$value` sends, so it cannot tell.
      passedOver.push(`${field}: 0 bytes`);
      continue;
    }
    let odata: ContainerRead | NoRead | FileMakerError;
    try {
      odata = await read(opts, { table, field, path: 'odata' }, () =>
        fm.downloadODataContainer(source.odataTable, { rowId: record.recordId }, field),
      );
    } catch (err) {
      if (aboutFileMaker(err)) throw err;
      odata = err as FileMakerError;
    }
    if (odata === 'no-budget') return { table, outcome: 'not-probed', passedOver: [...passedOver, 'no budget'] };
    if (typeof odata === 'object' && !(odata instanceof FileMakerError)) {
      if (odata.size === dataApi.size && odata.sha256 === dataApi.sha256)
        return { table, field, outcome: 'usable', dataApi };
    }
    const reason = odata instanceof FileMakerError ? odata.code : CONTAINER_PATH_REASONS.VALUE_MISMATCH;
    return { table, field, outcome: 'unusable', reason, dataApi, odata };
  }
  return { table, outcome: 'not-probed', passedOver };
}

/** One sample read to its size and SHA-256, reserved and settled through `opts.reserve` when there is one. */
async function read(
  opts: ProbeOptions,
  what: { table: SourceTableName; field: string; path: ContainerPath },
  open: () => Promise<ContainerDownload | null>,
): Promise<ContainerRead | NoRead> {
  const dl = await open();
  if (dl === null) return 'empty';
  if (dl.status === 204) {
    dl.body.resume();
    return 'empty';
  }
  if (dl.contentLength !== undefined && dl.contentLength > SAMPLE_MAX_BYTES) {
    dl.body.destroy();
    return 'too-large';
  }
  const settle = opts.reserve ? await opts.reserve({ ...what, announcedBytes: dl.contentLength }) : undefined;
  if (opts.reserve && settle === undefined) {
    dl.body.destroy();
    return 'no-budget';
  }
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of dl.body as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      if (size > SAMPLE_MAX_BYTES) {
        dl.body.destroy();
        return 'too-large';
      }
    }
    return { size, sha256: hash.digest('hex'), contentType: dl.contentType };
  } catch (err) {
    if (err instanceof FileMakerError) throw err;
    // The body broke off (the socket's own error): a damaged container, as the Data API serves a truncated one.
    throw new FileMakerError(`probe of container ${what.field}: the body broke off`, undefined, dl.status, {
      code: FM_ERRORS.CONTAINER_TRUNCATED,
    });
  } finally {
    await settle?.(dl.received());
  }
}

/** What the pre-flight's probe uses of the activities' deps. */
export type PreflightProbeDeps = Pick<ActivityDeps, 'fm' | 'logger'> & {
  files: Pick<FileResources, 'writes'>;
  config: { filemaker: Pick<Config['filemaker'], 'containerApi' | 'transferBudgetBytes' | 'transferUsedBytes'> };
};

/**
 * The pre-flight's probe: decides how this run reads containers. FM_CONTAINER_API=dataapi skips it. Each read is
 * reserved in the transfer log first (at its announced size, else at the cap, which it never exceeds); a read the
 * budget has no room for is not made (the run stays on `$value`, each suspect answer still read again per file).
 */
export async function probeContainerPath(
  deps: PreflightProbeDeps,
  runId: string,
  tables: readonly SourceTableName[],
): Promise<ContainerProbe> {
  if (deps.config.filemaker.containerApi === 'dataapi') {
    return { path: 'dataapi', reason: CONTAINER_PATH_REASONS.CONFIGURED };
  }
  const writes = deps.files.writes;
  const reserve: ProbeReserve = async ({ field, path, announcedBytes }) => {
    const reservation = await writes.tryReserve({
      runId,
      table: PROBE_TABLE,
      filemakerId: `${PROBE_ID}${path}`,
      field,
      bytes: announcedBytes ?? SAMPLE_MAX_BYTES,
      budgetBytes: deps.config.filemaker.transferBudgetBytes,
      usedOutsideBytes: deps.config.filemaker.transferUsedBytes,
    });
    return reservation && ((bytes) => writes.settle([{ reservation, bytes }]));
  };
  const samples: TableSample[] = [];
  for (const table of tables) samples.push(await sampleTable(deps.fm, SOURCE_TABLES[table]));
  const probe = await probeContainers(deps.fm, samples, { reserve });
  const decided = probe.tables.find((t) => t.outcome === 'unusable');
  if (decided?.outcome === 'unusable') {
    deps.logger.warn(
      { table: decided.table, field: decided.field, reason: decided.reason },
      '$value unusable: containers via the Data API',
    );
  }
  return { path: probe.path, reason: probe.reason };
}
