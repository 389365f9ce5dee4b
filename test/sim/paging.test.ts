// The bug behind this project: paging a find on "not yet exported" by offset while marking records exported.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { admin, basic, call, dataBase, login, withSim } from './helpers';

const PAGE = 5;

describe("the clinic's shrinking-find bug", () => {
  test('offset paging over a find on empty NexusExportDate while PATCHing each record loses records', async () => {
    await withSim({ preset: 'tiny' }, async (sim) => {
      const token = await login(sim);
      const truth = (await admin(sim, '/truth/tables/API_Docs')).records;
      const pending = truth.filter((r: any) => r.fieldData.NexusExportDate === '').length;
      const processed = new Set<string>();
      for (let offset = 1; ; offset += PAGE) {
        const a = await call(`${dataBase(sim)}/layouts/API_Docs/_find`, {
          method: 'POST',
          token,
          json: { query: [{ NexusExportDate: '=' }], offset, limit: PAGE },
        });
        const data = a.body?.response?.data ?? [];
        if (data.length === 0) break;
        for (const rec of data) {
          processed.add(rec.fieldData.id);
          await call(`${dataBase(sim)}/layouts/API_Docs/records/${rec.recordId}`, {
            method: 'PATCH',
            token,
            json: { fieldData: { NexusExportDate: '06/20/2024' }, modId: rec.modId },
          });
        }
        if (data.length < PAGE) break;
      }
      assert.ok(processed.size < pending, `naive client processed ${processed.size} of ${pending}`);
      // The records it skipped are still pending in FileMaker: data really changed under the find.
      const left = (await admin(sim, '/truth/tables/API_Docs')).records.filter(
        (r: any) => r.fieldData.NexusExportDate === '',
      );
      assert.equal(left.length, pending - processed.size);
    });
  });

  test('collecting the stable sorted id set first (OData $select=id&$orderby=id) and processing by id loses none', async () => {
    await withSim({ preset: 'tiny', faults: { odataPageCap: 7 } }, async (sim) => {
      const token = await login(sim);
      const truth = (await admin(sim, '/truth/tables/API_Docs')).records;
      const pendingIds = truth.filter((r: any) => r.fieldData.NexusExportDate === '').map((r: any) => r.fieldData.id);
      const ids: string[] = [];
      const base = `${sim.url}/fmi/odata/v4/${sim.database}`;
      let next: string | undefined =
        `${base}/API_Docs?$select="id"&$orderby="id"&$filter=${encodeURIComponent('NexusExportDate eq null')}`;
      while (next) {
        const a = await call(next, { headers: { Authorization: basic(sim) } });
        ids.push(...a.body.value.map((v: any) => v.id));
        next = a.body['@nextLink'];
      }
      assert.equal(new Set(ids).size, ids.length);
      for (const id of ids) {
        const f = await call(`${dataBase(sim)}/layouts/API_Docs/_find`, {
          method: 'POST',
          token,
          json: { query: [{ id: `==${id}` }] },
        });
        const rec = f.body.response.data[0];
        const p = await call(`${dataBase(sim)}/layouts/API_Docs/records/${rec.recordId}`, {
          method: 'PATCH',
          token,
          json: { fieldData: { NexusExportDate: '06/20/2024' }, modId: rec.modId },
        });
        assert.equal(p.status, 200);
      }
      assert.deepEqual([...ids].sort(), [...pendingIds].sort());
      const left = (await admin(sim, '/truth/tables/API_Docs')).records.filter(
        (r: any) => r.fieldData.NexusExportDate === '',
      );
      assert.equal(left.length, 0);
    });
  });
});
