// Small HTTP helpers for the simulator's contract tests; plain fetch so every header and status is visible.
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../../sim/server';

export async function withSim<T>(opts: SimulatorOptions, fn: (sim: RunningSimulator) => Promise<T>): Promise<T> {
  const sim = await startSimulator(opts);
  try {
    return await fn(sim);
  } finally {
    await sim.close();
  }
}

export function basic(sim: RunningSimulator, password = sim.password): string {
  return `Basic ${Buffer.from(`${sim.username}:${password}`).toString('base64')}`;
}

export function dataBase(sim: RunningSimulator, version = 'vLatest'): string {
  return `${sim.url}/fmi/data/${version}/databases/${sim.database}`;
}

export async function login(sim: RunningSimulator): Promise<string> {
  const res = await fetch(`${dataBase(sim)}/sessions`, {
    method: 'POST',
    headers: { Authorization: basic(sim), 'Content-Type': 'application/json' },
    body: '{}',
  });
  if (res.status !== 200) throw new Error(`login failed ${res.status}`);
  await res.arrayBuffer();
  return res.headers.get('x-fm-data-access-token')!;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

export async function call(url: string, init: RequestInit & { token?: string; json?: unknown } = {}): Promise<Answer> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('Authorization', `Bearer ${init.token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(init.json);
  }
  const res = await fetch(url, { ...init, headers, body, redirect: 'manual' });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

export async function admin(sim: RunningSimulator, path: string, json?: unknown): Promise<any> {
  const res = await fetch(
    `${sim.adminUrl}${path}`,
    json === undefined ? {} : { method: 'POST', body: JSON.stringify(json) },
  );
  return res.json();
}

export function code(a: Answer): string {
  return a.body?.messages?.[0]?.code;
}

/** Downloads a container URL the way a careful client does: no redirect following, cookie from the 302 if one comes. */
export async function download(url: string): Promise<{ status: number; bytes: Buffer; headers: Headers }> {
  const first = await fetch(url, { redirect: 'manual' });
  const firstBytes = Buffer.from(await first.arrayBuffer());
  // A server without the handshake answers the bytes at once.
  if (first.status !== 302) return { status: first.status, bytes: firstBytes, headers: first.headers };
  const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
  const second = await fetch(new URL(first.headers.get('location')!, url), { headers: { cookie }, redirect: 'manual' });
  const bytes = Buffer.from(await second.arrayBuffer());
  return { status: second.status, bytes, headers: second.headers };
}
