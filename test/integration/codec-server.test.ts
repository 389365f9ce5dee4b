import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { defaultPayloadConverter } from '@temporalio/common';
import { request } from 'undici';
import { createPayloadCodec, generateKeySpec } from '../../src/codec/payload-codec';
import { startCodecServer, type CodecServer } from '../../src/codec/server';
import { createLogger } from '../../src/logger';

const UI_ORIGIN = 'http://localhost:8233';
const MARKER = 'Bartholomew-Testpatient-DOB-1961-11-02';
const logLines: string[] = [];
const logger = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString('utf8'));
      cb();
    },
  }),
});
const codec = createPayloadCodec(generateKeySpec('k1'));
let server: CodecServer;

before(async () => {
  server = await startCodecServer({ codec, port: 0, corsOrigins: [UI_ORIGIN], logger });
});
after(async () => {
  await server.close();
});

interface WireBody {
  payloads: { metadata: Record<string, string>; data: string }[];
  error?: string;
  message?: string;
}
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
  const res = await request(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, headers: res.headers, json: (await res.body.json()) as WireBody };
};

void test('POST /encode then /decode round-trips proto-JSON payloads and hides the plaintext', async () => {
  const plain = { metadata: { encoding: b64('json/plain') }, data: b64(JSON.stringify({ patient: MARKER })) };
  const enc = await post('/encode', { payloads: [plain] });
  assert.equal(enc.status, 200);
  assert.equal(enc.json.payloads.length, 1);
  const encrypted = enc.json.payloads[0]!;
  assert.equal(Buffer.from(encrypted.metadata.encoding!, 'base64').toString(), 'binary/encrypted');
  assert.equal(Buffer.from(encrypted.metadata['encryption-key-id']!, 'base64').toString(), 'k1');
  assert.equal(JSON.stringify(enc.json).includes(MARKER), false);
  assert.equal(Buffer.from(encrypted.data, 'base64').includes(MARKER), false);

  const dec = await post('/decode', { payloads: [encrypted] }, { origin: UI_ORIGIN });
  assert.equal(dec.status, 200);
  assert.equal(dec.headers['access-control-allow-origin'], UI_ORIGIN);
  assert.deepEqual(dec.json.payloads, [plain]);

  assert.equal(logLines.length > 0, true, 'requests are logged');
  assert.equal(logLines.join('').includes(MARKER), false, 'payload contents never reach the log');
  assert.equal(logLines.join('').includes(encrypted.data), false);
});

void test('payloads encrypted by a worker decode through the server (CLI namespace path form)', async () => {
  const [workerSide] = await codec.encode([defaultPayloadConverter.toPayload({ note: MARKER })]);
  const wire = {
    metadata: Object.fromEntries(
      Object.entries(workerSide!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(workerSide!.data!).toString('base64'),
  };
  const dec = await post('/default/decode', { payloads: [wire] });
  assert.equal(dec.status, 200);
  const back = dec.json.payloads[0]!;
  const value = defaultPayloadConverter.fromPayload({
    metadata: { encoding: Buffer.from(back.metadata.encoding!, 'base64') },
    data: Buffer.from(back.data, 'base64'),
  });
  assert.deepEqual(value, { note: MARKER });
});

void test('CORS preflight answers the allowed origin and refuses a foreign one', async () => {
  const preflight = (origin: string) =>
    request(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-namespace,authorization',
      },
    });
  const ok = await preflight(`${UI_ORIGIN}`);
  await ok.body.dump();
  assert.equal(ok.statusCode, 204);
  assert.equal(ok.headers['access-control-allow-origin'], UI_ORIGIN);
  const allowHeaders = String(ok.headers['access-control-allow-headers']).toLowerCase();
  for (const h of ['content-type', 'x-namespace', 'authorization']) assert.ok(allowHeaders.includes(h), h);
  assert.match(String(ok.headers['access-control-allow-methods']), /POST/);

  const foreign = await preflight('https://evil.example');
  await foreign.body.dump();
  assert.equal(foreign.statusCode, 403);
  assert.equal(foreign.headers['access-control-allow-origin'], undefined);

  const foreignPost = await post('/decode', { payloads: [] }, { origin: 'https://evil.example' });
  assert.equal(foreignPost.status, 403);
});

void test('a payload under an unknown key id gets a 422 naming the key id, and bad bodies a 400', async () => {
  const [other] = await createPayloadCodec(generateKeySpec('retired-key')).encode([
    defaultPayloadConverter.toPayload(MARKER),
  ]);
  const wire = {
    metadata: Object.fromEntries(
      Object.entries(other!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(other!.data!).toString('base64'),
  };
  const res = await post('/decode', { payloads: [wire] });
  assert.equal(res.status, 422);
  assert.equal(res.json.error, 'PAYLOAD_KEY_UNKNOWN');
  assert.match(res.json.message ?? '', /retired-key/);

  assert.equal((await post('/decode', { nope: 1 })).status, 400);
  assert.equal((await post('/decode', { payloads: [{ metadata: { encoding: 'not base64!' } }] })).status, 400);
  assert.equal((await post('/elsewhere', { payloads: [] })).status, 404);
});
