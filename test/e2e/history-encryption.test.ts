/**
 * Payload encryption end to end: a client with the codec starts a `reimport` on the real worker (codec on) with a
 * known marker in its input and memo. The history the server keeps — fetched by a client without the codec — holds
 * no plaintext of the marker, and every payload in it is AES-GCM encrypted under the configured key id; sent to the
 * codec server's /decode (as the Web UI and the CLI do) the same payloads decode, and the marker is back.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, type Payload } from '@temporalio/common';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import {
  dataConverterFor,
  generateKeySpec,
  payloadCodecFromConfig,
  startCodecServer,
  type CodecServer,
} from '../../src/codec';
import { loadConfig, type Config } from '../../src/config';
import { createLogger } from '../../src/logger';
import { migrate } from '../../src/store/migrate';
import { startWorker, type RunningWorker } from '../../src/worker';
import { createTestBucket, createTestDatabase, stackEnv } from '../helpers/stack';
import { historyText, payloadsIn } from '../helpers/history';

const KEY_ID = 'history-test';
const MARKER = `Marker-Patient-${randomUUID()}`;

let sim: RunningSimulator;
let worker: RunningWorker;
let connection: Connection;
let codecServer: CodecServer;
let config: Config;
const quiet = createLogger({ level: 'warn', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

before(async () => {
  const env = await stackEnv();
  const db = await createTestDatabase();
  const bucket = await createTestBucket();
  await migrate(db.url);
  sim = await startSimulator({ preset: 'tiny', seed: 3 });
  config = loadConfig({
    ...env,
    DATABASE_URL: db.url,
    S3_BUCKET: bucket,
    FM_URL: sim.url,
    FM_DATABASE: sim.database,
    FM_USERNAME: sim.username,
    FM_PASSWORD: sim.password,
    TEMPORAL_TASK_QUEUE: `history-${randomUUID()}`,
    PAYLOAD_KEYS: generateKeySpec(KEY_ID),
  });
  worker = await startWorker(config, quiet);
  connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
  codecServer = await startCodecServer({
    codec: payloadCodecFromConfig(config),
    port: 0,
    corsOrigins: [],
    logger: quiet,
  });
});

after(async () => {
  await worker?.shutdown();
  await connection?.close();
  await codecServer?.close();
  await sim?.close();
});

const utf8 = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('utf8');
const b64 = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('base64');

test('the raw history holds no plaintext of a marker in the input; through the codec server it decodes', async () => {
  const codecClient = new Client({ connection, dataConverter: dataConverterFor(payloadCodecFromConfig(config)) });
  const rawClient = new Client({ connection });
  const workflowId = `history-${randomUUID()}`;
  // An operator's typo that carries free text: the worker must decrypt the input to refuse it as INVALID_INPUT.
  const input = { dryRun: true, phases: ['patients'], note: MARKER };
  const handle = await codecClient.workflow.start('reimport', {
    taskQueue: config.temporal.taskQueue,
    workflowId,
    args: [input],
    memo: { operatorNote: MARKER },
  });
  await assert.rejects(handle.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError, 'the workflow fails');
    assert.ok(err.cause instanceof ApplicationFailure, 'with an application failure');
    assert.equal(err.cause.type, 'INVALID_INPUT', 'the worker decrypted and read the input');
    assert.match(err.cause.message, /note/, 'the decoded failure message names the unknown field');
    return true;
  });

  // Raw: what the server stores and anyone with read access to it sees.
  const history = await rawClient.workflow.getHandle(workflowId).fetchHistory();
  const text = historyText(history);
  assert.ok(text.length > 1000, 'a real history was fetched');
  assert.equal(text.includes(MARKER), false, 'no plaintext of the marker anywhere in the raw history');
  const found = payloadsIn(history).filter((p) => !p.path.includes('indexedFields'));
  assert.ok(found.length >= 3, `input, memo and the failure are payloads: ${found.length}`);
  for (const { path, payload } of found) {
    assert.equal(utf8(payload.metadata?.encoding), 'binary/encrypted', `${path} is encrypted`);
    assert.equal(utf8(payload.metadata?.['encryption-key-id']), KEY_ID, `${path} names the key it is encrypted with`);
    assert.equal(utf8(payload.data).includes(MARKER), false, `${path} holds no plaintext`);
  }
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const startInput = started?.input?.payloads?.[0];
  assert.ok(startInput, 'the start event carries the input payload');

  // Through the codec server, as the Web UI and `temporal --codec-endpoint` call it.
  const res = await fetch(`${codecServer.url}/decode`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-namespace': config.temporal.namespace },
    body: JSON.stringify({
      payloads: found.map(({ payload }) => ({
        metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
        data: b64(payload.data),
      })),
    }),
  });
  assert.equal(res.status, 200, 'the codec server decodes the history');
  const decoded = ((await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] }).payloads;
  assert.equal(decoded.length, found.length, 'one decoded payload per payload sent');
  const asPayload = (p: { metadata: Record<string, string>; data: string }): Payload => ({
    metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data, 'base64'),
  });
  const plain = decoded.map(asPayload);
  for (const p of plain) assert.notEqual(utf8(p.metadata?.encoding), 'binary/encrypted', 'decoded, not encrypted');
  const withMarker = plain.filter((p) => utf8(p.data).includes(MARKER));
  assert.ok(withMarker.length >= 2, `the marker is back in the decoded input and memo: ${withMarker.length}`);
  const inputIndex = found.findIndex((p) => p.payload === startInput);
  assert.ok(inputIndex >= 0, 'the start input is among the payloads sent');
  assert.deepEqual(
    defaultPayloadConverter.fromPayload(plain[inputIndex]!),
    input,
    'the input decodes to what was sent',
  );
});
