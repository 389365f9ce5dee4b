/**
 * Container downloads: a Data API container URL with FileMaker's 302 + cookie handshake (or a plain 200 from hosts
 * that skip it), and the answers of OData's `$value`, which are accepted only when they can be the container. Bodies
 * stream, never buffered: bytes are counted as they arrive, a body shorter than its Content-Length fails the stream,
 * and the concurrency slot is held until the last byte.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { type Readable, Transform, pipeline } from 'node:stream';
import type { Dispatcher } from 'undici';
import { FileMakerError } from '../errors';
import { parseContentDisposition } from './content-disposition';
import type { Release } from './semaphore';
import { FM_ERRORS, errorForStatus, suspectContainerAnswer, type FileMakerRecord } from './responses';
import { errCode, header, networkError, type Transport } from './transport';

export interface ContainerDownload {
  /**
   * The bytes as a stream. Consume or destroy it: the concurrency slot is held until the last byte has been received
   * (see `readAheadBytes`) or the stream errors.
   */
  readonly body: Readable;
  /**
   * Bytes of the body read off the connection so far, including those not yet read by the caller: what FileMaker
   * has sent, and what a transfer quota must count when the caller gives up part way.
   */
  readonly received: () => number;
  readonly contentType: string | undefined;
  readonly contentLength: number | undefined;
  /** From Content-Disposition (`filename*` preferred); the container URL itself never carries the name. */
  readonly filename: string | undefined;
  readonly status: number;
}

export interface RecordContainerDownload extends ContainerDownload {
  /** The record as read right before the download (its modId is what a later write-back should send). */
  readonly record: FileMakerRecord;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /**
   * Bytes read off the connection as they arrive, before the caller reads them (default: Node's stream buffer,
   * 16 KiB). A container that fits is received whole and its concurrency slot freed at once, however long the caller
   * takes to start reading; the caller must be ready to hold (and, for a transfer quota, to count) that much.
   */
  readAheadBytes?: number;
}

type GetRecord = (layout: string, recordId: string, opts: { signal?: AbortSignal }) => Promise<FileMakerRecord>;

export class Containers {
  constructor(
    private readonly t: Transport,
    private readonly getRecord: GetRecord,
  ) {}

  /**
   * A 2xx-or-error answer to a `$value` request, whose slot the caller holds: the download when the answer can be the
   * container (the slot then goes with the stream), else the typed error, with the slot still the caller's to free.
   */
  async acceptValue(
    res: Dispatcher.ResponseData,
    release: Release,
    what: string,
    readAheadBytes: number | undefined,
  ): Promise<ContainerDownload> {
    if (res.statusCode >= 200 && res.statusCode <= 299 && !isErrorPage(res.headers)) {
      const why = await this.suspectValue(res, what);
      if (why === undefined) return this.stream(res, release, what, readAheadBytes);
      await this.t.drain(res.body);
      this.t.c.suspectContainers++;
      this.t.log.warn({ what, status: res.statusCode }, 'OData $value answer cannot be the container');
      // Reading it again gives the same answer: the caller reads the file another way (the Data API).
      throw new FileMakerError(`FileMaker ${what}: HTTP ${res.statusCode}, ${why}`, undefined, res.statusCode, {
        code: FM_ERRORS.CONTAINER_SUSPECT,
        retryable: false,
      });
    }
    const body = await this.t.readCapped(res.body);
    if (res.statusCode >= 200 && res.statusCode <= 299) {
      throw this.t.fail(errorForStatus(res.statusCode, what, 'an HTML page instead of container bytes'), what);
    }
    throw this.t.errorFrom({ status: res.statusCode, headers: res.headers, body }, what);
  }

