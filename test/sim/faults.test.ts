import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { admin, basic, call, code, dataBase, download, login, withSim } from './helpers';

describe('faults', () => {
  test('failNextRequests forces deterministic failures with HTML bodies and counts them', async () => {
    await withSim({ preset: 'tiny' }, async (sim) => {
      const token = await login(sim);
      await admin(sim, '/faults', { failNextRequests: { status: 502, count: 3 } });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const a = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_limit=1`, { token });
        statuses.push(a.status);
        if (a.status === 502) {
          assert.equal(a.body, undefined, 'the body is not JSON');
          assert.match(a.text, /<html>/);
        }
      }
      assert.deepEqual(statuses, [502, 502, 502, 200]);
      assert.equal((await admin(sim, '/stats')).faults.forced, 3);
    });
  });

  test('502/503 bursts start at the configured rate and last the configured length', async () => {
    await withSim({ preset: 'tiny', faults: { burstRate: 0.02, burstLength: 5, burstStatus: 503 } }, async (sim) => {
      const token = await login(sim);
      const statuses: number[] = [];
      for (let i = 0; i < 1000; i++) {
        statuses.push((await call(`${dataBase(sim)}/layouts/API_Clinic_Name/records?_limit=1`, { token })).status);
      }
      const failed = statuses.filter((s) => s === 503).length;
      let bursts = 0;
      statuses.forEach((s, i) => {
        if (s === 503 && statuses[i - 1] !== 503) bursts++;
      });
      // Expected ~1000 * 0.02 / (1 + 0.02 * 4) ≈ 18 bursts of 5 requests.
      assert.ok(bursts >= 8 && bursts <= 32, `bursts ${bursts}`);
      assert.ok(failed >= bursts * 5 - 5 && failed <= bursts * 10, `failed ${failed}`);
      assert.equal(sim.stats().faults.burst, failed);
    });
  });

  test('requests beyond maxConcurrentRequests get 502 HTML; latency is applied and counted', async () => {
    await withSim({ preset: 'tiny', faults: { maxConcurrentRequests: 3, latencyMs: 60 } }, async (sim) => {
      const auth = { Authorization: basic(sim) };
      const t0 = Date.now();
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          call(`${sim.url}/fmi/odata/v4/${sim.database}/API_Clinic_Name?$top=1`, { headers: auth }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      assert.equal(statuses.filter((s) => s === 200).length, 3);
      assert.equal(statuses.filter((s) => s === 502).length, 7);
      assert.ok(results.filter((r) => r.status === 502).every((r) => r.text.includes('502 Bad Gateway')));
      assert.ok(Date.now() - t0 >= 55);
      const stats = sim.stats();
      assert.equal(stats.faults.concurrency_502, 7);
      assert.equal(stats.faults.latency, 3);
    });
  });

  test('total bandwidth cap slows container downloads to the configured rate', async () => {
    await withSim({ preset: 'tiny', sizeScale: 0.2, faults: { bandwidthTotalBps: 2_000_000 } }, async (sim) => {
      const containers = (await admin(sim, '/truth/containers?table=API_Images&hashes=false')).containers;
      const ok = containers.filter((c: any) => c.state === 'ok' && c.field === 'image_Full').slice(0, 2);
      const base = `${sim.url}/fmi/odata/v4/${sim.database}`;
      const t0 = Date.now();
      let bytes = 0;
      await Promise.all(
        ok.map(async (c: any) => {
          const res = await fetch(`${base}/API_Images('${c.id}')/image_Full/$value`, {
            headers: { Authorization: basic(sim) },
          });
          bytes += (await res.arrayBuffer()).byteLength;
        }),
      );
      const rate = bytes / ((Date.now() - t0) / 1000);
      assert.ok(bytes > 400_000);
      assert.ok(rate < 2_000_000 * 1.3, `rate ${rate}`);
      assert.ok(sim.stats().faults.bandwidth_wait! > 0);
    });
  });

  test('the outbound-byte quota is shared by both APIs and answers 953 once spent', async () => {
    await withSim({ preset: 'tiny', faults: { quotaBytes: 20_000 } }, async (sim) => {
      const token = await login(sim);
      const auth = { Authorization: basic(sim) };
      let spent = false;
      for (let i = 0; i < 50 && !spent; i++) {
        const o = await call(`${sim.url}/fmi/odata/v4/${sim.database}/API_Company`, { headers: auth });
        if (o.status !== 200) {
          assert.equal(o.body.error.code, '953');
          spent = true;
        }
      }
      assert.ok(spent);
      const d = await call(`${dataBase(sim)}/layouts/API_Company/records`, { token });
      assert.deepEqual([d.status, code(d)], [500, '953']);
      const stats = sim.stats();
      assert.ok(stats.bytes.odata > 0 && stats.bytes.data > 0);
      assert.ok(stats.faults.quota_953! >= 2);
    });
  });

  test('session cap answers 812 (or 956) on login; tokens are freed by logout', async () => {
    await withSim({ preset: 'tiny', faults: { maxSessions: 2 } }, async (sim) => {
      const t1 = await login(sim);
      await login(sim);
      const post = () =>
        call(`${dataBase(sim)}/sessions`, { method: 'POST', headers: { Authorization: basic(sim) }, json: {} });
      let a = await post();
      assert.deepEqual([a.status, code(a)], [500, '812']);
      sim.setFaults({ sessionCapCode: 956 });
      a = await post();
      assert.deepEqual([a.status, code(a)], [500, '956']);
      await call(`${dataBase(sim)}/sessions/${t1}`, { method: 'DELETE' });
      a = await post();
      assert.equal(a.status, 200);
      assert.equal(sim.stats().faults.session_cap, 2);
    });
  });

  test('scheduled restarts invalidate tokens; FileMaker Cloud style login has an empty response body', async () => {
    await withSim(
      { preset: 'tiny', profile: 'fmcloud', faults: { restartEveryMs: 150, latencyMs: 0, latencyJitterMs: 0 } },
      async (sim) => {
        const res = await call(`${dataBase(sim)}/sessions`, {
          method: 'POST',
          headers: { Authorization: basic(sim) },
          json: {},
        });
        assert.deepEqual(res.body.response, {});
        const token = res.headers.get('x-fm-data-access-token')!;
        await new Promise((r) => setTimeout(r, 400));
        const a = await call(`${dataBase(sim)}/layouts/API_Contacts/records?_limit=1`, { token });
        assert.deepEqual([a.status, code(a)], [401, '952']);
        assert.ok(sim.stats().faults.restart! >= 2);
      },
    );
  });

  test('sporadic 401 on container downloads under load fires at its rate', async () => {
    await withSim(
      { preset: 'tiny', sizeScale: 0.01, faults: { container401Rate: 0.5, container401MinConcurrent: 0 } },
      async (sim) => {
        const token = await login(sim);
        const a = await call(`${dataBase(sim)}/layouts/API_Docs/records?_limit=48`, { token });
        // Broken containers fail on their own (a truncated body rejects the fetch); only sound ones measure the rate.
        const truth = await admin(sim, '/truth/containers?table=API_Docs&hashes=false');
        const ok = new Set(truth.containers.filter((c: any) => c.state === 'ok').map((c: any) => c.recordId));
        const urls = a.body.response.data
          .filter((r: any) => ok.has(r.recordId))
          .map((r: any) => r.fieldData.Doc)
          .filter(Boolean);
        let unauthorized = 0;
        let total = 0;
        for (let round = 0; round < 3; round++) {
          for (const u of urls) {
            const d = await download(u);
            total++;
            if (d.status === 401) unauthorized++;
          }
        }
        const share = unauthorized / total;
        assert.ok(share > 0.3 && share < 0.7, `share ${share}`);
        assert.equal(sim.stats().faults.container_401, unauthorized);
      },
    );
  });

  test('broken OData JSON: raw control characters or a bare ? at the configured rate', async () => {
    await withSim({ preset: 'tiny', faults: { brokenJsonRate: 0.3 } }, async (sim) => {
      let broken = 0;
      const n = 200;
      for (let i = 0; i < n; i++) {
        const a = await call(`${sim.url}/fmi/odata/v4/${sim.database}/API_Company?$top=2`, {
          headers: { Authorization: basic(sim) },
        });
        if (a.body === undefined) {
          broken++;
          assert.ok(/[\u0000-\u001f]/.test(a.text) || /":\?/.test(a.text));
        }
      }
      assert.ok(broken / n > 0.2 && broken / n < 0.4, `broken ${broken}`);
      assert.equal(sim.stats().faults.broken_json, broken);
    });
  });

  test('HTML page with HTTP 200 at its rate; requests and bytes are counted per API', async () => {
    await withSim({ preset: 'tiny', faults: { html200Rate: 0.1 } }, async (sim) => {
      const token = await login(sim);
      let html = 0;
      for (let i = 0; i < 300; i++) {
        const a = await call(`${dataBase(sim)}/layouts/API_Clinic_Name/records?_limit=1`, { token });
        if (a.status === 200 && a.body === undefined) html++;
      }
      assert.ok(html > 15 && html < 50, `html ${html}`);
      const s = await admin(sim, '/stats');
      assert.equal(s.faults.html_200, html);
      assert.equal(s.requests.data, 301);
      assert.ok(s.bytes.data > 0);
      await admin(sim, '/reset-stats', {});
      assert.equal((await admin(sim, '/stats')).requests.total, 0);
    });
  });

  test('admin rejects unknown fault settings', async () => {
    await withSim({ preset: 'tiny' }, async (sim) => {
      const res = await fetch(`${sim.adminUrl}/faults`, { method: 'POST', body: JSON.stringify({ latencyMss: 5 }) });
      assert.equal(res.status, 400);
    });
  });
});
