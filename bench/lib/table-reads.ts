/**
 * What the source must serve, at the least, for a phase to read its tables once: a reference read of each table
 * over OData at the largest page FileMaker gives (`odataPageCap`, 10,000 records), paged by key as the engine pages
 * its manifests — first the manifest (`id`, ROWID, ROWMODID), then the records with only the fields the engine maps
 * (`requiredFields`, containers left out: their bytes are the files phases' downloads, counted apart). The pages and
 * the bytes FileMaker sent for them are counted, and give the source's lower bound for the phase
 * (`neededLowerBound`). Run against the simulator before the engine starts, so nothing else shares the source.
 */
import type { FaultSettings, RunningSimulator } from '../../sim/server';
import { SOURCE_TABLES, type SourceTableName } from '../../src/domain/tables';
import { odataFieldName } from '../../src/filemaker/responses';

export interface TableRead {
  records: number;
  manifestPages: number;
  recordPages: number;
  /** Response bodies of those pages, as FileMaker sent them. */
  bytes: number;
}

type Sim = Pick<RunningSimulator, 'url' | 'database' | 'username' | 'password' | 'faults'>;

/** One table read by key, `$top` pages of the given columns; 502/503 answers (fmcloud's bursts) are asked again. */
async function readPaged(
  sim: Sim,
  table: string,
  select: string[],
): Promise<{ rows: number; pages: number; bytes: number }> {
  const cap = sim.faults.odataPageCap;
  const auth = `Basic ${Buffer.from(`${sim.username}:${sim.password}`).toString('base64')}`;
  let after: string | undefined;
  let rows = 0;
  let pages = 0;
  let bytes = 0;
  for (;;) {
    const q = new URLSearchParams({ $select: ['ROWID', ...select].join(','), $orderby: 'ROWID', $top: String(cap) });
    if (after !== undefined) q.set('$filter', `ROWID gt ${after}`);
    const url = `${sim.url}/fmi/odata/v4/${encodeURIComponent(sim.database)}/${encodeURIComponent(table)}?${q.toString()}`;
    const res = await fetch(url, { headers: { Authorization: auth, Accept: 'application/json' } });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status === 502 || res.status === 503) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    if (res.status !== 200) throw new Error(`reference read of ${table}: HTTP ${res.status}`);
    const value = (JSON.parse(body.toString('utf8')) as { value: { ROWID: number }[] }).value;
    pages++;
    bytes += body.length;
    rows += value.length;
    if (value.length < cap) return { rows, pages, bytes };
    after = String(value.at(-1)!.ROWID);
  }
}

/** Reads each table once, one after the other (the source's concurrency is the bound's business, not this read's). */
export async function readTables(
  sim: Sim,
  tables: readonly SourceTableName[],
): Promise<Map<SourceTableName, TableRead>> {
  const out = new Map<SourceTableName, TableRead>();
  for (const name of tables) {
    const t = SOURCE_TABLES[name];
    const manifest = await readPaged(sim, t.odataTable, [odataFieldName(t.idField), 'ROWMODID']);
    const fields = t.requiredFields.filter((f) => !t.containerFields.includes(f)).map(odataFieldName);
    const records = await readPaged(sim, t.odataTable, fields);
    out.set(name, {
      records: records.rows,
      manifestPages: manifest.pages,
      recordPages: records.pages,
      bytes: manifest.bytes + records.bytes,
    });
  }
  return out;
}

export interface NeededBound {
  requests: number;
  bytes: number;
  records: number;
  /** The requests' share: ⌈requests ÷ concurrency⌉ (or the longest chain of pages) × mean latency. */
  latencyMs: number;
  /** bytes ÷ the source's total bandwidth. */
  bandwidthMs: number;
  /** latencyMs + bandwidthMs. */
  boundMs: number;
}

/**
 * The source's lower bound for reading these tables once: the requests' latency, plus bytes ÷ bandwidth.
 * - Latency: the requests in rounds of as many as the source serves at once, ⌈requests ÷ concurrency⌉ × mean latency
 *   (≈ requests × mean latency ÷ concurrency, as for the files, but never less than one latency), and never less
 *   than the longest chain of pages read one after the other (a table's pages by key: each starts after the previous
 *   one's last key; its manifest and its records counted as two streams that may overlap).
 * - Bytes: everything the pages carry, through the source's total bandwidth.
 * Added rather than the larger of the two (as for the files' thousands of small requests): a table is a handful of
 * large pages, and a page's bytes cannot flow before its own latency has passed, so they hardly overlap another
 * request's wait. Unlimited settings contribute nothing.
 */
export function neededLowerBound(reads: readonly TableRead[], f: FaultSettings): NeededBound {
  const requests = reads.reduce((n, r) => n + r.manifestPages + r.recordPages, 0);
  const bytes = reads.reduce((n, r) => n + r.bytes, 0);
  const records = reads.reduce((n, r) => n + r.records, 0);
  const meanLatency = f.latencyMs + f.latencyJitterMs / 2;
  const rounds = f.maxConcurrentRequests > 0 ? Math.ceil(requests / f.maxConcurrentRequests) : 1;
  const chain = Math.max(0, ...reads.map((r) => Math.max(r.manifestPages, r.recordPages)));
  const latencyMs = requests > 0 ? Math.max(rounds, chain) * meanLatency : 0;
  const bandwidthMs = f.bandwidthTotalBps > 0 ? (bytes / f.bandwidthTotalBps) * 1000 : 0;
  return { requests, bytes, records, latencyMs, bandwidthMs, boundMs: latencyMs + bandwidthMs };
}
