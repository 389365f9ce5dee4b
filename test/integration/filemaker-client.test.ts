// The FileMaker client against the FileMaker simulator (sim/): every assertion is on data that came back (ids,
// records, SHA-256 of container bytes, the simulator's own counters), never on a log line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../../sim/server';
import { FileMakerError, FileMakerOverloadedError, TransferQuotaError } from '../../src/errors';
import { createLogger } from '../../src/logger';
import {
  createFileMakerClient,
  createTokenCache,
  FM_ERRORS,
  tokenFromCommand,
  type FileMakerClient,
  type FileMakerClientOptions,
  type ManifestEntry,
} from '../../src/filemaker';

interface TruthRecord {
  recordId: string;
  modId: string;
  fieldData: Record<string, string | number>;
}
interface TruthContainer {
  recordId: string;
  id: string;
  field: string;
  state: 'ok' | 'empty' | 'broken';
  size?: number;
  sha256?: string;
  contentType?: string;
  filename?: string;
  brokenMode?: string;
}

async function admin<T>(sim: RunningSimulator, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const res = await request(`${sim.adminUrl}${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });
  const json = (await res.body.json()) as T;
  assert.equal(res.statusCode, 200, `admin ${path}`);
  return json;
}

const truthRecords = async (sim: RunningSimulator, table: string) =>
  (await admin<{ records: TruthRecord[] }>(sim, 'GET', `/truth/tables/${encodeURIComponent(table)}`)).records;
const truthContainers = async (sim: RunningSimulator, table: string) =>
  (await admin<{ containers: TruthContainer[] }>(sim, 'GET', `/truth/containers?table=${encodeURIComponent(table)}`))
    .containers;

/** Collects log lines so tests can check that secrets and patient data never reach them. */
class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    cb();
  }
}

async function withSim(
  opts: SimulatorOptions,
  fn: (
    sim: RunningSimulator,
    make: (o?: Partial<FileMakerClientOptions>) => FileMakerClient,
    logs: LogSink,
  ) => Promise<void>,
): Promise<void> {
  const sim = await startSimulator({ preset: 'tiny', profile: 'clean', ...opts });
  const logs = new LogSink();
  const clients: FileMakerClient[] = [];
  const make = (o: Partial<FileMakerClientOptions> = {}) => {
    const c = createFileMakerClient({
      url: sim.url,
      database: sim.database,
      username: sim.username,
      password: sim.password,
      maxConcurrency: 4,
      logger: createLogger({ level: 'trace', format: 'json', destination: logs }),
      requestTimeoutMs: 10_000,
      // Overloads reach the caller at once unless a test asks for the short repeats.
      overloadRetries: 0,
      ...o,
    });
    clients.push(c);
    return c;
  };
  try {
    await fn(sim, make, logs);
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await sim.close();
  }
}

/** The ROWID of the record with this id. */
function byId(truth: readonly TruthRecord[], id: string | null): string {
  const r = truth.find((x) => String(x.fieldData['id']) === id);
  assert.ok(r, 'a record of the table');
  return r.recordId;
}

async function collect(it: AsyncIterable<ManifestEntry>): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

async function bytesOf(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function sha256Of(body: NodeJS.ReadableStream): Promise<{ sha: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  await pipeline(
    body,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        size += chunk.length;
        cb();
      },
    }),
  );
  return { sha: h.digest('hex'), size };
}

/** Deletes records (by ROWID) from the running simulator, as staff deleting them in FileMaker would. */
function deleteRecords(sim: RunningSimulator, table: string, rowIds: readonly string[]): void {
  sim.mutate(rowIds.map((r) => ({ op: 'delete' as const, table, recordId: Number(r) })));
}

const isCode = (code: string) => (err: unknown) => err instanceof FileMakerError && err.code === code;

// ---------------------------------------------------------------------------------------------------------------
// Manifest

void test('manifest yields exactly the ids of the source table, with ROWID and ROWMODID from OData', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const truth = await truthRecords(sim, 'API_Contacts');
    const entries = await collect(fm.manifest('API_Contacts'));
    assert.deepEqual(entries.map((e) => e.id).sort(), truth.map((r) => String(r.fieldData['id'])).sort());
    const byRow = new Map(truth.map((r) => [r.recordId, r]));
    for (const e of entries) {
      const t = byRow.get(e.rowId!);
      assert.ok(t, `ROWID ${e.rowId} is a Data API recordId`);
      assert.equal(String(t.fieldData['id']), e.id);
      assert.equal(t.modId, e.rowModId);
    }
    assert.equal(await fm.count('API_Contacts'), truth.length);
    assert.equal(await fm.layoutTotalCount('API_Contacts'), truth.length);
  });
});

void test('manifest reads past the server page cap and in $top windows, with both annotation spellings', async () => {
  for (const odataAnnotations of ['plain', 'odata'] as const) {
    await withSim({ faults: { odataPageCap: 7, odataAnnotations } }, async (sim, make) => {
      const fm = make();
      const truth = await truthRecords(sim, 'API_Contact_Details');
      assert.ok(truth.length > 30, 'enough rows to page');
      const want = truth.map((r) => String(r.fieldData['id'])).sort();
      // Server-driven paging only (window larger than the table), then windows smaller than, equal to and not a
      // multiple of the server's page cap.
      for (const pageSize of [10_000, 5, 7, 16]) {
        const before = fm.stats().requests.odataPage ?? 0;
        const entries = await collect(fm.manifest('API_Contact_Details', { pageSize }));
        assert.deepEqual(entries.map((e) => e.id).sort(), want, `${odataAnnotations} pageSize ${pageSize}`);
        assert.equal(new Set(entries.map((e) => e.rowId)).size, truth.length);
        assert.ok((fm.stats().requests.odataPage ?? 0) - before >= Math.ceil(truth.length / 7), 'paged');
      }
    });
  }
});

void test("a manifest read in one page brings FileMaker's count in the same answer; one read in pages does not", async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const truth = await truthRecords(sim, 'API_Contacts');
    const counts: number[] = [];
    const entries = await collect(fm.manifest('API_Contacts', { onCount: (n) => counts.push(n) }));
    assert.equal(entries.length, truth.length);
    assert.deepEqual(counts, [truth.length]);
    assert.equal(fm.stats().requests.odataPage, 1);
    assert.equal(fm.stats().requests.odataCount ?? 0, 0);
    await collect(fm.manifest('API_Contacts', { pageSize: 5, onCount: (n) => counts.push(n) }));
    assert.deepEqual(counts, [truth.length], 'not counted when read in pages');
  });
  await withSim({ faults: { odataPageCap: 7 } }, async (_sim, make) => {
    const counts: number[] = [];
    await collect(make().manifest('API_Contacts', { onCount: (n) => counts.push(n) }));
    assert.deepEqual(counts, [], "not counted when the server's cap split it into pages");
  });
});

void test('records deleted between manifest pages never hide a live record: pages go by key, not by offset', async () => {
  for (const orderBy of ['ROWID', 'id'] as const) {
    await withSim({}, async (sim, make) => {
      const fm = make();
      const table = 'API_Contact_Details';
      const truth = await truthRecords(sim, table);
      assert.ok(truth.length > 30, 'enough rows to page');
      const pageSize = 5;
      const entries: ManifestEntry[] = [];
      const deleted = new Set<string>();
      for await (const e of fm.manifest(table, { pageSize, orderBy })) {
        entries.push(e);
        // At the end of each page, before the next is asked for, two records already read leave the file.
        if (entries.length % pageSize === 0) {
          const gone = entries.slice(-pageSize, -pageSize + 2).map((x) => x.rowId ?? byId(truth, x.id));
          deleteRecords(sim, table, gone);
          for (const r of gone) deleted.add(r);
        }
      }
      assert.ok(deleted.size >= 10, `${orderBy}: records were deleted while paging`);
      const read = new Set(entries.map((e) => e.id));
      const missing = truth.filter((r) => !deleted.has(r.recordId) && !read.has(String(r.fieldData['id'])));
      assert.deepEqual(
        missing.map((r) => r.recordId),
        [],
        `${orderBy}: no live record is missing`,
      );
      assert.equal(entries.length, truth.length, `${orderBy}: every record read once`);
      assert.equal(await fm.count(table), truth.length - deleted.size);
    });
  }
});

void test('records inserted after a manifest are listed after its highest ROWID and left out of a count up to it', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const table = 'API_Referrer';
    const before = await collect(fm.manifest(table));
    const highest = before.reduce((m, e) => (Number(e.rowId) > m ? Number(e.rowId) : m), 0);
    const inserted = sim.mutate([1, 2, 3].map(() => ({ op: 'insert' as const, table })));
    const gone = before[0]!;
    sim.mutate([{ op: 'delete', table, recordId: Number(gone.rowId) }]);
    const arrivals = await collect(fm.manifest(table, { afterRowId: String(highest), pageSize: 2 }));
    assert.deepEqual(
      arrivals.map((e) => e.id),
      inserted.map((r) => r.id),
    );
    assert.equal(await fm.count(table), before.length + 3 - 1);
    assert.equal(await fm.count(table, { rowIdAtMost: String(highest) }), before.length - 1);
  });
});

void test('manifest and count work for a table whose name has spaces', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const truth = await truthRecords(sim, 'Clinic Settings');
    const entries = await collect(fm.manifest('Clinic Settings', { orderBy: 'id' }));
    assert.deepEqual(entries.map((e) => e.id).sort(), truth.map((r) => String(r.fieldData['id'])).sort());
    assert.equal(await fm.count('Clinic Settings'), truth.length);
  });
});

void test('manifest survives FileMaker JSON defects (raw control characters, bare ?) without losing a row', async () => {
  await withSim({ faults: { brokenJsonRate: 0.3, odataPageCap: 5 } }, async (sim, make) => {
    const fm = make();
    const truth = await truthRecords(sim, 'API_Notes');
    const entries = await collect(fm.manifest('API_Notes', { pageSize: 5 }));
    assert.ok((sim.stats().faults['broken_json'] ?? 0) > 0, 'the simulator did break some pages');
    assert.ok(fm.stats().repairedJson > 0, 'repairs counted');
    // Every row is there (ROWID is never corrupted), and ids are exact after re-fetching repaired pages.
    assert.deepEqual(entries.map((e) => e.rowId).sort(), truth.map((r) => r.recordId).sort());
    const byRow = new Map(truth.map((r) => [r.recordId, String(r.fieldData['id'])]));
    for (const e of entries) assert.equal(e.id, byRow.get(e.rowId!));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Records

void test('findByIds returns exactly the requested records, chunked, and nothing for unknown ids', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const truth = await truthRecords(sim, 'API_Docs');
    const wanted = truth.filter((_, i) => i % 3 === 0);
    const ids = wanted.map((r) => String(r.fieldData['id']));
    const records = await fm.findByIds('API_Docs', 'id', [...ids, 'NO-SUCH-ID-1', ids[0]!, 'NO-SUCH-ID-2'], {
      chunkSize: 4,
    });
    assert.deepEqual(records.map((r) => r.recordId).sort(), wanted.map((r) => r.recordId).sort());
    for (const r of records) {
      const t = wanted.find((w) => w.recordId === r.recordId)!;
      assert.equal(r.fieldData['id'], t.fieldData['id']);
      assert.equal(r.fieldData['id_Contact'], t.fieldData['id_Contact']);
      assert.equal(r.modId, t.modId);
    }
    assert.equal(fm.stats().requests.find, Math.ceil((ids.length + 2) / 4));
    // Lower-case ids (as the target stores them) find the same records.
    const lower = await fm.findByIds(
      'API_Docs',
      'id',
      ids.slice(0, 3).map((i) => i.toLowerCase()),
    );
    assert.equal(lower.length, 3);
    assert.deepEqual(await fm.findByIds('API_Docs', 'id', ['NO-SUCH-ID']), []);
    assert.deepEqual(await fm.findByIds('API_Docs', 'id', []), []);
  });
});

void test('recordsById reads a core chunk of 500 records in one find, each record as FileMaker holds it', async () => {
  await withSim({ preset: 'demo' }, async (sim, make) => {
    const fm = make();
    const truth = (await truthRecords(sim, 'API_event')).slice(0, 500);
    const wanted = truth.map((r) => ({ recordId: r.recordId, id: String(r.fieldData['id']).toLowerCase() }));
    const records = await fm.recordsById('API_event', 'id', wanted);
    assert.equal(fm.stats().requests.find, 1);
    assert.equal(fm.stats().requests.getRecord ?? 0, 0);
    assert.equal(records.size, 500);
    for (const t of truth) {
      assert.equal(records.get(t.recordId)?.fieldData['id'], t.fieldData['id']);
      assert.equal(records.get(t.recordId)?.modId, t.modId);
    }
  });
});

void test('a find with no hits is empty whether FileMaker answers it with HTTP 500 or 400', async () => {
  await withSim({ faults: { noRecordsStatus: 400 } }, async (_sim, make) => {
    assert.deepEqual(await make().findByIds('API_Contacts', 'id', ['NOPE']), []);
  });
});

void test('findByIds returns portal rows up to the requested limit', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const contacts = await truthRecords(sim, 'API_Contacts');
    const details = await truthRecords(sim, 'API_Contact_Details');
    const id = String(contacts[0]!.fieldData['id']);
    const related = details.filter((d) => String(d.fieldData['id.key']).toUpperCase() === id.toUpperCase());
    const [rec] = await fm.findByIds('API_Contacts', 'id', [id], { portals: { Contact_Details: 500 } });
    assert.ok(rec, 'contact found');
    assert.equal(rec.portalData['Contact_Details']?.length, related.length);
    const info = rec.portalDataInfo.find((p) => p.portalObjectName === 'Contact_Details');
    assert.equal(info?.foundCount, related.length);
  });
});

void test('findByIds (unless told which) and getRecord ask for no portal: a patient comes without its contact details', async () => {
  await withSim({}, async (sim, make) => {
    const contacts = await truthRecords(sim, 'API_Contacts');
    const details = await truthRecords(sim, 'API_Contact_Details');
    const owners = new Set(details.map((d) => String(d.fieldData['id.key']).toUpperCase()));
    const id = String(contacts.find((c) => owners.has(String(c.fieldData['id']).toUpperCase()))!.fieldData['id']);
    const fm = make();
    const [rec] = await fm.findByIds('API_Contacts', 'id', [id]);
    assert.equal(rec?.fieldData['id'], id);
    assert.deepEqual(rec.portalData, {}, 'no portal rows');
    assert.deepEqual(rec.portalDataInfo, []);
    const alone = await fm.getRecord('API_Contacts', rec.recordId);
    assert.equal(alone.fieldData['id'], id);
    assert.deepEqual(alone.portalData, {}, 'no portal rows from getRecord');
  });
});

void test('getRecord and patchRecord: the new modId comes back and a stale modId is refused with 306', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const t = (await truthRecords(sim, 'API_Docs'))[0]!;
    const rec = await fm.getRecord('API_Docs', t.recordId);
    assert.equal(rec.fieldData['id'], t.fieldData['id']);
    const modId = await fm.patchRecord('API_Docs', t.recordId, { NexusExportDate: '03/14/2024' }, rec.modId);
    assert.equal(Number(modId), Number(rec.modId) + 1);
    const after = (await truthRecords(sim, 'API_Docs')).find((r) => r.recordId === t.recordId)!;
    assert.equal(after.modId, modId);
    assert.equal(after.fieldData['NexusExportDate'], '2024-03-14');
    await assert.rejects(
      fm.patchRecord('API_Docs', t.recordId, { NexusExportDate: '03/15/2024' }, rec.modId),
      (err: unknown) => isCode(FM_ERRORS.MODID_MISMATCH)(err) && (err as FileMakerError).fmCode === '306',
    );
    await assert.rejects(fm.getRecord('API_Docs', '999999'), isCode(FM_ERRORS.RECORD_MISSING));
    await assert.rejects(fm.getRecord('No Such Layout', '1'), isCode(FM_ERRORS.LAYOUT_MISSING));
  });
});

void test('pre-flight metadata: productInfo, database names, layout fields', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const info = await fm.productInfo();
    assert.equal(typeof info['version'], 'string');
    assert.deepEqual(await fm.databaseNames(), [sim.database]);
    const fields = await fm.layoutFields('API_Images');
    for (const f of ['id', 'id_Contact', 'Name of file', 'image_Full', 'image_small']) assert.ok(fields.includes(f), f);
    const meta = await fm.layoutMetadata('API_Contacts');
    assert.ok(meta.portals['Contact_Details']?.includes('API_Contact_Details::ph'), 'portal fields');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Session

void test('concurrent first calls share one login (no login storm)', async () => {
  await withSim({ faults: { latencyMs: 20 } }, async (sim, make) => {
    const fm = make({ maxConcurrency: 8 });
    const counts = await Promise.all(Array.from({ length: 20 }, () => fm.layoutTotalCount('API_Notes')));
    assert.ok(
      counts.every((c) => c === counts[0]),
      'same answers',
    );
    assert.equal(sim.stats().sessions.created, 1);
    assert.equal(fm.stats().logins, 1);
  });
});

void test('tokens killed by a server restart mid-run: one re-login, every call retried once, no errors', async () => {
  await withSim({ faults: { latencyMs: 15 } }, async (sim, make) => {
    const fm = make({ maxConcurrency: 4 });
    const truth = await truthRecords(sim, 'API_Notes');
    const ids = truth.map((r) => String(r.fieldData['id']));
    assert.ok(await fm.validateSession().then((v) => v === false), 'no session before the first call');
    await fm.findByIds('API_Notes', 'id', ids.slice(0, 1));
    assert.equal(await fm.validateSession(), true);
    const work = Promise.all(ids.map((id) => fm.findByIds('API_Notes', 'id', [id])));
    await sleep(40);
    await admin(sim, 'POST', '/restart');
    const results = await work;
    assert.deepEqual(
      results.map((r) => r[0]?.fieldData['id']),
      ids,
    );
    assert.equal(sim.stats().sessions.created, 2, 'exactly one re-login for all concurrent callers');
    assert.equal(fm.stats().relogins, 1);
    assert.ok((sim.stats().faults['token_invalid'] ?? 0) >= 1, 'the restart did kill the token under calls');
    await admin(sim, 'POST', '/restart');
    assert.equal(await fm.validateSession(), false);
  });
});

void test('an expired session (FileMaker idle timeout) logs in again transparently', async () => {
  await withSim({ faults: { sessionTtlMs: 150 } }, async (sim, make) => {
    const fm = make();
    assert.ok((await fm.layoutTotalCount('API_Docs')) > 0, 'count before expiry');
    await sleep(300);
    assert.ok((await fm.layoutTotalCount('API_Docs')) > 0, 'count after expiry');
    assert.equal(sim.stats().sessions.created, 2);
    assert.equal(fm.stats().relogins, 1);
    assert.equal(fm.stats().retries, 1);
  });
});

void test('an idle session is replaced before it expires and the old one is logged out', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make({ idleRefreshMs: 100 });
    await fm.layoutTotalCount('API_Docs');
    await sleep(200);
    await fm.layoutTotalCount('API_Docs');
    await fm.logout();
    const s = sim.stats();
    assert.equal(s.sessions.created, 2);
    assert.equal(s.faults['token_invalid'] ?? 0, 0, 'no call ever hit a dead token');
    assert.equal(s.sessions.loggedOut, 2, 'the replaced session and the final one were handed back');
    assert.equal(s.sessions.active, 0);
  });
});

void test('a 401/952 right after a fresh login fails typed instead of looping', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    sim.setFaults({ failNextRequests: { status: 401, count: 2, api: 'data' } });
    await assert.rejects(fm.layoutTotalCount('API_Docs'), (err: unknown) => {
      return isCode(FM_ERRORS.SESSION_INVALID)(err) && (err as FileMakerError).retryable;
    });
  });
});

void test('wrong password is a non-retryable auth failure; the host session cap is an overload', async () => {
  await withSim({ faults: { maxSessions: 1, sessionCapCode: 812 } }, async (sim, make) => {
    await assert.rejects(make({ password: 'wrong' }).layoutTotalCount('API_Docs'), (err: unknown) => {
      return isCode(FM_ERRORS.AUTH_FAILED)(err) && !(err as FileMakerError).retryable;
    });
    await make().layoutTotalCount('API_Docs');
    await assert.rejects(make().layoutTotalCount('API_Docs'), (err: unknown) => {
      return err instanceof FileMakerOverloadedError && err.fmCode === '812';
    });
    assert.equal(sim.stats().sessions.created, 1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Errors

void test('an HTML 502 page is an overload error and is never parsed', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    await fm.layoutTotalCount('API_Docs');
    for (const api of ['data', 'odata'] as const) {
      sim.setFaults({ failNextRequests: { status: 502, count: 1, api } });
      const call = api === 'data' ? fm.layoutTotalCount('API_Docs') : fm.count('API_Docs');
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof FileMakerOverloadedError, `overload for ${api}`);
        assert.equal(err.httpStatus, 502);
        assert.equal(err.retryable, true);
        assert.doesNotMatch(err.message, /nginx|<html/i);
        return true;
      });
    }
    sim.setFaults({ failNextRequests: { status: 503, count: 1, api: 'odata' } });
    await assert.rejects(collect(fm.manifest('API_Docs')), FileMakerOverloadedError);
    assert.equal(fm.stats().overloads, 3);
  });
});

void test('a short burst of 502/503 is absorbed by repeating after a backoff; a longer one still reaches the caller', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make({ overloadRetries: 3, overloadBackoffMs: 20 });
    const doc = (await truthContainers(sim, 'API_Docs')).find((d) => d.state === 'ok')!;
    await fm.layoutTotalCount('API_Docs');
    // Three overloads per call: each call still answers, on every API and both legs of a container download.
    for (const api of ['data', 'odata', 'container'] as const) {
      sim.setFaults({ failNextRequests: { status: api === 'odata' ? 503 : 502, count: 3, api } });
      if (api === 'data') assert.equal(await fm.layoutTotalCount('API_Docs'), await fm.count('API_Docs'));
      else if (api === 'odata')
        assert.equal(
          (await sha256Of((await fm.downloadODataContainer('API_Docs', doc.id, 'Doc')).body)).sha,
          doc.sha256,
        );
      else {
        const [rec] = await fm.findByIds('API_Docs', 'id', [doc.id]);
        const dl = await fm.downloadContainer(String(rec!.fieldData['Doc']));
        assert.equal((await sha256Of(dl.body)).sha, doc.sha256);
      }
    }
    assert.equal(fm.stats().overloadsAbsorbed, 9);
    assert.equal(fm.stats().overloads, 0);
    // Four in a row exceed the repeats: the caller gets the overload error (and the workflow cools down).
    sim.setFaults({ failNextRequests: { status: 502, count: 4, api: 'data' } });
    await assert.rejects(fm.layoutTotalCount('API_Docs'), FileMakerOverloadedError);
    assert.equal(fm.stats().overloads, 1);
  });
});

void test('an HTML page with HTTP 200 is a retryable bad response for every API, never data', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const docs = await truthContainers(sim, 'API_Docs');
    const doc = docs.find((d) => d.state === 'ok')!;
    const [rec] = await fm.findByIds('API_Docs', 'id', [doc.id]);
    const url = String(rec!.fieldData['Doc']);
    sim.setFaults({ html200Rate: 1 });
    const bad = (err: unknown) => isCode(FM_ERRORS.BAD_RESPONSE)(err) && (err as FileMakerError).retryable;
    await assert.rejects(fm.layoutTotalCount('API_Docs'), bad);
    await assert.rejects(fm.count('API_Docs'), bad);
    await assert.rejects(collect(fm.manifest('API_Docs')), bad);
    await assert.rejects(fm.downloadContainer(url), bad);
    await assert.rejects(fm.downloadODataContainer('API_Docs', doc.id, 'Doc'), bad);
    assert.equal(fm.stats().badResponses, 5);
  });
});

void test('the transfer quota (953) is a TransferQuotaError on the Data API, OData and containers', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const doc = (await truthContainers(sim, 'API_Docs')).find((d) => d.state === 'ok')!;
    const [rec] = await fm.findByIds('API_Docs', 'id', [doc.id]);
    const url = String(rec!.fieldData['Doc']);
    sim.setFaults({ quotaBytes: 1 });
    await assert.rejects(fm.findByIds('API_Docs', 'id', [doc.id]), TransferQuotaError);
    await assert.rejects(collect(fm.manifest('API_Docs')), TransferQuotaError);
    await assert.rejects(fm.downloadContainer(url), TransferQuotaError);
    await assert.rejects(fm.downloadODataContainer('API_Docs', doc.id, 'Doc'), TransferQuotaError);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Containers

void test('container downloads do the 302 + cookie handshake and stream bytes whose SHA-256 equals the truth', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const docs = (await truthContainers(sim, 'API_Docs')).filter((d) => d.state === 'ok').slice(0, 8);
    const records = await fm.findByIds(
      'API_Docs',
      'id',
      docs.map((d) => d.id),
    );
    const before = fm.stats();
    await Promise.all(
      docs.map(async (d) => {
        const rec = records.find((r) => r.fieldData['id'] === d.id)!;
        const dl = await fm.downloadContainer(String(rec.fieldData['Doc']));
        assert.equal(dl.status, 200);
        assert.equal(dl.contentType, d.contentType);
        assert.equal(dl.contentLength, d.size);
        assert.equal(dl.filename, d.filename);
        const got = await sha256Of(dl.body);
        assert.equal(got.size, d.size);
        assert.equal(got.sha, d.sha256);
      }),
    );
    const after = fm.stats();
    const total = docs.reduce((n, d) => n + d.size!, 0);
    assert.equal(after.bytesReceived.containers - before.bytesReceived.containers, total);
    assert.equal((after.requests.container ?? 0) - (before.requests.container ?? 0), 2 * docs.length, '302 + GET');
    assert.equal(after.inFlight, 0, 'every slot released when the streams ended');
  });
});

void test('OData $value downloads stream the same bytes; an empty container is a 204 with no bytes', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const images = await truthContainers(sim, 'API_Images');
    const ok = images.find((c) => c.state === 'ok')!;
    const dl = await fm.downloadODataContainer('API_Images', ok.id, ok.field);
    assert.equal(dl.filename, ok.filename);
    assert.equal((await sha256Of(dl.body)).sha, ok.sha256);
    const empty = images.find((c) => c.state === 'empty');
    if (empty) {
      const e = await fm.downloadODataContainer('API_Images', empty.id, empty.field);
      assert.equal(e.status, 204);
      assert.equal((await sha256Of(e.body)).size, 0);
    }
    await assert.rejects(
      fm.downloadODataContainer('API_Images', 'NO-SUCH', ok.field),
      isCode(FM_ERRORS.RECORD_MISSING),
    );
  });
});

/** Answers from a stand-in host that FileMaker servers give but the simulator (yet) does not: one handler per path. */
async function withHost(
  handlers: Record<string, (res: ServerResponse, req: IncomingMessage) => void>,
  fn: (fm: FileMakerClient, url: string) => Promise<void>,
  o: Partial<FileMakerClientOptions> = {},
): Promise<void> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const handler = Object.entries(handlers).find(([p]) => path.endsWith(p))?.[1];
    if (handler) handler(res, req);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fm = createFileMakerClient({
    url,
    database: 'DB',
    username: 'u',
    password: 'p',
    maxConcurrency: 2,
    logger: createLogger({ level: 'silent', format: 'json' }),
    requestTimeoutMs: 5_000,
    ...o,
  });
  try {
    await fn(fm, url);
  } finally {
    await fm.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

void test('an OData $value answer that cannot be the container is CONTAINER_SUSPECT before any byte is handed over', async () => {
  const pdf = Buffer.from('%PDF-1.7 a real document');
  const text = Buffer.from('a,b\n1,2\n');
  await withHost(
    {
      // The filename answered as text/plain, with and without Content-Disposition; base64 text.
      '/Docs(1)/File/$value': (res) =>
        res
          .writeHead(200, { 'content-type': 'text/plain', 'content-disposition': 'attachment; filename="a.pdf"' })
          .end('a.pdf'),
      '/Docs(2)/File/$value': (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('a.pdf'),
      '/Docs(3)/File/$value': (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(pdf.toString('base64')),
      // Empty 200s, with a Content-Length of 0 and chunked.
      '/Docs(4)/File/$value': (res) => res.writeHead(200, { 'content-type': 'application/pdf' }).end(),
      '/Docs(5)/File/$value': (res) => {
        res.writeHead(200, { 'content-type': 'application/pdf', 'transfer-encoding': 'chunked' });
        res.end();
      },
      // Real files: bytes without a name or a length, a text file by its name, an empty container.
      '/Docs(6)/File/$value': (res) => {
        res.writeHead(200, { 'content-type': 'application/pdf', 'transfer-encoding': 'chunked' });
        res.end(pdf);
      },
      '/Docs(7)/File/$value': (res) =>
        res
          .writeHead(200, { 'content-type': 'text/csv', 'content-disposition': 'attachment; filename=x.csv' })
          .end(text),
      '/Docs(8)/File/$value': (res) => res.writeHead(204, { 'content-type': 'text/plain' }).end(),
    },
    async (fm) => {
      for (const n of [1, 2, 3, 4, 5]) {
        await assert.rejects(fm.downloadODataContainer('Docs', n, 'File'), (err: unknown) => {
          assert.ok(isCode(FM_ERRORS.CONTAINER_SUSPECT)(err), `answer ${n}`);
          assert.equal((err as FileMakerError).retryable, false);
          return true;
        });
      }
      assert.equal(fm.stats().suspectContainers, 5);
      assert.equal(fm.stats().inFlight, 0, 'slots released');
      const six = await fm.downloadODataContainer('Docs', 6, 'File');
      assert.deepEqual(await bytesOf(six.body), pdf);
      const seven = await fm.downloadODataContainer('Docs', 7, 'File');
      assert.equal(seven.filename, 'x.csv');
      assert.deepEqual(await bytesOf(seven.body), text);
      const eight = await fm.downloadODataContainer('Docs', 8, 'File');
      assert.equal(eight.status, 204);
      assert.equal((await bytesOf(eight.body)).length, 0);
      assert.equal(fm.stats().suspectContainers, 5);
    },
  );
});

void test('Data API containers without the cookie handshake: a plain 200 from Additional_1, no Content-Disposition', async () => {
  const jpg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(70_000, 7)]);
  await withHost(
    {
      '/Streaming_SSL/Additional_1/0A1B2C.jpg': (res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpg),
    },
    async (fm, url) => {
      const dl = await fm.downloadContainer(
        `${url}/Streaming_SSL/Additional_1/0A1B2C.jpg?RCType=EmbeddedRCFileProcessor`,
      );
      assert.equal(dl.status, 200);
      assert.equal(dl.filename, undefined);
      assert.equal(dl.contentType, 'image/jpeg');
      assert.deepEqual(await bytesOf(dl.body), jpg);
      assert.equal(fm.stats().requests.container, 1, 'one request, no handshake');
    },
  );
});

void test('Claris ID: FMID on the Data API login and on every OData request, a fresh token near its exp and after a 401', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fmid-'));
  const tokenFile = join(dir, 'token');
  const valid = new Set<string>();
  const seen: { login: string[]; odata: string[] } = { login: [], odata: [] };
  const nowS = () => Math.floor(Date.now() / 1000);
  /** What the sign-in command prints from now on: a JWT-shaped token expiring in `lifetimeS`. */
  const issue = (name: string, lifetimeS: number) => {
    const claims = Buffer.from(JSON.stringify({ sub: name, exp: nowS() + lifetimeS })).toString('base64url');
    const token = `eyJhbGciOiJSUzI1NiJ9.${claims}.sig-${name}`;
    writeFileSync(tokenFile, `${token}\n`);
    valid.add(token);
    return token;
  };
  const fmid = (req: IncomingMessage) => /^FMID (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const envelope = (code: string, response: unknown) => JSON.stringify({ response, messages: [{ code, message: '' }] });
  const logs = new LogSink();
  let skewMs = 0;
  try {
    await withHost(
      {
        '/sessions': (res, req) => {
          seen.login.push(fmid(req));
          if (!valid.has(fmid(req)))
            return res.writeHead(401, { 'content-type': 'application/json' }).end(envelope('212', {}));
          res.writeHead(200, { 'content-type': 'application/json', 'x-fm-data-access-token': 'session-1' });
          res.end(envelope('0', {}));
        },
        '/records': (res, req) => {
          assert.equal(req.headers.authorization, 'Bearer session-1');
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(envelope('0', { dataInfo: { totalRecordCount: 42 }, data: [] }));
        },
        '/T/$count': (res, req) => {
          seen.odata.push(fmid(req));
          if (!valid.has(fmid(req))) return res.writeHead(401, { 'content-type': 'application/json' }).end('{}');
          res.writeHead(200, { 'content-type': 'text/plain' }).end('42');
        },
      },
      async (fm) => {
        const a = issue('a', 3600);
        assert.equal(await fm.count('T'), 42);
        assert.equal(await fm.layoutTotalCount('L'), 42);
        // Revoked early: the host refuses it, the command prints a token that lives four minutes.
        valid.delete(a);
        const b = issue('b', 240);
        assert.equal(await fm.count('T'), 42);
        // A token that lived under ten minutes when fetched is kept for half of that, then replaced before it is sent.
        skewMs = 121_000;
        const c = issue('c', 3600);
        assert.equal(await fm.count('T'), 42);
        assert.deepEqual(seen, { login: [a], odata: [a, a, b, c] });
        assert.equal(fm.stats().logins, 1);
        const all = logs.lines.join('');
        for (const t of [a, b, c]) assert.ok(!all.includes(t) && !all.includes(t.split('.')[1]!), 'no token in logs');
      },
      {
        username: '',
        password: '',
        clarisId: createTokenCache(tokenFromCommand(`cat '${tokenFile}'`), { now: () => Date.now() + skewMs }),
        logger: createLogger({ level: 'trace', format: 'json', destination: logs }),
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('a stale container URL ends CONTAINER_URL_STALE (401 or 404), also after a restart', async () => {
  for (const expiredUrlStatus of [401, 404] as const) {
    await withSim({ faults: { containerUrlTtlMs: 100, expiredUrlStatus } }, async (sim, make) => {
      const fm = make();
      const doc = (await truthContainers(sim, 'API_Docs')).find((d) => d.state === 'ok')!;
      const [rec] = await fm.findByIds('API_Docs', 'id', [doc.id]);
      await sleep(200);
      await assert.rejects(fm.downloadContainer(String(rec!.fieldData['Doc'])), (err: unknown) => {
        assert.ok(isCode(FM_ERRORS.CONTAINER_URL_STALE)(err), 'stale');
        assert.doesNotMatch((err as Error).message, /Streaming_SSL|[0-9A-F]{64}/);
        return true;
      });
      // Re-reading the record gives a fresh URL that works. Given a long life: on a busy machine more than 100 ms can
      // pass between the find and the download, and the fresh URL would be stale too.
      sim.setFaults({ containerUrlTtlMs: 60_000 });
      const [fresh] = await fm.findByIds('API_Docs', 'id', [doc.id]);
      assert.equal(
        (await sha256Of((await fm.downloadContainer(String(fresh!.fieldData['Doc']))).body)).sha,
        doc.sha256,
      );
      const [again] = await fm.findByIds('API_Docs', 'id', [doc.id]);
      await admin(sim, 'POST', '/restart');
      await assert.rejects(
        fm.downloadContainer(String(again!.fieldData['Doc'])),
        isCode(FM_ERRORS.CONTAINER_URL_STALE),
      );
      assert.ok(fm.stats().staleContainerUrls >= 2, 'stale counted');
    });
  }
});

void test('a sporadic container 401 is retried once with a fresh handshake; twice in a row is stale', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const doc = (await truthContainers(sim, 'API_Docs')).find((d) => d.state === 'ok')!;
    const [rec] = await fm.findByIds('API_Docs', 'id', [doc.id]);
    const url = String(rec!.fieldData['Doc']);
    sim.setFaults({ failNextRequests: { status: 401, count: 1, api: 'container' } });
    const dl = await fm.downloadContainer(url);
    assert.equal((await sha256Of(dl.body)).sha, doc.sha256);
    assert.equal(fm.stats().retries, 1);
    sim.setFaults({ failNextRequests: { status: 401, count: 2, api: 'container' } });
    await assert.rejects(fm.downloadContainer(url), isCode(FM_ERRORS.CONTAINER_URL_STALE));
  });
});

void test('sporadic 401s under a burst of parallel downloads cost retries, not files', async () => {
  await withSim(
    { faults: { container401Rate: 0.3, container401MinConcurrent: 2, bandwidthPerConnectionBps: 4 * 1024 * 1024 } },
    async (sim, make) => {
      const fm = make({ maxConcurrency: 6 });
      const docs = (await truthContainers(sim, 'API_Docs')).filter((d) => d.state === 'ok');
      const records = await fm.findByIds(
        'API_Docs',
        'id',
        docs.map((d) => d.id),
      );
      let stale = 0;
      await Promise.all(
        docs.map(async (d) => {
          const rec = records.find((r) => r.fieldData['id'] === d.id)!;
          for (let attempt = 0; ; attempt++) {
            try {
              const dl = await fm.downloadContainer(String(rec.fieldData['Doc']));
              assert.equal((await sha256Of(dl.body)).sha, d.sha256);
              return;
            } catch (err) {
              // The caller's contract: a stale URL means read the record again (here the URL is still fresh).
              if (!isCode(FM_ERRORS.CONTAINER_URL_STALE)(err) || attempt > 5) throw err;
              stale++;
            }
          }
        }),
      );
      assert.ok((sim.stats().faults['container_401'] ?? 0) > 0, 'the simulator did answer 401s');
      assert.ok(fm.stats().retries > 0, 'retries counted');
      assert.ok(stale < docs.length, 'most 401s absorbed by the retry');
    },
  );
});

void test('a container that breaks off mid-body fails the stream instead of ending short', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const broken = (await truthContainers(sim, 'API_Docs')).filter((d) => d.state === 'broken');
    assert.ok(broken.length > 0, 'the tiny preset has broken containers');
    const records = await fm.findByIds(
      'API_Docs',
      'id',
      broken.map((d) => d.id),
    );
    for (const d of broken) {
      const url = String(records.find((r) => r.fieldData['id'] === d.id)!.fieldData['Doc']);
      if (d.brokenMode === 'truncate') {
        const dl = await fm.downloadContainer(url);
        await assert.rejects(sha256Of(dl.body));
      } else {
        await assert.rejects(fm.downloadContainer(url), FileMakerError);
      }
    }
    await sleep(20);
    assert.equal(fm.stats().inFlight, 0, 'failed streams released their slots');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Concurrency, accounting, logs

void test('the concurrency cap holds across metadata calls and container streams', async () => {
  await withSim({ faults: { latencyMs: 10, maxConcurrentRequests: 3 } }, async (sim, make) => {
    const fm = make({ maxConcurrency: 3 });
    const notes = await truthRecords(sim, 'API_Notes');
    const docs = (await truthContainers(sim, 'API_Docs')).filter((d) => d.state === 'ok');
    const records = await fm.findByIds(
      'API_Docs',
      'id',
      docs.map((d) => d.id),
    );
    await Promise.all([
      ...notes.map((n) => fm.getRecord('API_Notes', n.recordId)),
      ...docs.map(async (d) => {
        const rec = records.find((r) => r.fieldData['id'] === d.id)!;
        const dl = await fm.downloadContainer(String(rec.fieldData['Doc']));
        assert.equal((await sha256Of(dl.body)).sha, d.sha256);
      }),
    ]);
    assert.equal(fm.stats().peakInFlight, 3);
    assert.equal(sim.stats().faults['concurrency_502'] ?? 0, 0, 'FileMaker never saw more than 3 at once');

    // An unconsumed stream keeps its slot: with all three slots held, the next call waits.
    const held = await Promise.all(
      docs.slice(0, 3).map(async (d) => {
        const rec = records.find((r) => r.fieldData['id'] === d.id)!;
        return fm.downloadContainer(String(rec.fieldData['Doc']));
      }),
    );
    let done = false;
    const waiting = fm.getRecord('API_Notes', notes[0]!.recordId).then(() => (done = true));
    await sleep(100);
    assert.equal(done, false);
    held[0]!.body.destroy();
    await waiting;
    for (const h of held.slice(1)) await sha256Of(h.body);
    assert.equal(fm.stats().inFlight, 0);
  });
});

void test('bytes received equal what FileMaker sent, for metadata and containers', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make();
    const docs = (await truthContainers(sim, 'API_Docs')).filter((d) => d.state === 'ok').slice(0, 5);
    await collect(fm.manifest('API_Docs'));
    await fm.count('API_Docs');
    const records = await fm.findByIds(
      'API_Docs',
      'id',
      docs.map((d) => d.id),
    );
    for (const r of records) await sha256Of((await fm.downloadContainer(String(r.fieldData['Doc']))).body);
    await sha256Of((await fm.downloadODataContainer('API_Docs', docs[0]!.id, 'Doc')).body);
    await fm.logout();
    const ours = fm.stats().bytesReceived;
    const theirs = sim.stats().bytes;
    assert.equal(ours.total, theirs.total);
    assert.ok(ours.containers >= docs.reduce((n, d) => n + d.size!, 0), 'container bytes');
    assert.ok(ours.metadata > 0, 'metadata bytes');
  });
});

void test('logs never carry the password, tokens, cookies or field values', async () => {
  await withSim({ faults: { sessionTtlMs: 100 } }, async (sim, make, logs) => {
    const fm = make();
    const docs = (await truthContainers(sim, 'API_Docs')).filter((d) => d.state === 'ok').slice(0, 3);
    const contacts = await truthRecords(sim, 'API_Contacts');
    await fm.findByIds(
      'API_Contacts',
      'id',
      contacts.map((c) => String(c.fieldData['id'])),
    );
    await sleep(200);
    const records = await fm.findByIds(
      'API_Docs',
      'id',
      docs.map((d) => d.id),
    );
    for (const r of records) await sha256Of((await fm.downloadContainer(String(r.fieldData['Doc']))).body);
    sim.setFaults({ failNextRequests: { status: 502, count: 1 } });
    await fm.count('API_Docs').catch(() => undefined);
    await fm.logout();
    const text = logs.lines.join('');
    assert.ok(logs.lines.length > 10, 'debug logging was on');
    assert.ok(!text.includes(sim.password), 'password leaked');
    assert.ok(
      !text.includes(Buffer.from(`${sim.username}:${sim.password}`).toString('base64')),
      'Basic credentials leaked',
    );
    assert.doesNotMatch(text, /X-FMS-Session-Key=|Bearer |Streaming_SSL/);
    assert.doesNotMatch(text, /[0-9a-f]{48}/, 'no Data API token');
    for (const c of contacts) {
      for (const f of ['nameFirst', 'nameLast', 'DOB']) {
        const v = String(c.fieldData[f] ?? '');
        if (v.length > 3) assert.ok(!text.includes(`"${v}"`), `${f} leaked`);
      }
    }
  });
});

void test('with a read-ahead, a container that fits frees its slot as it arrives, before the caller reads it', async () => {
  await withSim({}, async (sim, make) => {
    const fm = make({ maxConcurrency: 1 });
    const doc = (await truthContainers(sim, 'API_Docs')).find(
      (d) => d.state === 'ok' && d.size! > 200_000 && d.size! < 500_000,
    )!;
    const waitIdle = async () => {
      for (let i = 0; i < 100 && fm.stats().inFlight > 0; i++) await sleep(20);
      return fm.stats().inFlight;
    };

    const unread = await fm.downloadODataContainer('API_Docs', doc.id, 'Doc');
    assert.equal(await waitIdle(), 1, 'without a read-ahead, the unread body keeps its slot');
    assert.ok(unread.received() < doc.size!, 'only what the stream buffers hold was read off the connection');
    assert.equal((await sha256Of(unread.body)).sha, doc.sha256);

    const ahead = await fm.downloadODataContainer('API_Docs', doc.id, 'Doc', { readAheadBytes: 512 * 1024 });
    const inFlight = await waitIdle();
    if (inFlight !== 0) ahead.body.destroy(); // gives the slot back, so the failure is reported instead of a hang
    assert.equal(inFlight, 0, 'with one, the slot is free while the body is still unread');
    assert.equal(ahead.received(), doc.size, 'what FileMaker sent is counted before the caller reads it');
    const other = await fm.downloadODataContainer('API_Docs', doc.id, 'Doc');
    assert.equal((await sha256Of(other.body)).sha, doc.sha256, 'the next download had the slot');
    assert.equal((await sha256Of(ahead.body)).sha, doc.sha256, 'every byte read ahead reaches the caller');
  });
});

void test('an aborted download releases its slot and a slow answer times out as a retryable error', async () => {
  await withSim({ faults: { bandwidthPerConnectionBps: 256 * 1024 } }, async (sim, make) => {
    const fm = make({ maxConcurrency: 1, requestTimeoutMs: 300 });
    const doc = (await truthContainers(sim, 'API_Docs')).find((d) => d.state === 'ok' && d.size! > 200_000)!;
    const [rec] = await fm.findByIds('API_Docs', 'id', [doc.id]);
    const ac = new AbortController();
    const dl = await fm.downloadContainer(String(rec!.fieldData['Doc']), { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(sha256Of(dl.body));
    await sleep(20);
    assert.equal(fm.stats().inFlight, 0, 'the slot came back after the abort');
    sim.setFaults({ bandwidthPerConnectionBps: 0, latencyMs: 1_000 });
    await assert.rejects(fm.count('API_Docs'), (err: unknown) => {
      return isCode(FM_ERRORS.TIMEOUT)(err) && (err as FileMakerError).retryable;
    });
  });
});

void test('hostile profile: a caller that retries what the client marks retryable gets every file intact', async () => {
  await withSim({ profile: 'hostile' }, async (sim, make) => {
    const fm = make({ maxConcurrency: 4 });
    const docs = (await truthContainers(sim, 'API_Docs')).filter((d) => d.state === 'ok');
    // What an activity does: retry typed retryable errors (overloads after a pause), re-read the record when its
    // container URL went stale.
    const persist = async <T>(fn: () => Promise<T>): Promise<T> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn();
        } catch (err) {
          const again = err instanceof FileMakerError && (err.retryable || err.code === FM_ERRORS.CONTAINER_URL_STALE);
          if (!again || attempt >= 30) throw err;
          await sleep(err instanceof FileMakerOverloadedError ? 30 : 5);
        }
      }
    };
    const ids = (await persist(() => collect(fm.manifest('API_Docs', { pageSize: 10 })))).map((e) => e.id!);
    assert.equal(ids.length, (await truthRecords(sim, 'API_Docs')).length);
    // A server restart in the middle kills the token, every cookie and every container URL handed out so far.
    setTimeout(() => sim.restart(), 300);
    await Promise.all(
      docs.map((d) =>
        persist(async () => {
          const [rec] = await fm.findByIds('API_Docs', 'id', [d.id]);
          const dl = await fm.downloadContainer(String(rec!.fieldData['Doc']));
          const got = await sha256Of(dl.body);
          assert.equal(got.sha, d.sha256, `container of ${d.id}`);
        }),
      ),
    );
    const f = sim.stats().faults;
    assert.ok((f['restart'] ?? 0) > 0, 'the restart happened');
    assert.ok((f['burst'] ?? 0) + (f['concurrency_502'] ?? 0) + (f['container_401'] ?? 0) > 0, 'the profile did bite');
    assert.equal(fm.stats().inFlight, 0, 'no slot leaked');
  });
});

void test('downloadRecordContainer re-reads the record when the URL went stale and reports empty containers', async () => {
  await withSim({ faults: { containerUrlTtlMs: 100 } }, async (sim, make) => {
    const fm = make();
    const images = await truthContainers(sim, 'API_Images');
    const ok = images.find((c) => c.state === 'ok')!;
    const dl = await fm.downloadRecordContainer('API_Images', ok.recordId, ok.field);
    assert.ok(dl, 'a download');
    assert.equal(dl.record.recordId, ok.recordId);
    assert.equal((await sha256Of(dl.body)).sha, ok.sha256);
    // A restart between reading and fetching: the first URL is dead, the re-read one works.
    sim.setFaults({ failNextRequests: { status: 401, count: 2, api: 'container' } });
    const again = await fm.downloadRecordContainer('API_Images', ok.recordId, ok.field);
    assert.equal((await sha256Of(again!.body)).sha, ok.sha256);
    assert.equal(fm.stats().staleContainerUrls, 1);
    const empty = images.find((c) => c.state === 'empty');
    if (empty) assert.equal(await fm.downloadRecordContainer('API_Images', empty.recordId, empty.field), null);
    await assert.rejects(
      fm.downloadRecordContainer('API_Images', ok.recordId, 'NoSuchField'),
      isCode(FM_ERRORS.FIELD_MISSING),
    );
  });
});
