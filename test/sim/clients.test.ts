// Established FileMaker clients from npm must work against the simulator unchanged.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from 'fm-data-api-client';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { withSim } from './helpers';

describe('npm clients work unchanged', () => {
  let sim: RunningSimulator;
  let host: string;
  before(async () => {
    sim = await startSimulator({ preset: 'tiny', sizeScale: 0.01 });
    host = new URL(sim.url).host;
  });
  after(() => sim.close());

  test('@proofkit/fmdapi: login, list, find, get, update, and re-login after a restart', async () => {
    const { DataApi, FetchAdapter } = await import('@proofkit/fmdapi');
    const client = DataApi({
      adapter: new FetchAdapter({
        server: sim.url,
        db: sim.database,
        auth: { username: sim.username, password: sim.password },
      }),
      layout: 'API_Contacts',
    });
    const list = await client.list({ limit: 5 });
    assert.equal(list.data.length, 5);
    assert.equal(list.dataInfo.totalRecordCount, sim.dataset.table('API_Contacts')!.records.length);
    const all = await client.listAll({ limit: 17 });
    assert.equal(all.length, sim.dataset.table('API_Contacts')!.records.length);
    const first = list.data[0]!;
    const found = await client.find({ query: { id: `==${String(first.fieldData.id)}` } });
    assert.equal(found.data[0]!.recordId, first.recordId);
    const none = await client.find({ query: { nameLast: '==Nobody-Here' }, ignoreEmptyResult: true });
    assert.equal(none.data.length, 0);
    const one = await client.get({ recordId: first.recordId });
    assert.equal(one.data[0]!.fieldData.id, first.fieldData.id);
    const upd = await client.update({
      recordId: first.recordId,
      fieldData: { title: 'Dr' },
      modId: Number(first.modId),
    });
    assert.equal(upd.modId, String(Number(first.modId) + 1));
    sim.restart();
    const again = await client.list({ limit: 1 });
    assert.equal(again.data.length, 1);
  });

  test('fm-data-api-client: login, range, find, get, update', async () => {
    const client = new Client(sim.url, sim.database, sim.username, sim.password);
    const layout = client.layout('API_Docs');
    // The package's types omit dataInfo, which FileMaker (and the simulator) send.
    const range = (await layout.range({ offset: 2, limit: 3 })) as any;
    assert.equal(range.data.length, 3);
    assert.equal(range.dataInfo.foundCount, sim.dataset.table('API_Docs')!.records.length);
    const found = (await layout.find({ NexusExportDate: '=' }, { limit: 500 })) as any;
    const pending = sim.dataset.table('API_Docs')!.records.filter((r) => r.fields.NexusExportDate === '').length;
    assert.equal(found.dataInfo.foundCount, pending);
    const rec = range.data[0]!;
    const one = await layout.get(Number(rec.recordId));
    assert.equal(one.data[0]!.recordId, rec.recordId);
    const empty = await layout.find({ Type: '==no-such-type' }, {}, true);
    assert.equal(empty.data.length, 0);
    const upd = await layout.update(Number(rec.recordId), { imported: 1 }, { modId: Number(rec.modId) });
    assert.equal(upd.modId, String(Number(rec.modId) + 1));
    await client.clearToken();
  });

  test('fm-odata-client: list tables, metadata, query with count, $count, fetchById, container blob', async () => {
    // Its package exports are invisible to this project's `moduleResolution: node`, so load it untyped.
    const moduleName = 'fm-odata-client';
    const { BasicAuth, Connection } = await import(moduleName);
    const connection = new Connection(host, new BasicAuth(sim.username, sim.password), { disableSsl: true });
    assert.deepEqual(
      (await connection.listDatabases()).map((d: { name: string }) => d.name),
      [sim.database],
    );
    const db = connection.database(sim.database);
    const tables = await db.listTables();
    assert.ok(tables.some((t: { name: string }) => t.name === 'Clinic Settings'));
    const meta = await db.getMetadata();
    assert.ok(meta);
    const docs = db.table('API_Docs');
    const total = sim.dataset.table('API_Docs')!.records.length;
    assert.equal(await docs.count(), total);
    assert.equal(
      await docs.count('NexusExportDate ne null'),
      sim.dataset.table('API_Docs')!.records.filter((r) => r.fields.NexusExportDate !== '').length,
    );
    // fm-odata-client passes names through as written: `id` is quoted, as Claris requires.
    const rows = await docs.query({ select: ['"id"', 'Type'], orderBy: '"id"', top: 4, skip: 1 });
    assert.equal(rows.length, 4);
    const ids = sim.dataset
      .table('API_Docs')!
      .records.map((r) => String(r.fields.id))
      .sort();
    assert.deepEqual(
      rows.map((r: { id: string }) => r.id),
      ids.slice(1, 5),
    );
    // fm-odata-client reads only the old `@odata.count` spelling, which the switch provides.
    sim.setFaults({ odataAnnotations: 'odata' });
    const counted = (await docs.query({ top: 2, count: true })) as unknown as { count: number; rows: unknown[] };
    assert.equal(counted.count, total);
    assert.equal(counted.rows.length, 2);
    sim.setFaults({ odataAnnotations: 'plain' });
    const rec = sim.dataset.table('API_Docs')!.records.find((r) => r.containers.Doc!.state === 'ok')!;
    const byId = await docs.fetchById(String(rec.fields.id));
    assert.equal((byId as { id: string }).id, rec.fields.id);
    assert.equal(await docs.fetchById('00000000-0000-4000-8000-000000000000'), null);
    const blob = await docs.fetchFieldBlob(String(rec.fields.id), 'Doc');
    assert.equal(blob.buffer.length, rec.containers.Doc!.size);
    const spaced = await db.table('Clinic Settings').query({ filter: '"Number Value" ge 10' });
    assert.equal(spaced.length, 2);
  });

  test('fm-odata-client on a Claris ID host: FMID tokens from its authentication hook work until they expire', async () => {
    await withSim({ preset: 'tiny', auth: 'fmid', faults: { fmidTokenLifetimeMs: 1000 } }, async (fmid) => {
      const moduleName = 'fm-odata-client';
      const { Connection } = await import(moduleName);
      // Its ClarisId class signs in to Cognito; this hook hands it the simulator's token the same way.
      let token = fmid.issueFmidToken();
      const auth = { getAuthorizationHeader: () => Promise.resolve(`FMID ${token.token}`) };
      const db = new Connection(new URL(fmid.url).host, auth, { disableSsl: true }).database(fmid.database);
      const company = fmid.dataset.table('API_Company')!.records;
      const rows = await db.table('API_Company').query({ select: ['"id"', 'Name'], orderBy: '"id"' });
      assert.deepEqual(
        rows.map((r: { id: string }) => r.id),
        company.map((r) => String(r.fields.id)).sort(),
      );
      await new Promise((r) => setTimeout(r, Date.parse(token.expiresAt) - Date.now() + 50));
      await assert.rejects(db.table('API_Company').count(), (e: { statusCode?: number }) => e.statusCode === 401);
      token = fmid.issueFmidToken();
      assert.equal(await db.table('API_Company').count(), company.length);
    });
  });
});
