import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { admin, basic, call, code, dataBase, download, login } from './helpers';

describe('Data API contract', () => {
  let sim: RunningSimulator;
  let token: string;
  before(async () => {
    sim = await startSimulator({
      preset: 'tiny',
      sizeScale: 0.01,
      faults: { sessionTtlMs: 400, containerUrlTtlMs: 300 },
    });
    token = await login(sim);
  });
  after(() => sim.close());

  test('login returns the token in the header and the body; v1, v2 and vLatest all work', async () => {
    for (const v of ['v1', 'v2', 'vLatest']) {
      const a = await call(`${dataBase(sim, v)}/sessions`, {
        method: 'POST',
        headers: { Authorization: basic(sim) },
        json: {},
      });
      assert.equal(a.status, 200);
      assert.equal(code(a), '0');
      assert.equal(typeof code(a), 'string');
      assert.ok(a.headers.get('x-fm-data-access-token'));
      assert.equal(a.body.response.token, a.headers.get('x-fm-data-access-token'));
    }
  });

  test('missing Authorization at login is 401/10, wrong password 401/212, wrong-case database 500/802', async () => {
    let a = await call(`${dataBase(sim)}/sessions`, { method: 'POST', json: {} });
    assert.deepEqual([a.status, code(a)], [401, '10']);
    a = await call(`${dataBase(sim)}/sessions`, {
      method: 'POST',
      headers: { Authorization: basic(sim, 'nope') },
      json: {},
    });
    assert.deepEqual([a.status, code(a)], [401, '212']);
    a = await call(`${sim.url}/fmi/data/vLatest/databases/wep-databasev2/sessions`, {
      method: 'POST',
      headers: { Authorization: basic(sim) },
      json: {},
    });
    assert.deepEqual([a.status, code(a)], [500, '802']);
  });

  test('validateSession, logout, and 401/952 after logout', async () => {
    const t = await login(sim);
    let a = await call(`${sim.url}/fmi/data/vLatest/validateSession`, { token: t });
    assert.deepEqual([a.status, code(a)], [200, '0']);
    a = await call(`${dataBase(sim)}/sessions/${t}`, { method: 'DELETE' });
    assert.deepEqual([a.status, code(a)], [200, '0']);
    a = await call(`${dataBase(sim)}/layouts/API_Contacts/records`, { token: t });
    assert.deepEqual([a.status, code(a)], [401, '952']);
    assert.deepEqual(a.body.response, {});
  });

  test('sessions slide: used tokens survive past the TTL, idle ones expire with 401/952', async () => {
    const busy = await login(sim);
    const idle = await login(sim);
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 150));
      const a = await call(`${sim.url}/fmi/data/vLatest/validateSession`, { token: busy });
      assert.equal(a.status, 200);
    }
    const a = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_limit=1`, { token: idle });
    assert.deepEqual([a.status, code(a)], [401, '952']);
  });

  test('admin restart kills every token', async () => {
    const t = await login(sim);
    await admin(sim, '/restart', {});
    const a = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_limit=1`, { token: t });
    assert.deepEqual([a.status, code(a)], [401, '952']);
    token = await login(sim);
  });

  test('productInfo reports date formats', async () => {
    const a = await call(`${sim.url}/fmi/data/vLatest/productInfo`);
    assert.equal(a.status, 200);
    assert.equal(a.body.response.productInfo.dateFormat, 'MM/dd/yyyy');
    assert.equal(a.body.response.productInfo.timeStampFormat, 'MM/dd/yyyy HH:mm:ss');
  });

  test('records: 1-based _offset, _limit default 100, dataInfo, string ids, numbers as numbers, "" for empty', async () => {
    token = await login(sim);
    const truth = (await admin(sim, '/truth/tables/API_event')).records;
    let a = await call(`${dataBase(sim)}/layouts/API_event/records`, { token });
    assert.equal(a.status, 200);
    const total = truth.length;
    assert.equal(a.body.response.data.length, Math.min(100, total));
    assert.deepEqual(a.body.response.dataInfo, {
      database: sim.database,
      layout: 'API_event',
      table: 'API_event',
      totalRecordCount: total,
      foundCount: total,
      returnedCount: Math.min(100, total),
    });
    a = await call(`${dataBase(sim)}/layouts/API_event/records?_offset=2&_limit=3`, { token });
    const recs = a.body.response.data;
    assert.equal(recs.length, 3);
    assert.equal(recs[0].recordId, truth[1].recordId);
    assert.equal(typeof recs[0].recordId, 'string');
    assert.equal(typeof recs[0].modId, 'string');
    assert.equal(typeof recs[0].fieldData.allDay, 'number');
    const withEmpty = truth.find((r: any) => r.fieldData.id_Contact === '');
    const single = await call(`${dataBase(sim)}/layouts/API_event/records/${withEmpty.recordId}`, { token });
    assert.equal(single.body.response.data[0].fieldData.id_Contact, '');
    assert.equal(single.body.response.data[0].recordId, withEmpty.recordId);
  });

  test('_sort orders records; bad parameters are 400/960; unknown record 500/101; unknown layout 500/105', async () => {
    const sort = encodeURIComponent(JSON.stringify([{ fieldName: 'nameLast', sortOrder: 'descend' }]));
    const a = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_limit=500&_sort=${sort}`, { token });
    const names = a.body.response.data.map((r: any) => String(r.fieldData.nameLast).toLowerCase());
    assert.deepEqual(names, [...names].sort().reverse());
    let b = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_offset=0`, { token });
    assert.deepEqual([b.status, code(b)], [400, '960']);
    b = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_sort=notjson`, { token });
    assert.deepEqual([b.status, code(b)], [400, '960']);
    b = await call(`${dataBase(sim)}/layouts/API_Contacts/records/999999`, { token });
    assert.deepEqual([b.status, code(b)], [500, '101']);
    b = await call(`${dataBase(sim)}/layouts/NoSuchLayout/records`, { token });
    assert.deepEqual([b.status, code(b)], [500, '105']);
    b = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_offset=100000`, { token });
    assert.deepEqual([b.status, code(b)], [500, '101']);
  });

  test('_find: query, omit, sort, string offset/limit; no hits is 401 (HTTP 500, switchable to 400)', async () => {
    const url = `${dataBase(sim)}/layouts/API_Referrer/_find`;
    const truth = (await admin(sim, '/truth/tables/API_Referrer')).records;
    const archived = truth.filter((r: any) => r.fieldData.RECORD_ACTIVE_INDICATOR === 'Archived').length;
    let a = await call(url, { method: 'POST', token, json: { query: [{ RECORD_ACTIVE_INDICATOR: '==Archived' }] } });
    assert.equal(a.status, 200);
    assert.equal(a.body.response.dataInfo.foundCount, archived);
    a = await call(url, {
      method: 'POST',
      token,
      json: {
        query: [{ id: '*' }, { RECORD_ACTIVE_INDICATOR: 'Archived', omit: 'true' }],
        sort: [{ fieldName: 'id', sortOrder: 'ascend' }],
        offset: '1',
        limit: '2',
      },
    });
    assert.equal(a.body.response.dataInfo.foundCount, truth.length - archived);
    assert.equal(a.body.response.data.length, 2);
    assert.ok(a.body.response.data[0].fieldData.id < a.body.response.data[1].fieldData.id);
    a = await call(url, { method: 'POST', token, json: { query: [{ nameLast: '==Zzzzzz' }] } });
    assert.deepEqual([a.status, code(a)], [500, '401']);
    sim.setFaults({ noRecordsStatus: 400 });
    a = await call(url, { method: 'POST', token, json: { query: [{ nameLast: '==Zzzzzz' }] } });
    assert.deepEqual([a.status, code(a)], [400, '401']);
    sim.setFaults({ noRecordsStatus: 500 });
    a = await call(url, { method: 'POST', token, json: { query: [{ noSuchField: 'x' }] } });
    assert.deepEqual([a.status, code(a)], [500, '102']);
    a = await call(url, { method: 'POST', token, json: {} });
    assert.deepEqual([a.status, code(a)], [400, '958']);
  });

  test('_find on empty date field ("=") finds records never exported', async () => {
    const truth = (await admin(sim, '/truth/tables/API_Docs')).records;
    const empty = truth.filter((r: any) => r.fieldData.NexusExportDate === '').length;
    const a = await call(`${dataBase(sim)}/layouts/API_Docs/_find`, {
      method: 'POST',
      token,
      json: { query: [{ NexusExportDate: '=' }], limit: 1000 },
    });
    assert.equal(a.body.response.dataInfo.foundCount, empty);
    assert.ok(empty < truth.length);
  });

  test('portals: portalData with Table::field keys, portalDataInfo, _offset.P/_limit.P; underscored key in a find body is 960', async () => {
    const a = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_limit=40`, { token });
    const rec = a.body.response.data.find((r: any) => r.portalDataInfo[0].foundCount >= 2);
    assert.ok(rec, 'some contact has two or more contact details');
    const info = rec.portalDataInfo[0];
    assert.equal(info.portalObjectName, 'Contact_Details');
    assert.equal(info.table, 'API_Contact_Details');
    const row = rec.portalData.Contact_Details[0];
    assert.equal(typeof row.recordId, 'string');
    assert.ok('API_Contact_Details::ph' in row);
    const b = await call(
      `${dataBase(sim)}/layouts/API_Contacts/records/${rec.recordId}?_offset.Contact_Details=2&_limit.Contact_Details=1`,
      { token },
    );
    const r2 = b.body.response.data[0];
    assert.equal(r2.portalData.Contact_Details.length, 1);
    assert.equal(r2.portalData.Contact_Details[0].recordId, rec.portalData.Contact_Details[1].recordId);
    assert.equal(r2.portalDataInfo[0].returnedCount, 1);
    const url = `${dataBase(sim)}/layouts/API_Contacts/_find`;
    let c = await call(url, {
      method: 'POST',
      token,
      json: { query: [{ id: rec.fieldData.id }], 'limit.Contact_Details': '1' },
    });
    assert.equal(c.body.response.data[0].portalData.Contact_Details.length, 1);
    c = await call(url, {
      method: 'POST',
      token,
      json: { query: [{ id: rec.fieldData.id }], '_limit.Contact_Details': '1' },
    });
    assert.deepEqual([c.status, code(c)], [400, '960']);
  });

  test('dateformats 0/1/2 render dates and timestamps US, file locale (day first) and ISO', async () => {
    const truth = (await admin(sim, '/truth/tables/API_Docs')).records;
    const r = truth.find((x: any) => x.fieldData.NexusExportDate !== '');
    const [y, m, d] = r.fieldData.NexusExportDate.split('-');
    const get = async (df: number) =>
      (await call(`${dataBase(sim)}/layouts/API_Docs/records/${r.recordId}?dateformats=${df}`, { token })).body.response
        .data[0].fieldData;
    assert.equal((await get(0)).NexusExportDate, `${m}/${d}/${y}`);
    assert.equal((await get(1)).NexusExportDate, `${d}/${m}/${y}`);
    assert.equal((await get(2)).NexusExportDate, `${y}-${m}-${d}`);
    assert.match((await get(0)).creationTimestamp, /^\d{2}\/\d{2}\/\d{4} \d{2}:\d{2}:\d{2}$/);
    assert.match((await get(2)).creationTimestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
  });

  test('PATCH checks modId (306), returns the new modId, echoes script params as scriptResult', async () => {
    const a = await call(`${dataBase(sim)}/layouts/API_Docs/records?_limit=1`, { token });
    const rec = a.body.response.data[0];
    const url = `${dataBase(sim)}/layouts/API_Docs/records/${rec.recordId}`;
    let p = await call(url, {
      method: 'PATCH',
      token,
      json: { fieldData: { NexusExportDate: '06/20/2024' }, modId: String(Number(rec.modId) + 5) },
    });
    assert.deepEqual([p.status, code(p)], [500, '306']);
    p = await call(url, {
      method: 'PATCH',
      token,
      json: {
        fieldData: { NexusExportDate: '06/20/2024' },
        modId: rec.modId,
        script: 'Mark Exported',
        'script.param': 'run-42',
      },
    });
    assert.deepEqual([p.status, code(p)], [200, '0']);
    assert.equal(p.body.response.modId, String(Number(rec.modId) + 1));
    assert.equal(p.body.response.scriptResult, 'run-42');
    assert.equal(p.body.response.scriptError, '0');
    const after = (await call(`${url}?dateformats=2`, { token })).body.response.data[0];
    assert.equal(after.fieldData.NexusExportDate, '2024-06-20');
    assert.equal(after.modId, p.body.response.modId);
    p = await call(url, { method: 'PATCH', token, json: { fieldData: { NoSuchField: 1 } } });
    assert.deepEqual([p.status, code(p)], [500, '102']);
    const g = await call(`${dataBase(sim)}/layouts/API_Docs/records?_limit=1&script=Echo&script.param=hello`, {
      token,
    });
    assert.equal(g.body.response.scriptResult, 'hello');
  });

  test('a records request on an empty layout is 500/101', async () => {
    const empty = await startSimulator({ preset: 'tiny', scale: 0 });
    try {
      const t = await login(empty);
      const a = await call(`${dataBase(empty)}/layouts/API_Docs/records?_offset=1`, { token: t });
      assert.deepEqual([a.status, code(a)], [500, '101']);
    } finally {
      await empty.close();
    }
  });

  test('containers: URL shape, 302 + HttpOnly cookie, bytes with Content-Type/Length/Disposition, 401 without cookie, expiry', async () => {
    const truth = (await admin(sim, '/truth/containers?table=API_Docs')).containers;
    const ok = truth.find((c: any) => c.state === 'ok');
    const rec = (await admin(sim, '/truth/tables/API_Docs')).records.find((r: any) => r.recordId === ok.recordId);
    const a = await call(`${dataBase(sim)}/layouts/API_Docs/records/${rec.recordId}`, { token });
    const url: string = a.body.response.data[0].fieldData.Doc;
    assert.match(
      url,
      /^http:\/\/127\.0\.0\.1:\d+\/Streaming_SSL\/MainDB\/[0-9A-F]{64}(\.[a-z]+)?\?RCType=EmbeddedRCFileProcessor$/,
    );
    assert.ok(!url.includes(encodeURIComponent(ok.filename)));
    const first = await fetch(url, { redirect: 'manual' });
    assert.equal(first.status, 302);
    const setCookie = first.headers.get('set-cookie')!;
    assert.match(setCookie, /^X-FMS-Session-Key=[^;]+;.*HttpOnly/);
    const location = new URL(first.headers.get('location')!, url).toString();
    const noCookie = await fetch(location, { redirect: 'manual' });
    assert.equal(noCookie.status, 401);
    const d = await download(url);
    assert.equal(d.status, 200);
    assert.equal(d.headers.get('content-type'), ok.contentType);
    assert.equal(Number(d.headers.get('content-length')), ok.size);
    assert.match(d.headers.get('content-disposition')!, /^attachment; filename=/);
    assert.equal(d.bytes.length, ok.size);
    assert.equal(createHash('sha256').update(d.bytes).digest('hex'), ok.sha256);
    await new Promise((r) => setTimeout(r, 400));
    const stale = await fetch(url, { redirect: 'manual' });
    assert.equal(stale.status, 401);
    sim.setFaults({ expiredUrlStatus: 404 });
    assert.equal((await fetch(url, { redirect: 'manual' })).status, 404);
    sim.setFaults({ expiredUrlStatus: 401 });
  });

  test('empty containers are "" and broken containers fail every time (500 or a truncated body)', async () => {
    token = await login(sim);
    const truth = (await admin(sim, '/truth/containers?table=API_Docs')).containers;
    const empty = truth.find((c: any) => c.state === 'empty');
    const broken = truth.filter((c: any) => c.state === 'broken');
    const a = await call(`${dataBase(sim)}/layouts/API_Docs/records/${empty.recordId}`, { token });
    assert.equal(a.body.response.data[0].fieldData.Doc, '');
    assert.ok(broken.length > 0);
    for (const b of broken) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = await call(`${dataBase(sim)}/layouts/API_Docs/records/${b.recordId}`, { token });
        const url = r.body.response.data[0].fieldData.Doc;
        const outcome = await download(url).then(
          (d) => (d.status === 200 && d.bytes.length === b.size ? 'complete' : `failed ${d.status}`),
          () => 'failed stream',
        );
        assert.notEqual(outcome, 'complete');
      }
    }
  });
});
