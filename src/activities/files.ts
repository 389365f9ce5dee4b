/**
 * The files phases (documents: API_Docs `Doc`; images: API_Images, the container waterfall): one batch of a table's
 * manifest per activity, on the files task queue.
 *
 * Per file, in order:
 * 1. Already terminal in this run (a retried or resumed batch)? Counted from the ledger, not touched again.
 * 2. Recorded before (any run) at the record version the batch's find read (the ledger's modId is the record's), and
 *    its object is still in S3 with the recorded size and SHA-256 (HEAD)? Relinked: no FileMaker request, no quota
 *    (a server-side copy when the key moved). A record changed since (a replaced container) is read again below
 *    (counted as `replaced`) into a key of its own, marked with the record's modId (see downloadTarget): the object
 *    the tables referred to before the run is never overwritten, so a rollback leaves the restored row pointing at
 *    its intact object.
 * 3. Else the container is read — over OData by the record's ROWID in one request (default; an answer that cannot
 *    be the container is read again through the Data API), or over the Data API (when configured or when the
 *    pre-flight found `$value` unusable: the URL from the batch's find while it is fresh, else the record read
 *    again right before) — the size FileMaker announces is reserved against the transfer budget (drawn from the
 *    batch's lease, see openLease, so a file that fits is read as it arrives), and the bytes stream to S3 with their
 *    SHA-256 computed on the way (a file that fits one part is held whole for its PutObject, within a worker-wide
 *    budget). Content type from the bytes' signature when the response's is generic or contradicts it, else the
 *    response's; the key's extension follows it. A container that turns out to hold 0 bytes counts as empty
 *    (nothing stored; the image waterfall goes on). A broken download is retried a bounded number of times, then
 *    the image waterfall falls back to the next container, then the file ends `failed` DOWNLOAD_FAILED while the
 *    batch goes on.
 * 4. The row is upserted and the ledger state written at once (a crash loses at most the files in flight), in
 *    statements shared with the worker's other files in flight (group commit, ./file-writes.ts).
 * 5. Optional write-back of NexusExportDate, only now that the file is stored and recorded; the modId its PATCH
 *    returns becomes the ledger's record version when nothing else changed the record.
 *
 * Overload (502/503/812), the transfer budget, and FileMaker or S3 being unreachable end the batch with the error
 * (the workflow cools down, pauses or retries); what was done stays done. Heartbeats carry the ids finished so far.
 */
