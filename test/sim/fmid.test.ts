// Claris ID (FileMaker Cloud): both APIs take only `FMID` tokens, which the admin port issues and which expire.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RunningSimulator } from '../../sim/server';
import { basic, call, code, dataBase, withSim } from './helpers';

const LIFETIME_MS = 1200;

async function issue(sim: RunningSimulator): Promise<{ token: string; expiresAt: string }> {
  const res = await fetch(`${sim.adminUrl}/fmid/tokens`, { method: 'POST' });
  assert.equal(res.status, 200);
  return (await res.json()) as { token: string; expiresAt: string };
}

const signIn = (sim: RunningSimulator, authorization?: string) =>
  call(`${dataBase(sim)}/sessions`, {
    method: 'POST',
    headers: authorization ? { Authorization: authorization } : {},
    json: {},
  });

const odata = (sim: RunningSimulator, authorization: string) =>
  call(`${sim.url}/fmi/odata/v4/${sim.database}/API_Company?$select=Name&$top=3`, {
    headers: { Authorization: authorization },
  });

const sleepUntil = (iso: string) => new Promise((r) => setTimeout(r, Math.max(0, Date.parse(iso) - Date.now() + 50)));

describe('Claris ID (FMID) host', () => {
  test('tokens from the admin port are JWT-shaped with exp and iat, and live an hour unless set otherwise', async () => {
    await withSim({ preset: 'tiny', auth: 'fmid' }, async (sim) => {
      const before = Date.now();
      const t = await issue(sim);
      const parts = t.token.split('.');
      assert.equal(parts.length, 3);
      const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
      const expiresAt = Date.parse(t.expiresAt);
      assert.ok(Math.abs(expiresAt - before - 3_600_000) < 5_000, t.expiresAt);
      assert.equal(payload.exp, Math.floor(expiresAt / 1000));
      assert.ok(payload.iat <= payload.exp && payload.iat >= Math.floor(before / 1000));
      // The lifetime is a setting, read when a token is issued.
      sim.setFaults({ fmidTokenLifetimeMs: 60_000 });
      const short = await issue(sim);
      assert.ok(Math.abs(Date.parse(short.expiresAt) - Date.now() - 60_000) < 5_000, short.expiresAt);
    });
  });

  test('Data API: sign-in only with a live FMID token (Basic 212, none 10, unknown or expired 952); the session outlives the token', async () => {
    await withSim({ preset: 'tiny', auth: 'fmid', faults: { fmidTokenLifetimeMs: LIFETIME_MS } }, async (sim) => {
      let a = await signIn(sim, basic(sim));
      assert.deepEqual([a.status, code(a)], [401, '212']);
      a = await signIn(sim);
      assert.deepEqual([a.status, code(a)], [401, '10']);
      a = await signIn(sim, 'FMID eyJhbGciOiJIUzI1NiJ9.e30.bm90LWlzc3VlZA');
      assert.deepEqual([a.status, code(a)], [401, '952']);
      const t = await issue(sim);
      a = await signIn(sim, `FMID ${t.token}`);
      assert.deepEqual([a.status, code(a)], [200, '0']);
      const session = a.headers.get('x-fm-data-access-token')!;
      const records = () => call(`${dataBase(sim)}/layouts/API_Company/records?_limit=2`, { token: session });
      assert.equal((await records()).body.response.data.length, 2);
      const dbs = await call(`${sim.url}/fmi/data/vLatest/databases`, {
        headers: { Authorization: `FMID ${t.token}` },
      });
      assert.deepEqual(dbs.body.response.databases, [{ name: sim.database }]);
      await sleepUntil(t.expiresAt);
      a = await signIn(sim, `FMID ${t.token}`);
      assert.deepEqual([a.status, code(a)], [401, '952']);
      // A Data API session, once open, slides its own 15 minutes.
      const later = await records();
      assert.equal(later.status, 200);
      assert.equal(later.body.response.data.length, 2);
      const fresh = await issue(sim);
      assert.equal((await signIn(sim, `FMID ${fresh.token}`)).status, 200);
    });
  });

  test('OData: every request needs a live FMID token; Basic is 212, an expired token 401 with the error body', async () => {
    await withSim({ preset: 'tiny', auth: 'fmid', faults: { fmidTokenLifetimeMs: LIFETIME_MS } }, async (sim) => {
      const t = await issue(sim);
      let a = await odata(sim, `FMID ${t.token}`);
      assert.equal(a.status, 200);
      const names = sim.dataset
        .table('API_Company')!
        .records.slice(0, 3)
        .map((r) => r.fields.Name);
      assert.deepEqual(
        a.body.value.map((v: { Name: string }) => v.Name),
        names,
      );
      a = await odata(sim, basic(sim));
      assert.deepEqual([a.status, a.body.error.code], [401, '212']);
      assert.match(a.headers.get('www-authenticate')!, /^FMID /);
      await sleepUntil(t.expiresAt);
      a = await odata(sim, `FMID ${t.token}`);
      assert.equal(a.status, 401);
      assert.equal(a.body.error.code, '952');
      assert.equal(typeof a.body.error.message, 'string');
      a = await odata(sim, `FMID ${(await issue(sim)).token}`);
      assert.equal(a.status, 200);
    });
  });

  test('a Basic host refuses FMID tokens on the Data API', async () => {
    await withSim({ preset: 'tiny' }, async (sim) => {
      const a = await signIn(sim, `FMID ${(await issue(sim)).token}`);
      assert.deepEqual([a.status, code(a)], [401, '212']);
      assert.equal((await signIn(sim, basic(sim))).status, 200);
    });
  });
});