  async downloadContainer(url: string, opts: DownloadOptions = {}): Promise<ContainerDownload> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new FileMakerError('FileMaker container: malformed URL', undefined, undefined, {
        code: FM_ERRORS.BAD_REQUEST,
      });
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') {
      throw new FileMakerError(`FileMaker container: unsupported scheme ${target.protocol}`, undefined, undefined, {
        code: FM_ERRORS.BAD_REQUEST,
      });
    }
    // Only the host goes into logs and messages: the URL path is a short-lived capability.
    const what = `container download from ${target.host}`;
    for (let attempt = 0; ; attempt++) {
      const release = await this.t.sem.acquire(opts.signal);
      let handedOver = false;
      try {
        // The handshake is not redirect-following: the 302 carries the session cookie that only the next GET may
        // send, and each download gets its own cookie (a shared jar mixes sessions across parallel downloads).
        let res = await this.t.open('container', what, target.toString(), { accept: '*/*' }, opts.signal);
        if (res.statusCode >= 300 && res.statusCode <= 399) {
          const location = header(res.headers, 'location');
          const cookie = sessionCookie(res.headers['set-cookie']);
          await this.t.drain(res.body);
          if (location === undefined)
            throw this.t.fail(errorForStatus(res.statusCode, what, 'redirect without Location'), what);
          const next = new URL(location, target);
          const headers: Record<string, string> = { accept: '*/*' };
          if (cookie !== undefined) headers['cookie'] = cookie;
          res = await this.t.open('container', what, next.toString(), headers, opts.signal);
          if (res.statusCode >= 300 && res.statusCode <= 399) {
            await this.t.drain(res.body);
            throw this.t.fail(errorForStatus(res.statusCode, what, 'a second redirect in the handshake'), what);
          }
        }
        if (res.statusCode >= 200 && res.statusCode <= 299 && !isErrorPage(res.headers)) {
          handedOver = true;
          return this.stream(res, release, what, opts.readAheadBytes);
        }
        const errBody = await this.t.readCapped(res.body);
        if (res.statusCode >= 200 && res.statusCode <= 299) {
          throw this.t.fail(errorForStatus(res.statusCode, what, 'an HTML page instead of container bytes'), what);
        }
        const status = res.statusCode;
        const stale = status === 401 || status === 403 || status === 404 || status === 410;
        if (stale && attempt === 0 && status === 401) {
          // Bursts of parallel downloads see sporadic 401s; a fresh, cookie-isolated handshake usually succeeds.
          this.t.c.retries++;
          this.t.log.debug({ what }, 'container 401, retrying once with a fresh handshake');
          continue;
        }
        if (stale) {
          // FileMaker versions answer an expired container URL with 401 or 404; either way the record must be read
          // again for a fresh URL.
          this.t.c.staleContainerUrls++;
          throw new FileMakerError(`FileMaker ${what}: HTTP ${status}, container URL is stale`, undefined, status, {
            code: FM_ERRORS.CONTAINER_URL_STALE,
            retryable: false,
          });
        }
        throw this.t.errorFrom({ status, headers: res.headers, body: errBody }, what);
      } finally {
        if (!handedOver) release();
      }
    }
  }

  async downloadRecordContainer(
    layout: string,
    recordId: string,
    field: string,
    opts: DownloadOptions & { staleRetries?: number } = {},
  ): Promise<RecordContainerDownload | null> {
    const staleRetries = opts.staleRetries ?? 2;
    for (let attempt = 0; ; attempt++) {
      const record = await this.getRecord(layout, recordId, { signal: opts.signal });
      if (!(field in record.fieldData)) {
        throw new FileMakerError(`FileMaker layout "${layout}" has no field "${field}"`, undefined, undefined, {
          code: FM_ERRORS.FIELD_MISSING,
        });
      }
      const url = record.fieldData[field];
      if (url === '' || url === null || url === undefined) return null;
      if (typeof url !== 'string') throw this.t.fail(errorForStatus(200, `container ${field}`, 'not a URL'), layout);
      try {
        const dl = await this.downloadContainer(url, opts);
        return { ...dl, record };
      } catch (err) {
        if (!(err instanceof FileMakerError && err.code === FM_ERRORS.CONTAINER_URL_STALE) || attempt >= staleRetries) {
          throw err;
        }
        // The URL died between reading and fetching (a restart, or a long wait for a slot): read it again.
        this.t.c.retries++;
      }
    }
  }

  /**
   * Why a 2xx `$value` answer cannot be the container (see suspectContainerAnswer), or undefined. An answer without a
   * Content-Length is looked at up to its first chunk, so an empty 200 is refused before the caller gets a stream.
   */
  private async suspectValue(res: Dispatcher.ResponseData, what: string): Promise<string | undefined> {
    const contentLength = contentLengthOf(res.headers);
    const why = suspectContainerAnswer({
      status: res.statusCode,
      contentType: header(res.headers, 'content-type'),
      contentLength,
      filename: parseContentDisposition(res.headers['content-disposition']).filename,
    });
    if (why !== undefined || res.statusCode !== 200 || contentLength !== undefined) return why;
    try {
      return (await hasBytes(res.body)) ? undefined : 'an empty 200 (an empty container answers 204)';
    } catch (err) {
      throw this.t.fail(networkError(err, what), what);
    }
  }

  /** Wraps a successful container answer: counts bytes as they pass, checks Content-Length, releases the slot at the end. */
  private stream(
    res: Dispatcher.ResponseData,
    release: Release,
    what: string,
    readAheadBytes: number | undefined,
  ): ContainerDownload {
    const contentLength = contentLengthOf(res.headers);
    let received = 0;
    const counters = this.t.c;
    const counter = new Transform({
      ...(readAheadBytes !== undefined ? { readableHighWaterMark: readAheadBytes } : {}),
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        counters.containerBytes += chunk.length;
        cb(null, chunk);
      },
      flush(cb) {
        // A body that ends early without a socket error would otherwise look like a complete (smaller) file.
        if (contentLength !== undefined && received !== contentLength) {
          cb(
            new FileMakerError(
              `FileMaker ${what}: body ended after ${received} of ${contentLength} bytes`,
              undefined,
              res.statusCode,
              { code: FM_ERRORS.CONTAINER_TRUNCATED, retryable: true },
            ),
          );
        } else cb();
      },
    });
    pipeline(res.body, counter, (err) => {
      release();
      if (err) this.t.log.debug({ what, received, err: errCode(err) }, 'container stream ended with an error');
    });
    return {
      body: counter,
      received: () => received,
      contentType: header(res.headers, 'content-type'),
      contentLength,
      filename: parseContentDisposition(res.headers['content-disposition']).filename,
      status: res.statusCode,
    };
  }
}

