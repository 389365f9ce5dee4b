import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { admin, basic, call } from './helpers';

describe('OData v4 contract', () => {
  let sim: RunningSimulator;
  let base: string;
  let auth: { Authorization: string };
  const get = (path: string, headers: Record<string, string> = {}) =>
    call(`${base}${path}`, { headers: { ...auth, ...headers } });
  before(async () => {
    sim = await startSimulator({ preset: 'tiny', sizeScale: 0.01 });
    base = `${sim.url}/fmi/odata/v4/${sim.database}`;
    auth = { Authorization: basic(sim) };
  });
  after(() => sim.close());

  test('every request needs auth: no header, a wrong password or FMID on a Basic host is 401 with the error body', async () => {
    let a = await call(`${base}/API_Contacts`);
    assert.equal(a.status, 401);
    assert.equal(a.body.error.code, '212');
    a = await call(`${base}/API_Contacts`, { headers: { Authorization: basic(sim, 'wrong') } });
    assert.equal(a.status, 401);
    a = await call(`${base}/API_Contacts?$top=1`, { headers: { Authorization: `FMID ${sim.issueFmidToken().token}` } });
    assert.deepEqual([a.status, a.body.error.code], [401, '212']);
    a = await call(`${base}/API_Contacts?$top=1`, { headers: auth });
    assert.equal(a.status, 200);
  });

  test('service documents list the database and every table, including one whose name has a space', async () => {
    const root = await call(`${sim.url}/fmi/odata/v4`, { headers: auth });
    assert.equal(root.body.value[0].name, sim.database);
    const svc = await get('');
    const names = svc.body.value.map((v: any) => v.name);
    assert.ok(names.includes('API_Images'));
    assert.ok(names.includes('Clinic Settings'));
    const spaced = await get('/Clinic%20Settings');
    assert.equal(spaced.status, 200);
    assert.ok(spaced.body.value.length > 0);
  });

  test('$metadata is EDMX with containers as Edm.Binary and ROWID/ROWMODID', async () => {
    const a = await get('/$metadata');
    assert.equal(a.status, 200);
    assert.match(a.headers.get('content-type')!, /xml/);
    assert.match(a.text, /<edmx:Edmx Version="4.0"/);
    assert.match(a.text, /<Property Name="Doc" Type="Edm.Binary"/);
    assert.match(a.text, /<Property Name="image_Full" Type="Edm.Binary"/);
    assert.match(a.text, /<Property Name="ROWID" Type="Edm.Decimal"\/>/);
    assert.match(a.text, /<Property Name="ROWMODID"/);
  });

  test('collections: $top/$skip/$select/$orderby/$count=true, null for empty, containers left out', async () => {
    const truth = (await admin(sim, '/truth/tables/API_Docs')).records;
    const ids = truth.map((r: any) => r.fieldData.id).sort();
    const a = await get('/API_Docs?$top=5&$skip=2&$orderby="id"&$count=true');
    assert.equal(a.body['@count'], truth.length);
    assert.match(a.body['@context'], /\$metadata#API_Docs$/);
    assert.deepEqual(
      a.body.value.map((v: any) => v.id),
      ids.slice(2, 7),
    );
    assert.ok(!('Doc' in a.body.value[0]));
    const empty = truth.find((r: any) => r.fieldData.NexusExportDate === '');
    const one = await get(`/API_Docs?$filter="id" eq '${empty.fieldData.id}'`);
    assert.equal(one.body.value[0].NexusExportDate, null);
    const sel = await get('/API_Docs?$select="id",ROWID,ROWMODID&$top=1');
    assert.deepEqual(
      Object.keys(sel.body.value[0]).filter((k) => !k.startsWith('@')),
      ['id', 'ROWID', 'ROWMODID'],
    );
    const desc = await get('/API_Docs?$orderby=num desc&$select=num');
    const nums = desc.body.value.map((v: any) => v.num);
    assert.deepEqual(
      nums,
      [...nums].sort((x: number, y: number) => y - x),
    );
    const cont = await get('/API_Docs?$select=Doc');
    assert.equal(cont.status, 400);
  });

  test('/{table}/$count is a bare integer and honours $filter', async () => {
    const truth = (await admin(sim, '/truth/tables/API_Referrer')).records;
    const a = await get('/API_Referrer/$count');
    assert.equal(a.text, String(truth.length));
    const archived = truth.filter((r: any) => r.fieldData.RECORD_ACTIVE_INDICATOR === 'Archived').length;
    const b = await get(
      `/API_Referrer/$count?$filter=${encodeURIComponent(`"RECORD_ACTIVE_INDICATOR" eq 'Archived'`)}`,
    );
    assert.equal(b.text, String(archived));
  });

  test('$filter: eq/ne/gt/ge/lt/le on strings, numbers, dates, timestamps; ne null; and/or; parentheses; quoted names', async () => {
    const docs = (await admin(sim, '/truth/tables/API_Docs')).records;
    const count = async (table: string, filter: string) =>
      Number((await get(`/${table}/$count?$filter=${encodeURIComponent(filter)}`)).text);
    const f = (pred: (r: any) => boolean) => docs.filter((r: any) => pred(r.fieldData)).length;
    assert.equal(
      await count('API_Docs', 'num gt 50000'),
      f((r) => r.num > 50000),
    );
    assert.equal(
      await count('API_Docs', 'num le 50000'),
      f((r) => r.num <= 50000),
    );
    assert.equal(
      await count('API_Docs', 'NexusExportDate eq null'),
      f((r) => r.NexusExportDate === ''),
    );
    assert.equal(
      await count('API_Docs', 'NexusExportDate ne null'),
      f((r) => r.NexusExportDate !== ''),
    );
    assert.equal(
      await count('API_Docs', 'NexusExportDate ge 2024-03-01'),
      f((r) => r.NexusExportDate !== '' && r.NexusExportDate >= '2024-03-01'),
    );
    assert.equal(
      await count('API_Docs', 'creationTimestamp lt 2019-01-01T00:00:00Z'),
      f((r) => r.creationTimestamp < '2019-01-01T00:00:00'),
    );
    assert.equal(
      await count('API_Docs', "(Type eq 'invoice' or Type eq 'referral') and num ge 0"),
      f((r) => ['invoice', 'referral'].includes(String(r.Type).toLowerCase())),
    );
    assert.equal(
      await count('API_Docs', "Type ne 'invoice'"),
      f((r) => String(r.Type).toLowerCase() !== 'invoice'),
    );
    const contacts = (await admin(sim, '/truth/tables/API_Contacts')).records;
    assert.equal(
      await count('API_Contacts', '"Health Number" ne null'),
      contacts.filter((r: any) => r.fieldData['Health Number'] !== '').length,
    );
    const settings = await get(`/Clinic%20Settings?$filter=${encodeURIComponent('"Number Value" gt 5')}`);
    assert.equal(settings.status, 200);
  });

  test('names Claris says to quote (id in any case, _, space, dot) are refused bare with 400/-1002 in $select, $orderby and $filter, and served quoted', async () => {
    const cases = [
      { table: 'API_Docs', bare: 'id', field: 'id' },
      { table: 'API_Docs', bare: 'ID', field: 'id' },
      { table: 'API_Docs', bare: 'Id', field: 'id' },
      { table: 'API_Referrer', bare: 'RECORD_ACTIVE_INDICATOR', field: 'RECORD_ACTIVE_INDICATOR' },
      { table: 'API_Messages', bare: '_kf_ContactID', field: '_kf_ContactID' },
      { table: 'API_Contacts', bare: 'Health Number', field: 'Health Number' },
      { table: 'API_Contact_Details', bare: 'id.key', field: 'id.key' },
    ];
    const q = (v: string) => encodeURIComponent(v);
    for (const c of cases) {
      const quoted = `"${c.field}"`;
      const refused = [
        `$select=${q(c.bare)}`,
        `$orderby=${q(c.bare)}`,
        `$orderby=${q(`${c.bare} desc`)}`,
        `$filter=${q(`${c.bare} ne null`)}`,
        `$select=${q(`${quoted},${c.bare}`)}`,
        `$filter=${q(`${quoted} ne null and ${c.bare} ne null`)}`,
      ];
      for (const query of refused) {
        const a = await get(`/${c.table}?${query}`);
        assert.deepEqual([a.status, a.body?.error?.code], [400, '-1002'], `${c.table}?${decodeURIComponent(query)}`);
        assert.equal(typeof a.body.error.message, 'string');
      }
      const count = await get(`/${c.table}/$count?$filter=${q(`${c.bare} ne null`)}`);
      assert.deepEqual([count.status, count.body?.error?.code], [400, '-1002']);
      const truth = (await admin(sim, `/truth/tables/${encodeURIComponent(c.table)}`)).records;
      const want = truth
        .map((r: any) => r.fieldData[c.field])
        .filter((v: string) => v !== '')
        .sort();
      const a = await get(
        `/${c.table}?$select=${q(quoted)}&$orderby=${q(`${quoted} desc`)}&$filter=${q(`${quoted} ne null`)}`,
      );
      assert.equal(a.status, 200, `${c.table} quoted ${quoted}`);
      assert.deepEqual(
        Object.keys(a.body.value[0]).filter((k) => !k.startsWith('@')),
        [c.field],
      );
      assert.deepEqual(a.body.value.map((v: any) => v[c.field]).sort(), want);
    }
    // ROWID and ROWMODID are plain letters: bare or quoted.
    for (const sel of ['ROWID,ROWMODID', '"ROWID","ROWMODID"']) {
      const a = await get(
        `/API_Docs?$select=${q(sel)}&$orderby=${q(sel.split(',')[0]!)}&$filter=${q(`${sel.split(',')[0]} gt 0`)}`,
      );
      assert.equal(a.status, 200, sel);
      assert.deepEqual(
        Object.keys(a.body.value[0]).filter((k) => !k.startsWith('@')),
        ['ROWID', 'ROWMODID'],
      );
    }
    // A quote inside a quoted name is doubled: the name parses (and is then unknown), not a syntax error.
    for (const query of [
      `$select=${q('"no""such"')}`,
      `$orderby=${q('"no""such" asc')}`,
      `$filter=${q('"no""such" eq 1')}`,
    ]) {
      const a = await get(`/API_Docs?${query}`);
      assert.deepEqual([a.status, a.body.error.code], [400, '8309'], query);
      assert.match(a.body.error.message, /no"such/);
    }
  });

  test('with odataStrictNames off, bare names that need quoting are served as before', async () => {
    sim.setFaults({ odataStrictNames: false });
    try {
      const a = await get(
        `/API_Referrer?$select=id,RECORD_ACTIVE_INDICATOR&$orderby=id&$filter=${encodeURIComponent('RECORD_ACTIVE_INDICATOR ne null')}`,
      );
      assert.equal(a.status, 200);
      const truth = (await admin(sim, '/truth/tables/API_Referrer')).records;
      assert.deepEqual(
        a.body.value.map((v: any) => v.id),
        truth
          .filter((r: any) => r.fieldData.RECORD_ACTIVE_INDICATOR !== '')
          .map((r: any) => r.fieldData.id)
          .sort(),
      );
    } finally {
      sim.setFaults({ odataStrictNames: true });
    }
  });

  test('errors: -1002 for bad syntax (400), 8309 for an unknown field (400), -1023 for a missing record (404)', async () => {
    let a = await get(`/API_Docs?$filter=${encodeURIComponent('num gt')}`);
    assert.deepEqual([a.status, a.body.error.code], [400, '-1002']);
    a = await get(`/API_Docs?$filter=${encodeURIComponent("nope eq 'x'")}`);
    assert.deepEqual([a.status, a.body.error.code], [400, '8309']);
    a = await get('/API_Docs?$select=nope');
    assert.deepEqual([a.status, a.body.error.code], [400, '8309']);
    a = await get("/API_Docs('00000000-0000-4000-8000-000000000000')");
    assert.deepEqual([a.status, a.body.error.code], [404, '-1023']);
    assert.equal(typeof a.body.error.message, 'string');
  });

  test("records by ('UUID') and by numeric ROWID; containers only via /$value with Content-Type and Content-Disposition", async () => {
    const containers = (await admin(sim, '/truth/containers?table=API_Docs')).containers;
    const ok = containers.find((c: any) => c.state === 'ok');
    const byId = await get(`/API_Docs('${ok.id}')`);
    assert.equal(byId.status, 200);
    assert.equal(byId.body.id, ok.id);
    assert.ok(!('Doc' in byId.body));
    const byRow = await get(`/API_Docs(${ok.recordId})`);
    assert.equal(byRow.body.id, ok.id);
    const res = await fetch(`${base}/API_Docs('${ok.id}')/Doc/$value`, { headers: auth });
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), ok.contentType);
    assert.match(res.headers.get('content-disposition')!, /attachment; filename=/);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), ok.sha256);
  });

  test('10,000-record cap (configurable) gives a next link that pages to the end; both annotation spellings', async () => {
    sim.setFaults({ odataPageCap: 7 });
    try {
      const truth = (await admin(sim, '/truth/tables/API_Notes')).records;
      const seen: string[] = [];
      let next: string | undefined = `${base}/API_Notes?$select="id"&$orderby="id"&$count=true`;
      let pages = 0;
      while (next) {
        const a = await call(next, { headers: auth });
        seen.push(...a.body.value.map((v: any) => v.id));
        next = a.body['@nextLink'];
        pages++;
      }
      assert.equal(pages, Math.ceil(truth.length / 7));
      assert.deepEqual(seen, truth.map((r: any) => r.fieldData.id).sort());
      sim.setFaults({ odataAnnotations: 'odata' });
      const b = await get('/API_Notes?$count=true');
      assert.ok(b.body['@odata.context']);
      assert.equal(b.body['@odata.count'], truth.length);
      assert.ok(b.body['@odata.nextLink']);
      assert.ok(!('@count' in b.body));
    } finally {
      sim.setFaults({ odataPageCap: 10_000, odataAnnotations: 'plain' });
    }
  });
});
