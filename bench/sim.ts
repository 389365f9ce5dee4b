// Simulator throughput: metadata requests/s and container MB/s with the clean profile. The simulator runs in a child
// process (as it does under `npm start`) so the load client here does not share its event loop.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Agent, Pool, request } from 'undici';

const DURATION_MS = Number(process.env.BENCH_MS ?? 5000);

async function startChild(): Promise<{ url: string; database: string; stop: () => void }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'sim/cli.ts', '--preset', 'seed', '--json', '--size-scale', '1'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const rl = createInterface({ input: child.stdout });
  const [line] = (await once(rl, 'line')) as [string];
  const info = JSON.parse(line) as { url: string; database: string };
  return { ...info, stop: () => child.kill('SIGTERM') };
}

async function loop(
  deadline: number,
  concurrency: number,
  fn: () => Promise<number>,
): Promise<{ n: number; bytes: number }> {
  let n = 0;
  let bytes = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        bytes += await fn();
        n++;
      }
    }),
  );
  return { n, bytes };
}

async function main(): Promise<void> {
  const sim = await startChild();
  try {
    await measure(sim);
  } finally {
    sim.stop();
  }
}

async function measure(sim: { url: string; database: string }): Promise<void> {
  const auth = `Basic ${Buffer.from('admin:sim-password').toString('base64')}`;
  const base = `/fmi/data/vLatest/databases/${sim.database}`;
  const pool = new Pool(sim.url, { connections: 16, pipelining: 1 });
  const login = await pool.request({
    path: `${base}/sessions`,
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/json' },
    body: '{}',
  });
  await login.body.text();
  const token = String(login.headers['x-fm-data-access-token']);
  const bearer = { authorization: `Bearer ${token}` };
  const ids: string[] = [];
  {
    const r = await pool.request({
      path: `${base}/layouts/API_Contacts/records?_limit=3000`,
      method: 'GET',
      headers: bearer,
    });
    const body = (await r.body.json()) as { response: { data: { recordId: string }[] } };
    for (const d of body.response.data) ids.push(d.recordId);
  }

  const get = async (path: string, headers: Record<string, string>) => {
    const r = await pool.request({ path, method: 'GET', headers });
    const buf = Buffer.from(await r.body.arrayBuffer());
    if (r.statusCode !== 200) throw new Error(`${path} -> ${r.statusCode}`);
    return buf.length;
  };

  let i = 0;
  // Warm-up so JIT and caches do not count against the figures.
  await loop(Date.now() + 500, 8, () => get(`${base}/layouts/API_Contacts/records/${ids[i++ % 100]!}`, bearer));

  const single = await loop(Date.now() + DURATION_MS, 16, () =>
    get(`${base}/layouts/API_Contacts/records/${ids[i++ % ids.length]!}`, bearer),
  );
  const page = await loop(Date.now() + DURATION_MS, 16, () =>
    get(`${base}/layouts/API_event/records?_offset=${1 + (i++ % 150) * 100}&_limit=20`, bearer),
  );
  const odata = await loop(Date.now() + DURATION_MS, 16, () =>
    get(`/fmi/odata/v4/${sim.database}/API_Notes?$top=20&$skip=${(i++ % 500) * 20}&$select=id,Date`, {
      authorization: auth,
    }),
  );

  // Containers: the full Data API handshake (302 + cookie) on image_Full renditions, several MB each.
  const urls: string[] = [];
  for (let off = 1; urls.length < 400; off += 100) {
    const r = await pool.request({
      path: `${base}/layouts/API_Images/records?_offset=${off}&_limit=100`,
      method: 'GET',
      headers: bearer,
    });
    const body = (await r.body.json()) as { response: { data: { fieldData: Record<string, string> }[] } };
    for (const d of body.response.data) if (d.fieldData.image_Full) urls.push(d.fieldData.image_Full);
  }
  const agent = new Agent({ connections: 8 });
  let u = 0;
  const download = async () => {
    const url = urls[u++ % urls.length]!;
    const first = await request(url, { dispatcher: agent });
    await first.body.dump();
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    const second = await request(new URL(String(first.headers.location), url), {
      dispatcher: agent,
      headers: { cookie },
    });
    let n = 0;
    for await (const chunk of second.body) n += (chunk as Buffer).length;
    return n;
  };
  const t0 = Date.now();
  // A few image_Full renditions are deliberately broken (truncated mid-stream); they count as zero bytes.
  const cont = await loop(Date.now() + DURATION_MS, 4, () => download().catch(() => 0));
  const contSecs = (Date.now() - t0) / 1000;

  const secs = DURATION_MS / 1000;
  const rows = [
    ['Data API single record (API_Contacts, with portal)', `${Math.round(single.n / secs)} req/s`],
    ['Data API page of 20 (API_event)', `${Math.round(page.n / secs)} req/s`],
    ['OData $top=20 $select (API_Notes)', `${Math.round(odata.n / secs)} req/s`],
    [
      'Container downloads (image_Full, 302+cookie)',
      `${(cont.bytes / 1024 / 1024 / contSecs).toFixed(0)} MB/s (${cont.n} files)`,
    ],
  ];
  console.log('FileMaker simulator benchmark (seed preset, clean profile, simulator in a child process)');
  for (const [k, v] of rows) console.log(`  ${k!.padEnd(50)} ${v}`);
  await pool.close();
  await agent.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