function contentLengthOf(headers: IncomingHttpHeaders): number | undefined {
  const v = header(headers, 'content-length');
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Waits for a body's first chunk (put back for the reader) or its end: false when the body is empty. */
function hasBytes(body: Readable): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const settle = (fn: () => void) => {
      body.off('readable', onReadable).off('end', onEnd).off('error', onError);
      fn();
    };
    const onReadable = () => {
      const chunk = body.read() as Buffer | null;
      if (chunk !== null) settle(() => (body.unshift(chunk), resolve(true)));
    };
    const onEnd = () => settle(() => resolve(false));
    const onError = (err: Error) => settle(() => reject(err));
    body.on('readable', onReadable).on('end', onEnd).on('error', onError);
  });
}

/**
 * The web server in front of a stopped Data API engine answers container URLs with an HTML page and HTTP 200.
 * Storing that as the patient's document would be silent loss, so an HTML answer without a Content-Disposition
 * (which FileMaker sends with real container bytes) is treated as an error page.
 */
function isErrorPage(headers: IncomingHttpHeaders): boolean {
  const ct = (header(headers, 'content-type') ?? '').toLowerCase();
  return ct.startsWith('text/html') && header(headers, 'content-disposition') === undefined;
}

/** The `X-FMS-Session-Key` cookie of a handshake 302, as a Cookie header value (no attributes). */
export function sessionCookie(setCookie: string | string[] | undefined): string | undefined {
  const list = Array.isArray(setCookie) ? setCookie : setCookie !== undefined ? [setCookie] : [];
  const pairs = list.map((c) => (c.split(';')[0] ?? '').trim()).filter((p) => p.includes('='));
  const session = pairs.filter((p) => p.toLowerCase().startsWith('x-fms-session-key='));
  // Send the session key; if a server names it differently, send what it set (it is scoped to this one download).
  const chosen = session.length > 0 ? session : pairs;
  return chosen.length > 0 ? chosen.join('; ') : undefined;
}
