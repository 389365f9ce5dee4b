import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SimTable } from '../../sim/dataset';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { admin, basic, call, code, dataBase, download, login, withSim } from './helpers';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until(done: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('live clinic file: mutations, the live option and the journal', () => {
  let sim: RunningSimulator;
  let token: string;
  let odata: string;
  let auth: { Authorization: string };
  const od = (path: string) => call(`${odata}${path}`, { headers: auth });
  const layout = (t: string) => `${dataBase(sim)}/layouts/${encodeURIComponent(t)}`;
  const truthRecords = async (t: string) => (await admin(sim, `/truth/tables/${encodeURIComponent(t)}`)).records;
  const truthContainer = async (t: string, recordId: number, field: string) =>
    (await admin(sim, `/truth/containers?table=${t}`)).containers.find(
      (c: any) => c.recordId === String(recordId) && c.field === field,
    );
  const journal = async (since = 0) => admin(sim, `/truth/journal?since=${since}`);

  before(async () => {
    sim = await startSimulator({ preset: 'tiny', sizeScale: 0.01 });
    token = await login(sim);
    odata = `${sim.url}/fmi/odata/v4/${sim.database}`;
    auth = { Authorization: basic(sim) };
  });
  after(() => sim.close());

  test('an insert gets a record id above every other and a fresh UUID, and shows in the journal, truth and both APIs', async () => {
    const before = await truthRecords('API_Docs');
    const maxBefore = Math.max(...before.map((r: any) => Number(r.recordId)));
    const seq = (await journal()).lastSeq;
    const { results } = await admin(sim, '/mutations', [
      { op: 'insert', table: 'API_Docs', fields: { Type: 'Inserted Letter' } },
    ]);
    const [r] = results;
    assert.equal(r.op, 'insert');
    assert.ok(r.recordId > maxBefore, 'FileMaker never reuses record ids');
    assert.match(r.id, /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
    assert.ok(!before.some((x: any) => x.fieldData.id === r.id));

    const j = await journal(seq);
    assert.deepEqual(
      j.entries.map((e: any) => [e.op, e.table, e.recordId, e.id, e.modId, e.source]),
      [['insert', 'API_Docs', r.recordId, r.id, 0, 'admin']],
    );
    assert.match(j.entries[0].at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const after = await truthRecords('API_Docs');
    assert.equal(after.length, before.length + 1);
    assert.equal(after.at(-1).fieldData.Type, 'Inserted Letter');
    const tables = (await admin(sim, '/truth/tables')).tables;
    assert.equal(tables.find((t: any) => t.name === 'API_Docs').count, before.length + 1);

    const got = await call(`${layout('API_Docs')}/records/${r.recordId}`, { token });
    assert.equal(got.body.response.data[0].fieldData.id, r.id);
    assert.equal(got.body.response.data[0].fieldData.Type, 'Inserted Letter');
    const list = await call(`${layout('API_Docs')}/records?_limit=1`, { token });
    assert.equal(list.body.response.dataInfo.totalRecordCount, before.length + 1);
    const found = await call(`${layout('API_Docs')}/_find`, {
      method: 'POST',
      token,
      json: { query: [{ id: `==${r.id}` }] },
    });
    assert.equal(found.body.response.data[0].recordId, String(r.recordId));

    assert.equal((await od('/API_Docs/$count')).text, String(before.length + 1));
    const newer = await od(`/API_Docs?$filter=ROWID gt ${maxBefore}&$select=ROWID,Type`);
    assert.deepEqual(
      newer.body.value.map((v: any) => [v.ROWID, v.Type]),
      [[r.recordId, 'Inserted Letter']],
    );
    assert.equal((await od(`/API_Docs('${r.id}')?$select=ROWID`)).body.ROWID, r.recordId);

    const c = await truthContainer('API_Docs', r.recordId, 'Doc');
    if (c.state === 'ok') {
      const res = await fetch(`${odata}/API_Docs(${r.recordId})/Doc/$value`, { headers: auth });
      assert.equal(sha(Buffer.from(await res.arrayBuffer())), c.sha256);
    }
  });

  test('a delete removes the record from truth, the Data API (101) and OData (-1023, $count, ROWID filter)', async () => {
    const before = await truthRecords('API_Docs');
    const victim = before.find((r: any) => Number(r.recordId) > 20);
    const rid = Number(victim.recordId);
    const id = victim.fieldData.id;
    const url = (await call(`${layout('API_Docs')}/records/${rid}`, { token })).body.response.data[0].fieldData.Doc;
    const { results } = await admin(sim, '/mutations', [{ op: 'delete', table: 'API_Docs', recordId: rid }]);
    assert.deepEqual(results, [{ op: 'delete', table: 'API_Docs', recordId: rid, id }]);
    const last = (await journal()).entries.at(-1);
    assert.deepEqual([last.op, last.recordId, last.id, last.modId], ['delete', rid, id, Number(victim.modId)]);

    const after = await truthRecords('API_Docs');
    assert.equal(after.length, before.length - 1);
    assert.ok(!after.some((r: any) => r.fieldData.id === id));
    assert.ok(!(await admin(sim, '/truth/containers?table=API_Docs')).containers.some((c: any) => c.id === id));

    const got = await call(`${layout('API_Docs')}/records/${rid}`, { token });
    assert.equal(code(got), '101');
    const patch = await call(`${layout('API_Docs')}/records/${rid}`, {
      method: 'PATCH',
      token,
      json: { fieldData: { Type: 'x' } },
    });
    assert.equal(code(patch), '101');
    const list = await call(`${layout('API_Docs')}/records?_limit=1000`, { token });
    assert.equal(list.body.response.dataInfo.totalRecordCount, before.length - 1);
    assert.ok(!list.body.response.data.some((r: any) => r.recordId === String(rid)));
    const found = await call(`${layout('API_Docs')}/_find`, {
      method: 'POST',
      token,
      json: { query: [{ id: `==${id}` }] },
    });
    assert.equal(code(found), '401');

    for (const key of [`(${rid})`, `(ROWID=${rid})`, `('${id}')`]) {
      const a = await od(`/API_Docs${key}`);
      assert.equal(a.status, 404, key);
      assert.equal(a.body.error.code, '-1023');
    }
    assert.equal((await od('/API_Docs/$count')).text, String(before.length - 1));
    assert.equal((await od('/API_Docs?$count=true&$top=1')).body['@count'], before.length - 1);
    const around = await od(`/API_Docs?$filter=ROWID gt ${rid - 2} and ROWID lt ${rid + 2}&$select=ROWID`);
    assert.ok(!around.body.value.some((v: any) => v.ROWID === rid));
    const all = await od('/API_Docs?$select=ROWID&$orderby=ROWID');
    assert.deepEqual(
      all.body.value.map((v: any) => v.ROWID),
      after.map((r: any) => Number(r.recordId)),
    );
    if (url) assert.notEqual((await download(url)).status, 200, 'a deleted record serves no container');
  });

  test('paging by ROWID gt <last seen> sees every record that lives through the reading, deletes in between or not', async () => {
    const seen: number[] = [];
    let last = 0;
    let deleted = 0;
    for (;;) {
      const page = await od(`/API_Docs?$filter=ROWID gt ${last}&$orderby=ROWID&$top=7&$select=ROWID&$count=true`);
      const ids = page.body.value.map((v: any) => v.ROWID as number);
      const all = (await truthRecords('API_Docs')).map((r: any) => Number(r.recordId));
      assert.equal(page.body['@count'], all.filter((r: number) => r > last).length);
      if (ids.length === 0) break;
      seen.push(...ids);
      last = ids.at(-1);
      const ahead = all.find((r: number) => r > last + 1);
      if (ahead && deleted++ < 3) {
        await admin(sim, '/mutations', [
          { op: 'delete', table: 'API_Docs', recordId: ahead },
          { op: 'delete', table: 'API_Docs', recordId: ids[0] },
        ]);
      }
    }
    const end = (await truthRecords('API_Docs')).map((r: any) => Number(r.recordId));
    assert.ok(deleted >= 3);
    assert.deepEqual(
      seen.filter((r) => end.includes(r)),
      end,
    );
    const ge = await od(`/API_Docs?$filter=ROWID ge ${end[2]}&$select=ROWID`);
    assert.deepEqual(
      ge.body.value.map((v: any) => v.ROWID),
      end.slice(2),
    );
  });

  test('paging by $skip loses a live record when one already read is deleted between pages', async () => {
    const before = (await truthRecords('API_Notes')).map((r: any) => Number(r.recordId));
    const first = await od('/API_Notes?$orderby=ROWID&$top=10&$select=ROWID');
    await admin(sim, '/mutations', [{ op: 'delete', table: 'API_Notes', recordId: before[0] }]);
    const second = await od('/API_Notes?$orderby=ROWID&$top=10&$skip=10&$select=ROWID');
    const seen = [...first.body.value, ...second.body.value].map((v: any) => v.ROWID);
    assert.ok(!seen.includes(before[10]), 'the record that moved up to position 9 is never read');
    assert.ok((await truthRecords('API_Notes')).some((r: any) => Number(r.recordId) === before[10]));
  });

  test('an update writes the fields and bumps modId in truth, the Data API, OData and the journal', async () => {
    const rec = (await truthRecords('API_Contacts'))[3];
    const rid = Number(rec.recordId);
    const { results } = await admin(sim, '/mutations', [
      { op: 'update', table: 'API_Contacts', recordId: rid, fields: { nameLast: 'Updated-Surname' } },
    ]);
    assert.equal(results[0].recordId, rid);
    const last = (await journal()).entries.at(-1);
    assert.deepEqual([last.op, last.recordId, last.modId], ['update', rid, Number(rec.modId) + 1]);
    const now = (await truthRecords('API_Contacts'))[3];
    assert.equal(now.fieldData.nameLast, 'Updated-Surname');
    assert.equal(Number(now.modId), Number(rec.modId) + 1);
    const got = await call(`${layout('API_Contacts')}/records/${rid}`, { token });
    assert.equal(got.body.response.data[0].fieldData.nameLast, 'Updated-Surname');
    assert.equal(got.body.response.data[0].modId, String(Number(rec.modId) + 1));
    const o = await od(`/API_Contacts(${rid})?$select=nameLast,ROWMODID`);
    assert.deepEqual([o.body.nameLast, o.body.ROWMODID], ['Updated-Surname', Number(rec.modId) + 1]);
  });

  test('a replaced container has new bytes through $value and its Data API URL, and truth gives their sha256', async () => {
    const docs = (await admin(sim, '/truth/containers?table=API_Docs')).containers;
    const old = docs.find((c: any) => c.state === 'ok' && Number(c.recordId) > 5);
    const rid = Number(old.recordId);
    const oldUrl = (await call(`${layout('API_Docs')}/records/${rid}`, { token })).body.response.data[0].fieldData.Doc;
    await admin(sim, '/mutations', [{ op: 'replaceContainer', table: 'API_Docs', recordId: rid, field: 'Doc' }]);
    const last = (await journal()).entries.at(-1);
    assert.deepEqual([last.op, last.recordId, last.field], ['replaceContainer', rid, 'Doc']);
    const now = await truthContainer('API_Docs', rid, 'Doc');
    assert.equal(now.state, 'ok');
    assert.notEqual(now.sha256, old.sha256);
    assert.notEqual(now.size, old.size);
    assert.equal(now.extension, old.extension);

    const res = await fetch(`${odata}/API_Docs(${rid})/Doc/$value`, { headers: auth });
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.length, now.size);
    assert.equal(sha(bytes), now.sha256);
    const rec = (await call(`${layout('API_Docs')}/records/${rid}`, { token })).body.response.data[0];
    assert.notEqual(rec.fieldData.Doc, oldUrl);
    assert.notEqual((await download(oldUrl)).status, 200, 'a URL from before the replacement no longer serves');
    assert.equal(sha((await download(rec.fieldData.Doc)).bytes), now.sha256);
    assert.equal(rec.modId, String(last.modId));
  });

  test('an insert may give an id any value and describe its containers: kind, declared kind, size, name', async () => {
    const [doc, image] = sim.mutate([
      {
        op: 'insert',
        table: 'API_Docs',
        fields: { id: '  ' },
        containers: { Doc: { state: 'ok', kind: 'pdf', declaredKind: 'jpg', size: 3000, filename: '../a.pdf' } },
      },
      { op: 'insert', table: 'API_Images', containers: { image_Full: { state: 'ok', size: 0 }, image_small: {} } },
    ]);
    const d = await truthContainer('API_Docs', doc!.recordId, 'Doc');
    assert.deepEqual([d.state, d.size, d.contentType, d.filename], ['ok', 3000, 'application/pdf', '../a.pdf']);
    assert.equal((await truthRecords('API_Docs')).at(-1).fieldData.id, '  ');
    const res = await fetch(`${odata}/API_Docs(${doc!.recordId})/Doc/$value`, { headers: auth });
    assert.equal(res.headers.get('content-type'), 'image/jpeg', 'FileMaker declares the kind it was put in as');
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-', 'the bytes are a PDF');
    assert.equal(sha(bytes), d.sha256);
    const full = await truthContainer('API_Images', image!.recordId, 'image_Full');
    assert.deepEqual([full.state, full.size], ['ok', 0]);
    const empty = {
      op: 'insert' as const,
      table: 'API_Images',
      containers: { image_Full: { state: 'empty' as const, size: 5 } },
    };
    const [noFull] = sim.mutate([empty]);
    const none = await truthContainer('API_Images', noFull!.recordId, 'image_Full');
    assert.deepEqual([none.state, none.size ?? 0], ['empty', 0], 'empty holds no bytes');
    const rec = (await truthRecords('API_Images')).at(-1);
    assert.notEqual(rec.fieldData.best_image_container, 'image_Full', 'the best container follows the containers');
  });

  test('PATCH writes through the Data API are journaled', async () => {
    const rid = Number((await truthRecords('API_Notes'))[1].recordId);
    const seq = (await journal()).lastSeq;
    const p = await call(`${layout('API_Notes')}/records/${rid}`, {
      method: 'PATCH',
      token,
      json: { fieldData: { 'Note Type': 'Patched' } },
    });
    assert.equal(code(p), '0');
    const j = await journal(seq);
    assert.deepEqual(
      j.entries.map((e: any) => [e.op, e.table, e.recordId, String(e.modId), e.source]),
      [['update', 'API_Notes', rid, p.body.response.modId, 'dataapi']],
    );
  });

  test('a bad mutation list is refused whole with 400 and nothing is applied', async () => {
    const rid = Number((await truthRecords('API_Docs'))[0].recordId);
    const seq = (await journal()).lastSeq;
    const count = (await truthRecords('API_Docs')).length;
    const ok = { op: 'insert', table: 'API_Docs' };
    const bad: unknown[] = [
      [ok, { op: 'explode', table: 'API_Docs' }],
      [ok, { op: 'insert', table: 'API_Nope' }],
      [ok, { op: 'delete', table: 'API_Docs', recordId: 999_999 }],
      [ok, { op: 'delete', table: 'API_Docs', recordId: rid }, { op: 'update', table: 'API_Docs', recordId: rid }],
      [ok, { op: 'update', table: 'API_Docs', fields: { NoSuchField: 1 } }],
      [ok, { op: 'update', table: 'API_Docs', fields: { Doc: 'x' } }],
      [ok, { op: 'replaceContainer', table: 'API_Notes' }],
      [ok, { op: 'delete', table: 'API_Docs', fields: { Type: 'x' } }],
      [ok, { op: 'insert', table: 'API_Docs', recordId: 5 }],
      [ok, { op: 'update', table: 'API_Docs', recordId: rid, containers: { Doc: {} } }],
      [ok, { op: 'insert', table: 'API_Docs', containers: { image_Full: {} } }],
      [ok, { op: 'insert', table: 'API_Docs', containers: { Doc: { kind: 'exe' } } }],
      [ok, { op: 'insert', table: 'API_Docs', containers: { Doc: { size: -1 } } }],
      [ok, { op: 'insert', table: 'API_Docs', containers: { Doc: { bytes: 'x' } } }],
      { op: 'insert', table: 'API_Docs' },
    ];
    for (const list of bad) {
      const res = await fetch(`${sim.adminUrl}/mutations`, { method: 'POST', body: JSON.stringify(list) });
      assert.equal(res.status, 400, JSON.stringify(list));
      assert.ok(((await res.json()) as any).error);
    }
    const res = await fetch(`${sim.adminUrl}/mutations`, { method: 'POST', body: '[{' });
    assert.equal(res.status, 400);
    await res.arrayBuffer();
    assert.equal((await journal()).lastSeq, seq);
    assert.equal((await truthRecords('API_Docs')).length, count);
    assert.throws(() => sim.mutate([{ op: 'delete', table: 'API_Docs', recordId: 999_999 }]), /no record/);
  });
});

describe('live clinic file: reproducible changes', () => {
  const script = [
    { op: 'delete', table: 'API_Notes' },
    { op: 'update', table: 'API_Contacts' },
    { op: 'replaceContainer', table: 'API_Images' },
    { op: 'insert', table: 'API_event' },
  ] as const;
  const shape = (e: any) => [e.op, e.table, e.recordId, e.id, e.modId, e.field];

  test('mutations without a recordId pick the same records on the same seed', async () => {
    const run = () => withSim({ preset: 'tiny', seed: 3 }, async (sim) => sim.mutate([...script]));
    const [a, b] = [await run(), await run()];
    assert.deepEqual(a, b);
    assert.deepEqual(
      a.map((r) => r.op),
      script.map((s) => s.op),
    );
  });

  test('a record picked for a mutation is never one the same list names', async () => {
    for (const seed of [1, 2, 3]) {
      await withSim({ preset: 'tiny', seed }, async (sim) => {
        const ids = sim.dataset.table('API_Clinic_Name')!.records.map((r) => r.recordId);
        const named = ids.slice(0, -1);
        const results = sim.mutate([
          { op: 'delete', table: 'API_Clinic_Name' },
          ...named.map((recordId) => ({ op: 'update' as const, table: 'API_Clinic_Name', recordId })),
        ]);
        assert.equal(results[0]!.recordId, ids.at(-1));
        assert.equal(results.length, ids.length);
      });
    }
  });

  test('a table lists its rows as a plain count until a record is deleted, and never reuses a position', async () => {
    await withSim({ preset: 'tiny' }, async (sim) => {
      const t = sim.dataset.table('API_Notes')!;
      const n = t.generatedCount;
      sim.mutate([{ op: 'insert', table: 'API_Notes' }]);
      assert.equal(t.rows(), n + 1);
      const [del] = sim.mutate([{ op: 'delete', table: 'API_Notes', recordId: SimTable.recordIdOf(2) }]);
      const rows = t.rows();
      assert.ok(rows instanceof Int32Array);
      assert.equal(rows.length, n);
      assert.ok(!rows.includes(2));
      const [ins] = sim.mutate([{ op: 'insert', table: 'API_Notes' }]);
      assert.equal(ins!.recordId, SimTable.recordIdOf(n + 1));
      assert.ok(ins!.recordId > del!.recordId);
      assert.equal(t.count, n + 1);
    });
  });

  test('the live option yields the same journal on the same seed, another on another seed', async () => {
    const live = { insertsPerSecond: 60, updatesPerSecond: 80, deletesPerSecond: 40, replaceContainersPerSecond: 40 };
    const run = (seed: number) =>
      withSim({ preset: 'tiny', sizeScale: 0.01, live: { ...live, seed } }, async (sim) => {
        await until(() => sim.dataset.journal.length >= 60, '60 live changes');
        sim.setLive(null);
        return sim.dataset.journal.slice(0, 60);
      });
    const [a, b, c] = [await run(7), await run(7), await run(8)];
    assert.deepEqual(a.map(shape), b.map(shape));
    assert.notDeepEqual(a.map(shape), c.map(shape));
    assert.deepEqual(new Set(a.map((e) => e.op)), new Set(['insert', 'update', 'delete', 'replaceContainer']));
    assert.ok(a.every((e) => e.source === 'live'));
  });

  test('live changes show in the truth endpoints; PUT /live starts and stops them, GET /live reports them', async () => {
    await withSim({ preset: 'tiny', sizeScale: 0.01 }, async (sim) => {
      assert.equal(await admin(sim, '/live'), null);
      const put = (body: unknown) => fetch(`${sim.adminUrl}/live`, { method: 'PUT', body: JSON.stringify(body) });
      assert.equal((await put({ deletesPerSecond: -1 })).status, 400);
      assert.equal((await put({ updatesPerSecond: 1, tables: ['API_Nope'] })).status, 400);
      const opts = { insertsPerSecond: 50, deletesPerSecond: 50, tables: ['API_Notes'], seed: 2 };
      assert.deepEqual(await (await put(opts)).json(), opts);
      assert.deepEqual(await admin(sim, '/live'), opts);
      await until(() => sim.dataset.journal.length >= 20, '20 live changes');
      assert.equal(await (await put(null)).json(), null);
      const j = (await admin(sim, '/truth/journal')).entries as any[];
      const settled = j.length;
      await new Promise((r) => setTimeout(r, 150));
      assert.equal((await admin(sim, '/truth/journal')).lastSeq, settled, 'no change after PUT /live null');

      const ids = new Set((await admin(sim, '/truth/tables/API_Notes')).records.map((r: any) => Number(r.recordId)));
      const present = new Map<number, boolean>();
      for (const e of j) {
        assert.equal(e.table, 'API_Notes');
        present.set(e.recordId, e.op !== 'delete');
      }
      for (const [rid, alive] of present) assert.equal(ids.has(rid), alive, `record ${rid}`);
      const count = (await admin(sim, '/truth/tables')).tables.find((t: any) => t.name === 'API_Notes').count;
      const net = j.filter((e) => e.op === 'insert').length - j.filter((e) => e.op === 'delete').length;
      assert.equal(count, sim.dataset.table('API_Notes')!.generatedCount + net);
      assert.equal(ids.size, count);
    });
  });
});