import { Context } from '@temporalio/activity';
import { PassThrough, Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { normalizeFileMakerId } from '../domain/ids';
import {
  contentTypeSource,
  documentKey,
  effectiveContentType,
  extensionFor,
  imageKey,
  keyRevision,
  thumbnailKey,
  type ContentTypeSource,
} from '../domain/keys';
import { documentContainerUrl, documentPatientRefs, mapDocument } from '../domain/mappers/documents';
import { imageCandidates, imagePatientRefs, mapImage, type MappedImage } from '../domain/mappers/images';
import { SOURCE_TABLES, type SourceTableName } from '../domain/tables';
import type { FmRecord, MapContext } from '../domain/types';
import { FileMakerError, FileMakerOverloadedError, IntegrityError, TransferQuotaError } from '../errors';
import { FM_ERRORS, type FileMakerRecord } from '../filemaker';
import type { ContainerDownload } from '../filemaker/client';
import { parseContentDisposition } from '../filemaker/content-disposition';
import { copyObject, headObject, uploadStream } from '../s3';
import { ByteBudget, type Release } from '../s3/buffer-budget';
import { PART_SIZE, QUEUE_SIZE } from '../s3/upload';
import {
  latestEntriesElsewhere,
  latestImageMessage,
  ledgerLookup,
  terminalEntries,
  type LedgerFile,
} from '../store/ledger';
import { manifestSlice } from '../store/manifest';
import type { ActivityDeps } from './deps';
import { countLedger, emptyChunkResult, recordLedger, splitIdIssues, type LedgerEntry } from './ledger';
import { loadMapContext } from './records';
import { inParallel } from './parallel';
import { ensureThumbnail, type ThumbnailResult } from './thumbnails';
import { fileWritesFor, type FileWrites, type Settlement } from './file-writes';
import { TransferLease, type QuotaRequest, type Reservation } from './transfer';
import type { ChunkInput, ChunkResult } from './types';

export const FILE_TABLES: readonly SourceTableName[] = ['API_Docs', 'API_Images'];

/**
 * Bytes of a download read off the connection ahead of the reader: before its size is reserved (drawn from the
 * batch's lease, see openLease), and after that ahead of its upload (see ByteCounter).
 */
const READ_AHEAD_BYTES = 512 * 1024;
/** What a download may have read before its size is reserved: the read-ahead, the chunk crossing it, stream buffers. */
const READ_AHEAD_COVER = READ_AHEAD_BYTES + 128 * 1024;
/**
 * A batch's transfer lease is reserved this much at a time: a batch of documents or scaled-down images at once, a
 * few full-size images. While batches run, at most about this much per batch is held and not yet spent.
 */
const LEASE_BYTES = 16 * 1024 * 1024;
/** `transfer_log.filemaker_id` of a batch's lease: this and the batch's manifest offset. */
const LEASE_ID = 'lease@';

/** Files of one batch processed at once. */
const FILES_IN_FLIGHT = 4;
/** Download attempts per container before it counts as broken. */
const DOWNLOAD_ATTEMPTS = 3;
/** A container URL from the batch's find is used while younger than this; older ones are read again. */
const URL_FRESH_MS = 15_000;
const SNIFF_BYTES = 4096;
const HEARTBEAT_EVERY_MS = 1000;
/**
 * Bytes the worker's uploads may hold in memory at once (small files whole, large ones their parts in flight). At
 * the clinic's sizes (image renditions of several MB) this, not the number of files in flight, bounds the memory;
 * 32 MiB is more than a second of FileMaker Cloud's bandwidth, so it does not slow a bandwidth-bound phase.
 */
const UPLOAD_BUFFER_BYTES = 32 * 1024 * 1024;
const UPLOAD_BUFFERS = new ByteBudget(UPLOAD_BUFFER_BYTES);

/** A download's share of the buffer budget: the whole file when it fits one part, else the parts in flight. */
function bufferShare(contentLength: number | undefined): number {
  if (contentLength !== undefined && contentLength <= PART_SIZE) return contentLength;
  return PART_SIZE * (QUEUE_SIZE + 1);
}

/** Errors that are about FileMaker or S3 as a whole, not about one file: they end the batch. */
function endsBatch(err: unknown): boolean {
  if (err instanceof FileMakerOverloadedError || err instanceof TransferQuotaError) return true;
  if (err instanceof FileMakerError) {
    return (
      err.code === FM_ERRORS.AUTH_FAILED ||
      err.code === FM_ERRORS.SESSION_INVALID ||
      err.code === FM_ERRORS.UNREACHABLE ||
      err.code === FM_ERRORS.TIMEOUT ||
      err.code === FM_ERRORS.TLS ||
      err.code === FM_ERRORS.FILE_UNAVAILABLE ||
      err.code === FM_ERRORS.LAYOUT_MISSING ||
      err.code === FM_ERRORS.FIELD_MISSING
    );
  }
  // Our own integrity checks fail one file; anything else (S3 down, PostgreSQL gone) is not the file's fault.
  return !(err instanceof IntegrityError);
}

/**
 * A connection that breaks during one container download is what a damaged container on the server looks like
 * too: retried as the file's own failure, and only when FileMaker then does not answer at all does it end the batch.
 */
function transportError(err: unknown): boolean {
  if (err instanceof FileMakerError) return err.code === FM_ERRORS.UNREACHABLE || err.code === FM_ERRORS.TIMEOUT;
  // A body that breaks reaches the upload as the socket's own error.
  const code = (err as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    (code.startsWith('UND_ERR_') || ['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'].includes(code))
  );
}

/** A container that failed in an earlier completed run and whose record has not changed since (same modId). */
class KnownBroken extends IntegrityError {
  constructor(modId: string) {
    super(`failed in an earlier run at record version ${modId}, unchanged since: not downloaded again`);
  }
}

/** The FileMaker modId at which each id's container last failed for good in a completed earlier run. */
async function downloadFailuresBefore(deps: ActivityDeps, input: ChunkInput, ids: readonly string[]) {
  const latest = await latestEntriesElsewhere(deps.pool, input.table, ids, input.runId);
  return new Map(
    latest
      .filter((x) => x.state === 'failed' && x.reason_code === 'DOWNLOAD_FAILED')
      .map((x) => [x.filemaker_id, x.mod]),
  );
}

function reasonOf(err: unknown): string {
  if (err instanceof KnownBroken) return err.message;
  if (err instanceof FileMakerError || err instanceof IntegrityError) return err.code;
  return err instanceof Error ? err.name : 'unknown';
}

/**
 * Counts bytes as they pass (the transfer actually spent, also when the download breaks), and keeps the activity's
 * heartbeat going while they flow: a large file takes longer than the heartbeat timeout, a stalled one does not.
 */
export class ByteCounter extends Transform {
  bytes = 0;
  private lastBeat = Date.now();
  private opened = false;
  private held: (() => void) | undefined;
  /**
   * Holds the bytes back until `open()` — until the download's transfer is reserved — and then reads up to
   * `aheadBytes` ahead of the consumer: a file that fits is received whole and its FileMaker slot freed while the
   * upload is still being opened.
   */
  constructor(
    private readonly beat: () => void,
    aheadBytes: number,
  ) {
    super({ readableHighWaterMark: aheadBytes });
  }

  open(): void {
    this.opened = true;
    const held = this.held;
    this.held = undefined;
    held?.();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const pass = () => {
      this.bytes += chunk.length;
      if (Date.now() - this.lastBeat > 5000) {
        this.lastBeat = Date.now();
        this.beat();
      }
      cb(null, chunk);
    };
    if (this.opened) pass();
    else this.held = pass;
  }
}

/** The first bytes of a stream (for sniffing) and a stream that still yields every byte. */
export async function peek(body: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let got = 0;
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  while (got < n) {
    const next = await iterator.next();
    if (next.done) break;
    chunks.push(next.value);
    got += next.value.length;
  }
  const head = Buffer.concat(chunks, got);
  const out = new PassThrough({ highWaterMark: 256 * 1024 });
  out.write(head);
  void (async () => {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        if (!out.write(next.value)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      }
      out.end();
    } catch (err) {
      out.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  })();
  out.on('close', () => body.destroy());
  return { head: head.subarray(0, n), stream: out };
}

export interface StoredFile {
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  filename: string | null;
  /** Bytes received from FileMaker for this file (0 when relinked). */
  downloaded: number;
  /** The object's ETag when its size and SHA-256 were confirmed (upload echo or HEAD); see reconcileObjects. */
  etag: string | undefined;
  relinked: boolean;
  /** How the content type was decided from FileMaker's and the bytes' (see effectiveContentType); relinked: declared. */
  typeSource: ContentTypeSource;
  field: string;
  /** The stored bytes, when a single-part upload kept them (images, for the thumbnail). */
  body?: Buffer;
  /** Gives the kept bytes' share of the upload buffer budget back; call once done with `body`. */
  release?: Release;
}

export interface FileContext {
  deps: ActivityDeps;
  input: ChunkInput;
  result: ChunkResult;
  bucket: string;
  signal: AbortSignal;
  budgetBytes: number;
  /** Reservations, rows and ledger entries, group-committed with the other files in flight. */
  writes: FileWrites;
  /** Downloads of this batch whose settlement waits for the batch's end (see settleDownload). */
  settlements: Settlement[];
  /** The batch's transfer lease, when the budget had room for one (see openLease). */
  lease?: TransferLease;
  /** Heartbeats with the ids finished so far (at most once a second; the ledger is what a retry resumes from). */
  beat: () => void;
}

function urlPath(url: unknown): string | null {
  if (typeof url !== 'string') return null;
  try {
    return new URL(url).pathname;
  } catch {
    return null;
  }
}

/** `.../{id}.{ext}` → ext */
function extOfKey(key: string): string {
  const m = /\.([A-Za-z0-9%]{1,12})$/.exec(key);
  return m?.[1] ?? 'bin';
}

/** A file's key for an extension and a revision (see documentKey, imageKey). */
export type KeyFor = (ext: string, revision: string | undefined) => string;

/**
 * Where a download of a record at version `modId` writes, and whether it replaces a file, given the object the
 * tables refer to before the run (`referenced`: the last completed run's ledger entry; a rolled-back run's objects
 * are gone and its rows restored away). None: the plain key, as every first download had. Of another record version
 * (a replaced container): the record's modId as the key's revision, so the old object stays as it is for a rollback
 * and a retried batch writes the same key again. Of this version (its object went missing): that object's own key.
 */
export function downloadTarget(
  referenced: LedgerFile | undefined,
  modId: string | undefined,
): { replaces: boolean; revision: string | undefined } {
  if (referenced === undefined) return { replaces: false, revision: undefined };
  if (referenced.sourceModId === (modId ?? null)) return { replaces: false, revision: keyRevision(referenced.s3Key) };
  return { replaces: true, revision: modId };
}

/**
 * Step 2: the object recorded for this id by an earlier run, when S3 still holds exactly it. Moves it
 * (server-side copy) when the key it should have now differs; a replaced file's key keeps its revision.
 */
export async function relink(
  fc: FileContext,
  prior: LedgerFile | undefined,
  keyFor: KeyFor,
  field: string,
): Promise<StoredFile | undefined> {
  if (!prior || prior.bytes === null || prior.sha256 === null) return undefined;
  const { s3 } = fc.deps;
  const head = await headObject(s3, fc.bucket, prior.s3Key);
  if (!head || head.size !== prior.bytes || head.sha256 !== prior.sha256) return undefined;
  const key = keyFor(extOfKey(prior.s3Key), keyRevision(prior.s3Key));
  let etag = head.etag;
  if (key !== prior.s3Key) {
    const existing = await headObject(s3, fc.bucket, key);
    if (existing && existing.size === head.size && existing.sha256 === head.sha256) etag = existing.etag;
    else {
      await copyObject(s3, fc.bucket, prior.s3Key, key);
      const copied = await headObject(s3, fc.bucket, key);
      if (!copied || copied.size !== head.size || copied.sha256 !== head.sha256) return undefined;
      etag = copied.etag;
    }
  }
  return {
    key,
    size: head.size,
    sha256: head.sha256,
    contentType: head.contentType ?? 'application/octet-stream',
    filename: parseContentDisposition(head.contentDisposition).filename ?? null,
    downloaded: 0,
    etag,
    relinked: true,
    typeSource: 'declared',
    field,
  };
}

/** Containers are read over OData unless configured otherwise or the pre-flight found `$value` unusable. */
function viaOData(fc: FileContext): boolean {
  return fc.deps.config.filemaker.containerApi === 'odata' && fc.input.containerPath !== 'dataapi';
}

/**
 * Opens one container. Over OData: one GET by the record's ROWID, right now (nothing goes stale); an answer the
 * client finds suspect (CONTAINER_SUSPECT) is read again through the Data API. Over the Data API: the find's URL
 * while fresh, else (or when it went stale) the record read again. Null when the container is empty.
 */
async function openContainer(
  fc: FileContext,
  record: FileMakerRecord,
  readAtMs: number,
  field: string,
  readAheadBytes: number | undefined,
): Promise<ContainerDownload | null> {
  const { fm } = fc.deps;
  const opts = { signal: fc.signal, readAheadBytes };
  const layout = SOURCE_TABLES[fc.input.table].layout;
  if (viaOData(fc)) {
    let dl: ContainerDownload;
    try {
      dl = await fm.downloadODataContainer(fc.input.table, { rowId: record.recordId }, field, opts);
    } catch (err) {
      if (!(err instanceof FileMakerError && err.code === FM_ERRORS.CONTAINER_SUSPECT)) throw err;
      // A 2xx that cannot be the container (the filename as text, nothing, base64): its bytes are never stored;
      // the Data API serves the container itself.
      addFinding(fc.result, FM_ERRORS.CONTAINER_SUSPECT);
      fc.deps.logger.warn(
        { table: fc.input.table, field },
        '$value answer is not the container; read through the Data API',
      );
      return fm.downloadRecordContainer(layout, record.recordId, field, opts);
    }
    if (dl.status !== 204) return dl;
    dl.body.resume();
    return null;
  }
  const url = record.fieldData[field];
  if (typeof url === 'string' && url !== '' && Date.now() - readAtMs < URL_FRESH_MS) {
    try {
      return await fm.downloadContainer(url, opts);
    } catch (err) {
      if (!(err instanceof FileMakerError && err.code === FM_ERRORS.CONTAINER_URL_STALE)) throw err;
    }
  }
  return fm.downloadRecordContainer(layout, record.recordId, field, opts);
}

/**
 * Records what a download really received. When that is no more than it reserved (the whole announced file, or a
 * download that broke off), the reservation already counts at least the bytes spent: its settlement waits for the
 * end of the batch and goes in one statement with the others (a crash before then leaves the reservation counting
 * what it reserved). A download that received more than it reserved (no size announced) is settled at once, so the
 * year's total never counts less than was spent.
 */
export async function settleDownload(fc: FileContext, settlement: Settlement): Promise<void> {
  if (settlement.bytes <= settlement.reservation.bytes) fc.settlements.push(settlement);
  else await fc.writes.settle([settlement]);
}

/** The batch's waiting settlements, written; after a batch that failed, a failure here is only logged. */
export async function settleBatch(fc: FileContext, batchFailed: boolean): Promise<void> {
  if (fc.lease) {
    fc.settlements.push(...fc.lease.settlements());
    fc.lease = undefined;
  }
  try {
    await fc.writes.settle(fc.settlements.splice(0));
  } catch (err) {
    if (!batchFailed) throw err;
    fc.deps.logger.warn(
      { table: fc.input.table, offset: fc.input.offset, reason: reasonOf(err) },
      'transfer settlements not written; their reservations keep counting what they reserved',
    );
  }
}

/**
 * The batch's transfer lease (see TransferLease): its files in flight draw their read-ahead from it before their
 * request, then their announced size, so a file that fits frees its FileMaker slot as it arrives and a file the
 * lease holds costs no statement of its own. Without room in the budget there is none, and each download reserves
 * its own size before it reads more than the connection's buffers.
 */
export async function openLease(fc: FileContext): Promise<void> {
  fc.lease = await TransferLease.open(fc.writes, quotaRequest(fc, `${LEASE_ID}${fc.input.offset}`, ''), LEASE_BYTES);
}

/** A transfer reservation of this batch's run and table, for `filemakerId` and `field`, against the budget. */
function quotaRequest(fc: FileContext, filemakerId: string, field: string): QuotaRequest {
  return {
    runId: fc.input.runId,
    table: fc.input.table,
    filemakerId,
    field,
    budgetBytes: fc.budgetBytes,
    usedOutsideBytes: fc.deps.config.filemaker.transferUsedBytes,
  };
}

/**
 * Step 3 for one container field: download (bounded attempts) and stream to `keyFor(ext)`. Undefined when the
 * container is empty now or holds 0 bytes; throws the last error when every attempt broke.
 */
async function download(
  fc: FileContext,
  filemakerId: string,
  record: FileMakerRecord,
  readAtMs: number,
  field: string,
  keyFor: (ext: string) => string,
): Promise<StoredFile | undefined> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= DOWNLOAD_ATTEMPTS; attempt++) {
    if (attempt > 1) {
      fc.result.retries++;
      await delay(250 * 2 ** (attempt - 2), undefined, { signal: fc.signal });
    }
    // Drawn from the batch's lease for this attempt: first the read-ahead, then (the size announced) the file.
    const lease = fc.lease;
    let drawn = lease && (await lease.take(READ_AHEAD_COVER)) ? READ_AHEAD_COVER : 0;
    let dl: ContainerDownload | null;
    try {
      dl = await openContainer(fc, record, attempt === 1 ? readAtMs : 0, field, drawn ? READ_AHEAD_BYTES : undefined);
    } catch (err) {
      lease?.give(drawn);
      if (endsBatch(err) && !transportError(err)) throw err;
      lastError = err;
      continue;
    }
    if (dl === null) {
      lease?.give(drawn);
      return undefined;
    }
    // Wired at once: a connection that breaks while the budget is checked must reach the upload as an error
    // (pipeline also reports a body that already failed), never leave it waiting for bytes that will not come.
    const counter = new ByteCounter(fc.beat, READ_AHEAD_BYTES);
    pipeline(dl.body, counter, () => undefined);
    // The file's own reservation, when the lease does not hold its announced size.
    let reservation: Reservation | undefined;
    try {
      const size = dl.contentLength;
      if (lease && drawn && size !== undefined && (size <= drawn || (await lease.take(size - drawn)))) {
        lease.give(Math.max(0, drawn - size));
        drawn = size;
      } else {
        reservation = await fc.writes.reserve({ ...quotaRequest(fc, filemakerId, field), bytes: size ?? 0 });
        // What was read ahead is the file's own now (its reservation is settled with every byte it received).
        lease?.give(drawn);
        drawn = 0;
      }
    } catch (err) {
      dl.body.destroy();
      // What the read-ahead may have received stays spent.
      lease?.give(drawn, Math.min(dl.contentLength ?? drawn, drawn));
      throw err;
    }
    counter.open();
    let releaseBuffer: Release | undefined;
    let handedOver = false;
    try {
      releaseBuffer = await UPLOAD_BUFFERS.acquire(bufferShare(dl.contentLength), fc.signal);
      const { head, stream } = await peek(counter, SNIFF_BYTES);
      if (head.length === 0 && !dl.contentLength) {
        // The body ended before its first byte and no size said otherwise: a zero-byte file counts as an empty
        // container (the waterfall goes on to the next one) and leaves no object behind. Only now is that known.
        stream.destroy();
        addFinding(fc.result, 'ZERO_BYTE_CONTAINER');
        fc.deps.logger.warn({ table: fc.input.table, filemakerId, field }, 'container holds 0 bytes: counted as empty');
        return undefined;
      }
      const contentType = effectiveContentType(dl.contentType, head);
      const ext = extensionFor(contentType, dl.filename, urlPath(record.fieldData[field]));
      const key = keyFor(ext);
      const up = await uploadStream(fc.deps.s3, {
        bucket: fc.bucket,
        key,
        body: stream,
        contentType,
        filename: dl.filename,
        expectedSize: dl.contentLength,
        logger: fc.deps.logger,
        // Relink found no identical object for this id: nothing to look for before writing.
        skipIfIdentical: false,
        // An image's bytes (when they fit one part) go on to its thumbnail without a GET.
        keepBody: fc.input.table === 'API_Images',
      });
      fc.result.bytesDownloaded += counter.bytes;
      // The kept bytes stay counted against the buffer budget until the caller is done with them.
      handedOver = up.body !== undefined;
      return {
        key,
        size: up.size,
        sha256: up.sha256,
        etag: up.etag,
        contentType,
        filename: dl.filename ?? null,
        downloaded: counter.bytes,
        relinked: false,
        typeSource: contentTypeSource(dl.contentType, contentType),
        field,
        body: up.body,
        release: handedOver ? releaseBuffer : undefined,
      };
    } catch (err) {
      dl.body.destroy();
      fc.result.bytesDownloaded += dl.received();
      if (endsBatch(err) && !transportError(err)) throw err;
      lastError = err;
      fc.deps.logger.warn(
        { table: fc.input.table, filemakerId, field, attempt, reason: reasonOf(err) },
        'container download broke',
      );
    } finally {
      if (!handedOver) releaseBuffer?.();
      // Every byte FileMaker sent counts, also the read-ahead the upload never took when it broke off.
      if (reservation) await settleDownload(fc, { reservation, bytes: dl.received() });
      else lease?.give(drawn, dl.received());
    }
  }
  if (transportError(lastError)) {
    // Every attempt lost its connection: is FileMaker itself gone (end the batch) or only this container broken?
    try {
      await fc.deps.fm.productInfo();
    } catch {
      throw lastError;
    }
    throw new FileMakerError(
      `container ${field} of ${filemakerId}: the connection broke on every attempt while FileMaker answers`,
      undefined,
      undefined,
      { code: FM_ERRORS.CONTAINER_TRUNCATED },
    );
  }
  throw lastError;
}

