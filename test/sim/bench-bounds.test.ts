import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readsContainer, RequestLog, requestTable } from '../../bench/lib/request-log';
import { neededLowerBound, readTables } from '../../bench/lib/table-reads';
import { DEFAULT_FAULTS } from '../../sim/faults';
import { withSim, basic, dataBase, login } from './helpers';

describe('the bench counts what the source serves', () => {
  test('a request names its table: Data API layout, OData entity set, streaming URL, or nothing', () => {
    const paths: Record<string, string> = {
      '/fmi/data/vLatest/databases/DB/layouts/API_Docs/_find': 'API_Docs',
      '/fmi/data/vLatest/databases/DB/layouts/API_Docs/records/12': 'API_Docs',
      '/fmi/odata/v4/DB/API_Images(ROWID=3)/image_Full/$value': 'API_Images',
      '/fmi/odata/v4/DB/API_Notes': 'API_Notes',
      '/fmi/odata/v4/DB/$metadata': 'other',
      '/Streaming_SSL/MainDB/ABC.pdf': 'containers',
      '/fmi/data/vLatest/databases/DB/sessions': 'other',
    };
    assert.deepEqual(Object.fromEntries(Object.keys(paths).map((p) => [p, requestTable(p)])), paths);
    // Of those, the two that read a container's bytes.
    assert.deepEqual(Object.keys(paths).filter(readsContainer), [
      '/fmi/odata/v4/DB/API_Images(ROWID=3)/image_Full/$value',
      '/Streaming_SSL/MainDB/ABC.pdf',
    ]);
  });

  test('a reference read pages every record by key, and the request log sees each request by table', async () => {
    // Pages of 7 records, so a table takes several: a short last page ends the read.
    await withSim({ preset: 'tiny', faults: { odataPageCap: 7 } }, async (sim) => {
      const log = new RequestLog(sim);
      const t0 = Date.now();
      const reads = await readTables(sim, ['API_Contacts', 'API_Company']);
      const token = await login(sim);
      await fetch(`${dataBase(sim)}/layouts/API_Notes/records?_limit=1`, {
        headers: { Authorization: `Bearer ${token}` },
      }).then((r) => r.arrayBuffer());
      await fetch(`${sim.url}/fmi/odata/v4/${sim.database}/API_Notes?$top=1`, {
        headers: { Authorization: basic(sim) },
      }).then((r) => r.arrayBuffer());
      log.stop();
      for (const table of ['API_Contacts', 'API_Company'] as const) {
        const n = sim.dataset.table(table)!.records.length;
        const read = reads.get(table)!;
        const pages = Math.floor(n / 7) + 1;
        assert.deepEqual([read.records, read.manifestPages, read.recordPages], [n, pages, pages], table);
        assert.ok(read.bytes > 0);
      }
      const seen = log.between(t0, Date.now());
      const pagesOf = (t: 'API_Contacts' | 'API_Company') => reads.get(t)!.manifestPages + reads.get(t)!.recordPages;
      assert.deepEqual(seen.byTable, {
        API_Contacts: pagesOf('API_Contacts'),
        API_Company: pagesOf('API_Company'),
        API_Notes: 2,
        other: 1,
      });
      assert.equal(seen.total, sim.stats().requests.total);
      assert.equal(seen.containers, 0, 'no container read');
      assert.equal(log.between(Date.now() + 1, Date.now() + 10).total, 0);
    });
  });

  test("the needed bound: rounds of the source's concurrency (or the longest chain of pages) × latency, plus bytes ÷ bandwidth", () => {
    const f = {
      ...DEFAULT_FAULTS,
      latencyMs: 30,
      latencyJitterMs: 20,
      maxConcurrentRequests: 8,
      bandwidthTotalBps: 1e6,
    };
    const table = (pages: number, bytes: number) => ({ records: 1, manifestPages: pages, recordPages: pages, bytes });
    // 2 + 2 + 2 requests: one round of 40 ms; 3 MB at 1 MB/s.
    let b = neededLowerBound([table(1, 1e6), table(1, 1e6), table(1, 1e6)], f);
    assert.deepEqual([b.requests, b.latencyMs, b.bandwidthMs, b.boundMs], [6, 40, 3000, 3040]);
    // 5 pages of one table follow one another: 5 latencies, though 10 requests fit in two rounds.
    b = neededLowerBound([table(5, 0)], f);
    assert.deepEqual([b.requests, b.latencyMs, b.boundMs], [10, 200, 200]);
    // 9 tables of one page each: 18 requests in 3 rounds.
    b = neededLowerBound(
      Array.from({ length: 9 }, () => table(1, 0)),
      f,
    );
    assert.equal(b.latencyMs, 120);
  });
});
