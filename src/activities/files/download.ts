/**
 * Step 3 of a file: the container read from FileMaker (over OData by ROWID, or the Data API), its size reserved
 * against the transfer budget (drawn from the batch's lease), and its bytes streamed to S3 with their SHA-256
 * computed on the way, within the worker's upload buffer budget (deps.files.uploadBuffers).
 */
import { PassThrough, Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { contentTypeSource, effectiveContentType, extensionFor } from '../../domain/keys';
import { SOURCE_TABLES } from '../../domain/tables';
import { FileMakerError } from '../../errors';
import { FM_ERRORS, type FileMakerRecord } from '../../filemaker';
import type { ContainerDownload } from '../../filemaker/client';
import { uploadStream } from '../../s3';
import type { Release } from '../../s3/buffer-budget';
import { PART_SIZE, QUEUE_SIZE } from '../../s3/upload';
import {
  addFinding,
  endsBatch,
  KnownBroken,
  reasonOf,
  type FileContext,
  type FileJob,
  type StoredFile,
  uploadedFile,
} from './context';
import { quotaRequest, settleDownload } from './lease';
import { relink, type KeyFor } from './relink';
import type { Reservation } from './writes';

/**
 * Bytes of a download read off the connection ahead of the reader: before its size is reserved (drawn from the
 * batch's lease, see openLease), and after that ahead of its upload (see ByteCounter).
 */
const READ_AHEAD_BYTES = 512 * 1024;
/** What a download may have read before its size is reserved: the read-ahead, the chunk crossing it, stream buffers. */
const READ_AHEAD_COVER = READ_AHEAD_BYTES + 128 * 1024;
/** Download attempts per container before it counts as broken. */
const DOWNLOAD_ATTEMPTS = 3;
/** A container URL from the batch's find is used while younger than this; older ones are read again. */
const URL_FRESH_MS = 15_000;
const SNIFF_BYTES = 4096;

/**
 * Bytes the worker's uploads may hold in memory at once (small files whole, large ones their parts in flight), the
 * size of deps.files.uploadBuffers. At the clinic's sizes (image renditions of several MB) this, not the number of
 * files in flight, bounds the memory; 32 MiB is more than a second of FileMaker Cloud's bandwidth, so it does not
 * slow a bandwidth-bound phase.
 */
export const UPLOAD_BUFFER_BYTES = 32 * 1024 * 1024;

/** A download's share of the buffer budget: the whole file when it fits one part, else the parts in flight. */
function bufferShare(contentLength: number | undefined): number {
  if (contentLength !== undefined && contentLength <= PART_SIZE) return contentLength;
  return PART_SIZE * (QUEUE_SIZE + 1);
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

function urlPath(url: unknown): string | null {
  if (typeof url !== 'string') return null;
  try {
    return new URL(url).pathname;
  } catch {
    return null;
  }
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
      releaseBuffer = await fc.deps.files.uploadBuffers.acquire(bufferShare(dl.contentLength), fc.signal);
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
      return uploadedFile(up, {
        contentType,
        filename: dl.filename ?? null,
        downloaded: counter.bytes,
        typeSource: contentTypeSource(dl.contentType, contentType),
        field,
        body: up.body,
        release: handedOver ? releaseBuffer : undefined,
      });
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

/**
 * Steps 2 and 3 for one record: the object relinked (`relinkField` is what it records as its field), else — unless
 * the container is known to be broken at this record version — the `fields` downloaded in order until one gives a
 * file (the images' waterfall; a document has one field). Errors that end the batch are thrown; the last one that
 * only failed this file is returned, with whether a container broke before another gave the file.
 */
export async function obtainFile(
  fc: FileContext,
  job: FileJob,
  keyFor: KeyFor,
  relinkField: string,
  fields: readonly string[],
): Promise<{ stored?: StoredFile; error?: unknown; fellBack: boolean }> {
  const relinked = await relink(fc, job.prior, keyFor, relinkField, job.listed);
  if (relinked) return { stored: relinked, fellBack: false };
  if (job.brokenAtModId !== undefined) return { error: new KnownBroken(job.brokenAtModId), fellBack: false };
  let error: unknown;
  let fellBack = false;
  for (const field of fields) {
    let stored: StoredFile | undefined;
    try {
      stored = await download(fc, job.id, job.record, job.readAtMs, field, (ext) => keyFor(ext, job.revision));
    } catch (err) {
      if (endsBatch(err)) throw err;
      error = err;
      fellBack = true;
      continue;
    }
    if (stored) return { stored, error: undefined, fellBack };
  }
  return { error, fellBack };
}