export function addFinding(result: ChunkResult, code: string) {
  result.byReason[code] = (result.byReason[code] ?? 0) + 1;
}

/** A stored file's counts: relinked, or downloaded again over an object of an earlier record version. */
function countStored(fc: FileContext, stored: StoredFile, replaces: boolean): void {
  if (stored.relinked) fc.result.relinked++;
  else if (replaces) fc.result.replaced++;
  if (stored.typeSource === 'sniffed') addFinding(fc.result, 'CONTENT_TYPE_SNIFFED');
  if (stored.typeSource === 'corrected') addFinding(fc.result, 'CONTENT_TYPE_CORRECTED');
}

/** FileMaker's date format for NexusExportDate (MM/DD/YYYY, the clinic's files use US dates). */
function fileMakerDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getMonth() + 1)}/${p(d.getDate())}/${d.getFullYear()}`;
}

/**
 * Writes NexusExportDate back. The PATCH names the record version the batch's find read: when FileMaker accepts it,
 * the record changed by this write only, and the ledger takes the new modId as the version its object corresponds
 * to (the next run relinks it). When the record changed in between (306), the date is written all the same and the
 * ledger keeps the older version: the next run reads the container again.
 */
async function writeBack(fc: FileContext, record: FileMakerRecord, filemakerId: string): Promise<void> {
  if (!fc.input.writeBack) return;
  const layout = SOURCE_TABLES[fc.input.table].layout;
  const fields = { NexusExportDate: fileMakerDate(new Date()) };
  let modId: string | undefined;
  try {
    try {
      modId = await fc.deps.fm.patchRecord(layout, record.recordId, fields, record.modId);
    } catch (err) {
      if (!(err instanceof FileMakerError && err.code === FM_ERRORS.MODID_MISMATCH)) throw err;
      await fc.deps.fm.patchRecord(layout, record.recordId, fields);
    }
  } catch (err) {
    if (err instanceof FileMakerOverloadedError || err instanceof TransferQuotaError) throw err;
    addFinding(fc.result, 'WRITE_BACK_FAILED');
    fc.deps.logger.warn({ table: fc.input.table, filemakerId, reason: reasonOf(err) }, 'write-back failed');
  }
  if (modId !== undefined) {
    await fc.writes.writtenBack(fc.input.runId, fc.input.table, { filemakerId, from: record.modId, to: modId });
  }
}

/** One record of a batch and what is known about it before its file is touched. */
interface FileJob {
  id: string;
  record: FileMakerRecord;
  /** When the batch's find read the record (its container URLs are that old). */
  readAtMs: number;
  ctx: MapContext;
  /** The object the ledger recorded for this id in an earlier run at this same record version (relink candidate). */
  prior: LedgerFile | undefined;
  /** The tables refer to an object of another record version: a download replaces it (counted). */
  replaces: boolean;
  /** The revision a download's key carries (see downloadTarget). */
  revision: string | undefined;
  /** Set when this container failed for good in a completed run at this same record version. */
  brokenAtModId?: string;
}

async function importDocument(fc: FileContext, job: FileJob): Promise<LedgerEntry> {
  const { id, record, readAtMs, ctx, prior, brokenAtModId } = job;
  const outcome = mapDocument(record as unknown as FmRecord, ctx);
  const sourceModId = record.modId;
  if (outcome.kind === 'error') {
    return { filemakerId: id, state: 'failed', reasonCode: outcome.reason, message: outcome.message, sourceModId };
  }
  for (const f of outcome.findings ?? []) addFinding(fc.result, f.code);
  // The row and its ledger entry land in one statement; a refused row comes back failed, its entry unwritten.
  const upsert = async (row: Record<string, unknown>, entry: LedgerEntry): Promise<LedgerEntry> => {
    const recorded: LedgerEntry = { ...entry, targetTable: 'documents', targetId: row.id as string };
    const o = await fc.writes.upsert('documents', row, fc.input.runId, {
      sourceTable: fc.input.table,
      entry: recorded,
    });
    if (o.status === 'failed') return { filemakerId: id, state: 'failed', reasonCode: o.reason, message: o.message };
    return { ...recorded, recorded: true };
  };
  if (outcome.kind === 'skip') {
    const entry: LedgerEntry = { filemakerId: id, state: 'skipped', reasonCode: outcome.reason, sourceModId };
    // The document's metadata is kept (import_status 'skipped') so the clinic still sees it.
    return outcome.row ? upsert(outcome.row as unknown as Record<string, unknown>, entry) : entry;
  }
  const base = outcome.row;
  const keyFor: KeyFor = (ext, revision) => documentKey(base.object_id, base.category, id, ext, revision);
  let stored: StoredFile | undefined;
  try {
    stored = await relink(fc, prior, keyFor, 'Doc');
    if (!stored && brokenAtModId !== undefined) throw new KnownBroken(brokenAtModId);
    stored ??= await download(fc, id, record, readAtMs, 'Doc', (ext) => keyFor(ext, job.revision));
  } catch (err) {
    if (endsBatch(err)) throw err;
    const row = { ...base, import_status: 'failed', import_error: 'DOWNLOAD_FAILED' };
    return upsert(row, {
      filemakerId: id,
      state: 'failed',
      reasonCode: 'DOWNLOAD_FAILED',
      message: `${fc.input.table} ${id}: ${reasonOf(err)}`,
      sourceModId,
    });
  }
  if (!stored) {
    const row = { ...base, import_status: 'skipped', import_error: 'EMPTY_CONTAINER' };
    return upsert(row, { filemakerId: id, state: 'skipped', reasonCode: 'EMPTY_CONTAINER', sourceModId });
  }
  countStored(fc, stored, job.replaces);
  const row = {
    ...base,
    s3_bucket: fc.bucket,
    s3_key: stored.key,
    original_name: stored.filename,
    mime_type: stored.contentType,
    file_size: stored.size,
    sha256: stored.sha256,
  };
  const entry = await upsert(row, {
    filemakerId: id,
    state: outcome.state,
    reasonCode: outcome.state === 'unlinked' ? outcome.reason : undefined,
    s3Key: stored.key,
    bytes: stored.size,
    sha256: stored.sha256,
    objectEtag: stored.etag,
    sourceModId,
  });
  return entry;
}

async function importImage(fc: FileContext, job: FileJob): Promise<LedgerEntry> {
  const { id, record, readAtMs, ctx, prior, brokenAtModId } = job;
  const outcome = mapImage(record as unknown as FmRecord, ctx);
  const sourceModId = record.modId;
  if (outcome.kind !== 'row') {
    return {
      filemakerId: id,
      state: outcome.kind === 'skip' ? 'skipped' : 'failed',
      reasonCode: outcome.reason,
      message: outcome.message,
      sourceModId,
    };
  }
  for (const f of outcome.findings) addFinding(fc.result, f.code);
  const { batch, candidates } = outcome.row;
  const keyFor: KeyFor = (ext, revision) => imageKey(batch.patient_id, batch.batch_date, id, ext, revision);

  // The waterfall: the first container that downloads wins; a broken one falls back to the next.
  let stored: StoredFile | undefined;
  let lastError: unknown;
  let fellBack = false;
  stored = await relink(fc, prior, keyFor, '');
  if (!stored && brokenAtModId !== undefined) lastError = new KnownBroken(brokenAtModId);
  for (const c of stored || lastError ? [] : candidates) {
    try {
      stored = await download(fc, id, record, readAtMs, c.field, (ext) => keyFor(ext, job.revision));
    } catch (err) {
      if (endsBatch(err)) throw err;
      lastError = err;
      fellBack = true;
      continue;
    }
    if (stored) break;
  }
  if (!stored) {
    if (lastError === undefined) {
      // Every container was emptied between the find and the download, or holds 0 bytes.
      return { filemakerId: id, state: 'skipped', reasonCode: 'EMPTY_CONTAINER', sourceModId };
    }
    return {
      filemakerId: id,
      state: 'failed',
      reasonCode: 'DOWNLOAD_FAILED',
      message: `${fc.input.table} ${id}: every image container broke (${reasonOf(lastError)})`,
      sourceModId,
    };
  }
  if (fellBack) addFinding(fc.result, 'IMAGE_FALLBACK');
  try {
    return await finishImage(fc, id, outcome.row, stored, {
      state: outcome.state,
      reason: outcome.state === 'unlinked' ? outcome.reason : undefined,
      sourceModId,
      replaces: job.replaces,
    });
  } finally {
    stored.release?.();
  }
}

/** Thumbnail, batch and image rows for an image whose file is stored; the ledger entry to write. */
export async function finishImage(
  fc: FileContext,
  id: string,
  mapped: MappedImage,
  stored: StoredFile,
  outcome: { state: 'imported' | 'unlinked'; reason?: string; sourceModId?: string; replaces?: boolean },
): Promise<LedgerEntry> {
  const { image, batch } = mapped;
  const sourceModId = outcome.sourceModId;
  countStored(fc, stored, outcome.replaces ?? false);

  const thumb: ThumbnailResult = await ensureThumbnail(
    fc.deps.s3,
    fc.bucket,
    stored.key,
    thumbnailKey(batch.patient_id, batch.batch_date, id, keyRevision(stored.key)),
    stored.contentType,
    stored.size,
    { source: stored.body, fresh: !stored.relinked },
  );
  if (thumb.status === 'unsupported_format') addFinding(fc.result, 'THUMBNAIL_UNSUPPORTED');
  if (thumb.status === 'failed') addFinding(fc.result, 'THUMBNAIL_FAILED');

  const bo = await fc.writes.upsert('image_batches', batch as unknown as Record<string, unknown>, fc.input.runId);
  if (bo.status === 'failed') return { filemakerId: id, state: 'failed', reasonCode: bo.reason, message: bo.message };
  const sourceField = stored.relinked ? await recordedField(fc, id) : stored.field;
  const row = {
    ...image,
    s3_key: stored.key,
    thumbnail_key: thumb.key,
    mime_type: stored.contentType,
    file_size: stored.size,
    sha256: stored.sha256,
    width: thumb.width,
    height: thumb.height,
    source_field: sourceField,
    thumbnail_status: thumb.status,
  };
  const entry: LedgerEntry = {
    filemakerId: id,
    state: outcome.state,
    reasonCode: outcome.reason,
    targetTable: 'images',
    targetId: image.id,
    message: sourceField === null ? undefined : `${FIELD_NOTE}${sourceField}`,
    s3Key: stored.key,
    bytes: stored.size,
    sha256: stored.sha256,
    objectEtag: stored.etag,
    sourceModId,
  };
  // The row and its ledger entry land in one statement; a refused row comes back failed, its entry unwritten.
  const o = await fc.writes.upsert('images', row, fc.input.runId, { sourceTable: fc.input.table, entry });
  if (o.status === 'failed') return { filemakerId: id, state: 'failed', reasonCode: o.reason, message: o.message };
  return { ...entry, recorded: true };
}

/** An imported image's ledger message names the container it came from, so a relink can keep `source_field`. */
const FIELD_NOTE = 'source field: ';

/** The container field an earlier run imported this image from (the delete phase removed the row). */
async function recordedField(fc: FileContext, id: string): Promise<string | null> {
  const m = await latestImageMessage(fc.deps.pool, id, FIELD_NOTE);
  return m ? m.slice(FIELD_NOTE.length) : null;
}

interface Resume {
  done: string[];
}

/** A batch under way: its counts, the ids still to do, and the context its files share. */
export interface Batch {
  fc: FileContext;
  /** The ids of the records still to do; each names one record of the manifest. */
  todo: string[];
  /** Id → record id, of the records still to do. */
  recordIdOf: Map<string, string>;
  /** Record ids whose entry is terminal. */
  done: Set<string>;
}

/**
 * Step 1 for a batch: its manifest records, those an earlier attempt (or an earlier batch over the same records)
 * already finished — counted from the ledger, not touched again — the ledger entries of records whose id cannot key
 * a row, and the context for the rest. Undefined when nothing is left to do (`result` then holds the whole batch's
 * counts).
 */
export async function beginBatch(
  deps: ActivityDeps,
  input: ChunkInput,
  result: ChunkResult,
): Promise<Batch | undefined> {
  if (!FILE_TABLES.includes(input.table)) throw new Error(`${input.table} is not a files table`);
  const activity = Context.current();
  const slice = await manifestSlice(deps.pool, input.runId, input.table, input.offset, input.limit);
  if (slice.length === 0) return undefined;
  const resumed = activity.info.heartbeatDetails as Resume | undefined;
  const finished = await terminalEntries(
    deps.pool,
    input.runId,
    input.table,
    slice.map((e) => e.recordId),
  );
  const done = new Set<string>();
  countLedger(
    finished.map((r) => {
      done.add(r.record_id);
      return { filemakerId: r.filemaker_id, state: r.state, reasonCode: r.reason_code ?? undefined };
    }),
    result,
  );
  if (resumed?.done?.length) {
    deps.logger.info(
      { table: input.table, offset: input.offset, resumed: resumed.done.length, terminal: done.size },
      'batch resumed after a retry',
    );
  }
  const { failed, keyed } = splitIdIssues(input.table, slice);
  const unkeyed = failed.filter((e) => !done.has(e.recordId!));
  await recordLedger(deps.pool, input.runId, input.table, unkeyed, result);
  for (const e of unkeyed) done.add(e.recordId!);
  const rest = keyed.filter((k) => !done.has(k.recordId));
  result.processed = slice.length;
  if (rest.length === 0) return undefined;
  const todo = rest.map((k) => k.id);
  const recordIdOf = new Map(rest.map((k) => [k.id, k.recordId]));
  let lastBeat = 0;
  const fc: FileContext = {
    deps,
    input,
    result,
    bucket: deps.config.s3.bucket,
    signal: activity.cancellationSignal,
    budgetBytes: input.transferBudgetBytes ?? deps.config.filemaker.transferBudgetBytes,
    writes: fileWritesFor(deps.pool),
    settlements: [],
    beat: () => {
      // At most one a second: the server sees one every 24 s at most anyway (the SDK throttles to 80 % of the 30 s
      // timeout), and what a retry resumes from is the ledger; per file, encoding the details for the SDK was a
      // few percent of the worker's CPU.
      const now = Date.now();
      if (now - lastBeat < HEARTBEAT_EVERY_MS) return;
      lastBeat = now;
      activity.heartbeat({ done: [...done] } satisfies Resume);
    },
  };
  return { fc, todo, recordIdOf, done };
}

/** Writes a file's ledger entry and heartbeats: from here on a retry of the batch skips it. */
export async function settleFile(batch: Batch, entry: LedgerEntry): Promise<void> {
  const { fc } = batch;
  if (entry.recorded) countLedger([entry], fc.result);
  else await fc.writes.ledger(fc.input.runId, fc.input.table, entry, fc.result);
  batch.done.add(entry.recordId ?? batch.recordIdOf.get(entry.filemakerId ?? '') ?? '');
  fc.beat();
}

export async function importFileBatch(deps: ActivityDeps, input: ChunkInput): Promise<ChunkResult> {
  const result = emptyChunkResult();
  const batch = await beginBatch(deps, input, result);
  if (!batch) return result;
  const { fc, todo } = batch;
  const source = SOURCE_TABLES[input.table];
  const priors = await ledgerLookup(deps.pool, input.table, todo);
  const referenced = await ledgerLookup(deps.pool, input.table, todo, { completedOnly: true });
  const failedBefore = await downloadFailuresBefore(deps, input, todo);
  const readAtMs = Date.now();
  const wanted = todo.map((id) => ({ recordId: batch.recordIdOf.get(id)!, id }));
  const records = await deps.fm.recordsById(source.layout, source.idField, wanted, { signal: fc.signal });
  // Each record under the id the manifest knows it by; one whose id was edited since is set aside (see below).
  const byId = new Map<string, FileMakerRecord>();
  const idChanged = new Set<string>();
  for (const { recordId, id } of wanted) {
    const r = records.get(recordId);
    if (!r) continue;
    if (normalizeFileMakerId(r.fieldData[source.idField])?.value === id) byId.set(id, r);
    else idChanged.add(id);
  }
  const patientRefs = input.table === 'API_Docs' ? documentPatientRefs : imagePatientRefs;
  const ctx = await loadMapContext(deps, input.runId, input.table, {
    patients: [...byId.values()].flatMap((r) => patientRefs(r as unknown as FmRecord)),
  });

  const importOne = async (id: string) => {
    const record = byId.get(id);
    let entry: LedgerEntry;
    const recordId = batch.recordIdOf.get(id)!;
    if (!record) {
      entry = {
        recordId,
        filemakerId: id,
        state: 'skipped',
        reasonCode: idChanged.has(id) ? 'SOURCE_ID_CHANGED' : 'SOURCE_DELETED',
        message: `${input.table} record ${recordId}`,
      };
    } else {
      // A container that broke on every attempt in a completed run, unchanged since, would only break again:
      // it stays failed with its reason instead of spending the quota once more.
      const broken = failedBefore.get(id) === record.modId ? failedBefore.get(id) : undefined;
      // An object stored at another version of the record may hold a container since replaced in FileMaker.
      const stored = priors.get(id);
      const job: FileJob = {
        id,
        record,
        readAtMs,
        ctx,
        prior: stored?.sourceModId === record.modId ? stored : undefined,
        ...downloadTarget(referenced.get(id), record.modId),
        brokenAtModId: broken,
      };
      entry = input.table === 'API_Docs' ? await importDocument(fc, job) : await importImage(fc, job);
    }
    await settleFile(batch, entry);
    if (record && (entry.state === 'imported' || entry.state === 'unlinked')) await writeBack(fc, record, id);
  };

  // A few files at a time, so FileMaker is not idle while a file is uploaded, thumbnailed and recorded (the
  // worker's FileMaker semaphore still caps the requests). The first error ends the batch once the files in
  // flight are settled: what is done stays done.
  let failed = true;
  try {
    await openLease(fc);
    await inParallel(todo, FILES_IN_FLIGHT, importOne);
    failed = false;
  } finally {
    await settleBatch(fc, failed);
  }
  return result;
}

/** Whether a record has a container to download (from the find alone); used by the dry run. */
export function hasContainer(table: SourceTableName, record: FmRecord): boolean {
  if (table === 'API_Docs') return documentContainerUrl(record) !== null;
  return imageCandidates(record).length > 0;
}
