// Simulator throughput: metadata requests/s and container MB/s with the clean profile, and memory as the data set
// grows. The simulator runs in a child process (as it does under `npm start`) so the load client here does not share
// its event loop, and each scale of the memory section gets a fresh process.
//   npm run bench:sim                 both sections
//   npm run bench:sim -- throughput   requests/s and MB/s only
//   npm run bench:sim -- memory       RSS at scale 1, 2 and 4 of the seed preset only
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Agent, Pool, request } from 'undici';

const DURATION_MS = Number(process.env.BENCH_MS ?? 5000);

interface Child {
  url: string;
  database: string;
  pid: number;
  stop: () => Promise<void>;
}

async function startChild(scale = 1): Promise<Child> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'sim/cli.ts', '--preset', 'seed', '--scale', String(scale), '--json', '--size-scale', '1'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const rl = createInterface({ input: child.stdout });
  const [line] = (await once(rl, 'line')) as [string];
  const info = JSON.parse(line) as { url: string; database: string };
  const exited = once(child, 'exit');
  return {
    ...info,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Resident set size of another process in MB, from /proc (Linux). */
function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
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
  const section = process.argv[2] ?? 'all';
  if (!['all', 'throughput', 'memory'].includes(section)) throw new Error(`unknown section ${section}`);
  if (section !== 'memory') {
    const sim = await startChild();
    try {
      await measure(sim);
    } finally {
      await sim.stop();
    }
  }
  if (section !== 'throughput') await memory();
}

/**
 * Memory as the data set grows: for scale 1, 2 and 4 of the seed preset, a fresh simulator process is measured once
 * it has built its data set and again after serving an OData manifest (every id of every table, following next links
 * past the 10,000-record page cap) and a sample of whole records through both APIs.
 */
async function memory(): Promise<void> {
  const scales = [1, 2, 4];
  const rows: { scale: number; records: number; built: number; served: number }[] = [];
  for (const scale of scales) {
    const sim = await startChild(scale);
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const built = rssMb(sim.pid);
      const records = await serveManifest(sim);
      rows.push({ scale, records, built, served: rssMb(sim.pid) });
    } finally {
      await sim.stop();
    }
  }
  console.log('FileMaker simulator memory (seed preset, RSS of a fresh simulator process per scale)');
  console.log(`  ${'scale'.padEnd(6)} ${'records'.padStart(9)} ${'built MB'.padStart(9)} ${'served MB'.padStart(10)}`);
  for (const r of rows) {
    console.log(
      `  ${String(r.scale).padEnd(6)} ${String(r.records).padStart(9)} ${r.built.toFixed(0).padStart(9)} ${r.served.toFixed(0).padStart(10)}`,
    );
  }
  const first = rows[0]!;
  const last = rows[rows.length - 1]!;
  console.log(
    `  growth scale ${first.scale} -> ${last.scale} (${(last.records / first.records).toFixed(1)}x records): ` +
      `built ${(last.built / first.built).toFixed(2)}x, served ${(last.served / first.served).toFixed(2)}x RSS`,
  );
}

async function serveManifest(sim: { url: string; database: string }): Promise<number> {
  const auth = `Basic ${Buffer.from('admin:sim-password').toString('base64')}`;
  const pool = new Pool(sim.url, { connections: 4, pipelining: 1 });
  const json = async (path: string, headers: Record<string, string>, init: { method?: string; body?: string } = {}) => {
    const r = await pool.request({ path, method: init.method ?? 'GET', headers, body: init.body });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`${path} -> ${r.statusCode}`);
    return { headers: r.headers, body: JSON.parse(text) as Record<string, unknown> };
  };
  const odataBase = `/fmi/odata/v4/${encodeURIComponent(sim.database)}`;
  const tables = ((await json(odataBase, { authorization: auth })).body.value as { name: string }[]).map((t) => t.name);
  let total = 0;
  const recordIds = new Map<string, string[]>();
  for (const name of tables) {
    let next: string | undefined = `${odataBase}/${encodeURIComponent(name)}?$select=id,ROWID`;
    const sample: string[] = [];
    while (next) {
      const { body } = await json(next, { authorization: auth });
      const value = body.value as { id: string; ROWID: number }[];
      for (let i = 0; i < value.length; i++) {
        if ((total + i) % 97 === 0) sample.push(String(value[i]!.ROWID));
      }
      total += value.length;
      const link = (body['@odata.nextLink'] ?? body['@nextLink']) as string | undefined;
      next = link ? new URL(link).pathname + new URL(link).search : undefined;
    }
    recordIds.set(name, sample);
  }
  // A sample of whole records: OData by key, and the Data API (with portals) for the layouts.
  const login = await json(
    `/fmi/data/vLatest/databases/${encodeURIComponent(sim.database)}/sessions`,
    {
      authorization: auth,
      'content-type': 'application/json',
    },
    { method: 'POST', body: '{}' },
  );
  const bearer = { authorization: `Bearer ${String(login.headers['x-fm-data-access-token'])}` };
  for (const [name, ids] of recordIds) {
    for (const rid of ids.slice(0, 200)) {
      await json(`${odataBase}/${encodeURIComponent(name)}(${rid})`, { authorization: auth });
      if (name !== 'Clinic Settings')
        await json(
          `/fmi/data/vLatest/databases/${encodeURIComponent(sim.database)}/layouts/${encodeURIComponent(name)}/records/${rid}`,
          bearer,
        );
    }
  }
  await pool.close();
  return total;
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
