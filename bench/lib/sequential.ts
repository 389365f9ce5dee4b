/**
 * The naive sequential client the benchmark compares against: what the clinic's earlier scripts did, one request at
 * a time over one connection. Data API login; list the layout page by page; then for each record read it again (the
 * container URLs of the listing go stale within a minute), do the container handshake (302 + session cookie, then
 * the bytes), hold the file in memory and PUT it to S3. A 502/503 or an HTML page is waited out for a second and the
 * request sent again, as those scripts did; a broken container is given up on (an image falls back to its next
 * rendition, the fairest reading of "download the best image").
 *
 * Every record of the listing costs the same kind of work, so a sample of evenly spaced records, timed, extrapolates
 * to the whole table; the listing itself is timed in full.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Client } from 'undici';
import { IMAGE_CONTAINER_FIELDS, SOURCE_TABLES } from '../../src/domain/tables';

export interface SequentialOptions {
  fmUrl: string;
  database: string;
  username: string;
  password: string;
  s3: S3Client;
  bucket: string;
  /** Records timed per table (evenly spaced over the listing). */
  sample: number;
  log?: (line: string) => void;
}

export interface SequentialTable {
  layout: string;
  records: number;
  listMs: number;
  sampled: number;
  sampleMs: number;
  downloaded: number;
  bytes: number;
  /** Records with nothing to download (every container empty). */
  empty: number;
  /** Records whose every container failed. */
  failed: number;
  /** 502/503/HTML answers waited out, and the time spent waiting (inside sampleMs). */
  overloadWaits: number;
  overloadWaitMs: number;
  /**
   * listMs + records × (sampleMs − overloadWaitMs) ÷ sampled. The waits are left out: a few 502 bursts in a small
   * sample would swing the estimate by minutes, and leaving them out only makes the naive client look faster.
   */
  estimatedMs: number;
}

export interface SequentialResult {
  tables: SequentialTable[];
  estimatedMs: number;
  /** Files (records with a container) in the sample per second, 502 waits left out. */
  filesPerSecond: number;
}

const RETRY_WAIT_MS = 1000;
const MAX_ATTEMPTS = 60;
const PAGE = 100;

class Overloaded extends Error {}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The layouts the files phases read, with their container fields in the order a naive script would try them. */
export const FILE_LAYOUTS: { layout: string; fields: readonly string[] }[] = [
  { layout: SOURCE_TABLES.API_Docs.layout, fields: SOURCE_TABLES.API_Docs.containerFields },
  { layout: SOURCE_TABLES.API_Images.layout, fields: IMAGE_CONTAINER_FIELDS },
];

export async function runSequential(o: SequentialOptions): Promise<SequentialResult> {
  const origin = new URL(o.fmUrl).origin;
  // One connection, one request at a time: keep-alive is the only courtesy (a fresh connection per request would be
  // slower still, which would flatter the comparison).
  const http = new Client(origin, { pipelining: 1, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const base = `/fmi/data/vLatest/databases/${encodeURIComponent(o.database)}`;
  let waits = 0;
  let waitedMs = 0;
  const wait = async () => {
    waits++;
    const t = Date.now();
    await sleep(RETRY_WAIT_MS);
    waitedMs += Date.now() - t;
  };

  const call = async (
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> => {
    for (let attempt = 1; ; attempt++) {
      const res = await http.request({ method, path, headers, body });
      const buf = Buffer.from(await res.body.arrayBuffer());
      const html = String(res.headers['content-type'] ?? '').startsWith('text/html');
      const overloaded = res.statusCode === 502 || res.statusCode === 503 || (res.statusCode === 200 && html);
      if (!overloaded) return { status: res.statusCode, headers: res.headers, body: buf };
      if (attempt >= MAX_ATTEMPTS) throw new Overloaded(`${method} ${path.split('?')[0]}: still overloaded`);
      await wait();
    }
  };

  const login = await call(
    'POST',
    `${base}/sessions`,
    {
      authorization: `Basic ${Buffer.from(`${o.username}:${o.password}`).toString('base64')}`,
      'content-type': 'application/json',
    },
    '{}',
  );
  const token = login.headers['x-fm-data-access-token'];
  if (login.status !== 200 || typeof token !== 'string') throw new Error(`login failed: HTTP ${login.status}`);
  const bearer = { authorization: `Bearer ${token}` };

  /** The container's bytes via the handshake; null when it cannot be had (broken, stale, gone). */
  const download = async (url: string): Promise<Buffer | null> => {
    const u = new URL(url);
    if (u.origin !== origin) throw new Error('container on another host');
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        const first = await http.request({ method: 'GET', path: u.pathname + u.search });
        await first.body.dump();
        if (first.statusCode === 502 || first.statusCode === 503) {
          await wait();
          continue;
        }
        if (first.statusCode !== 302) return null;
        const cookie = String(first.headers['set-cookie'] ?? '').split(';')[0] ?? '';
        const next = new URL(String(first.headers.location), u);
        const second = await http.request({ method: 'GET', path: next.pathname + next.search, headers: { cookie } });
        if (second.statusCode === 502 || second.statusCode === 503) {
          await second.body.dump();
          await wait();
          continue;
        }
        if (second.statusCode !== 200) {
          await second.body.dump();
          return null;
        }
        const bytes = Buffer.from(await second.body.arrayBuffer());
        const expected = Number(second.headers['content-length'] ?? bytes.length);
        return bytes.length === expected ? bytes : null;
      } catch {
        // A body cut off mid-stream (a damaged file on the server): the script moves on.
        return null;
      }
    }
    return null;
  };

  const tables: SequentialTable[] = [];
  try {
    for (const { layout, fields } of FILE_LAYOUTS) {
      const t0 = Date.now();
      const ids: string[] = [];
      for (let offset = 1; ; offset += PAGE) {
        const r = await call(
          'GET',
          `${base}/layouts/${encodeURIComponent(layout)}/records?_offset=${offset}&_limit=${PAGE}`,
          bearer,
        );
        if (r.status === 500 && ids.length > 0) break; // 101: past the last record
        if (r.status !== 200) throw new Error(`${layout}: listing failed with HTTP ${r.status}`);
        const page = JSON.parse(r.body.toString('utf8')).response.data as { recordId: string }[];
        for (const d of page) ids.push(d.recordId);
        if (page.length < PAGE) break;
      }
      const listMs = Date.now() - t0;
      const step = Math.max(1, ids.length / Math.min(o.sample, ids.length));
      const sample = Array.from({ length: Math.min(o.sample, ids.length) }, (_, i) => ids[Math.floor(i * step)]!);
      const row: SequentialTable = {
        layout,
        records: ids.length,
        listMs,
        sampled: sample.length,
        sampleMs: 0,
        downloaded: 0,
        bytes: 0,
        empty: 0,
        failed: 0,
        overloadWaits: 0,
        overloadWaitMs: 0,
        estimatedMs: 0,
      };
      const waitsBefore = waits;
      const waitedBefore = waitedMs;
      const s0 = Date.now();
      for (const recordId of sample) {
        const r = await call('GET', `${base}/layouts/${encodeURIComponent(layout)}/records/${recordId}`, bearer);
        if (r.status !== 200) {
          row.failed++;
          continue;
        }
        const fieldData = JSON.parse(r.body.toString('utf8')).response.data[0].fieldData as Record<string, unknown>;
        const urls = fields.map((f) => fieldData[f]).filter((u): u is string => typeof u === 'string' && u !== '');
        if (urls.length === 0) {
          row.empty++;
          continue;
        }
        let stored = false;
        for (const url of urls) {
          const bytes = await download(url);
          if (!bytes) continue;
          await o.s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: `naive/${layout}/${recordId}`, Body: bytes }));
          row.downloaded++;
          row.bytes += bytes.length;
          stored = true;
          break;
        }
        if (!stored) row.failed++;
      }
      row.sampleMs = Date.now() - s0;
      row.overloadWaits = waits - waitsBefore;
      row.overloadWaitMs = waitedMs - waitedBefore;
      row.estimatedMs =
        row.sampled > 0 ? listMs + (row.records * (row.sampleMs - row.overloadWaitMs)) / row.sampled : listMs;
      o.log?.(
        `sequential ${layout}: ${row.sampled} of ${row.records} records in ${(row.sampleMs / 1000).toFixed(1)} s ` +
          `→ ${(row.estimatedMs / 60_000).toFixed(1)} min for all`,
      );
      tables.push(row);
    }
  } finally {
    await call('DELETE', `${base}/sessions/${token}`, {}).catch(() => undefined);
    await http.close();
  }
  const sampledMs = tables.reduce((s, t) => s + t.sampleMs - t.overloadWaitMs, 0);
  const files = tables.reduce((s, t) => s + t.downloaded, 0);
  return {
    tables,
    estimatedMs: tables.reduce((s, t) => s + t.estimatedMs, 0),
    filesPerSecond: sampledMs > 0 ? (files * 1000) / sampledMs : 0,
  };
}
