import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import {
  createPayloadCodec,
  generateKeySpec,
  parseKeySpec,
  ENCODING_ENCRYPTED,
  METADATA_KEY_ID_KEY,
  PayloadDecryptError,
  PayloadKeyUnknownError,
} from '../../src/codec/payload-codec';
import { ConfigError } from '../../src/errors';

const MARKER = 'Marjorie-Testpatient-1954-03-07';
const toPayload = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);
const fromPayload = (p: Payload | undefined): unknown => defaultPayloadConverter.fromPayload(p!);
const meta = (p: Payload | undefined, k: string) => Buffer.from(p!.metadata![k]!).toString('utf8');

void test('round trip restores the value and its original metadata', async () => {
  const codec = createPayloadCodec(generateKeySpec('a'));
  const input = [toPayload({ patient: MARKER, n: 1 }), toPayload('plain string'), toPayload(null)];
  const encoded = await codec.encode(input);
  assert.equal(encoded.length, 3);
  for (const p of encoded) {
    assert.equal(meta(p, 'encoding'), ENCODING_ENCRYPTED);
    assert.equal(meta(p, METADATA_KEY_ID_KEY), 'a');
  }
  const decoded = await codec.decode(encoded);
  assert.deepEqual(fromPayload(decoded[0]), { patient: MARKER, n: 1 });
  assert.equal(fromPayload(decoded[1]), 'plain string');
  assert.equal(fromPayload(decoded[2]), null);
  assert.equal(meta(decoded[0], 'encoding'), 'json/plain');
});

void test('ciphertext contains no plaintext marker and differs per payload (random IV)', async () => {
  const codec = createPayloadCodec(generateKeySpec('a'));
  const [one, two] = await codec.encode([toPayload(MARKER), toPayload(MARKER)]);
  for (const p of [one!, two!]) {
    const wire = Buffer.concat([p.data!, ...Object.values(p.metadata!)]);
    assert.equal(wire.includes(MARKER), false);
    assert.equal(wire.includes('json/plain'), false, 'original encoding is hidden too');
  }
  assert.notDeepEqual(Buffer.from(one!.data!), Buffer.from(two!.data!));
});

void test('rotation: old keys still decrypt, the active key encrypts, a dropped key is named in the error', async () => {
  const specA = generateKeySpec('key-a');
  const specB = generateKeySpec('key-b');
  const [oldPayload] = await createPayloadCodec(specA).encode([toPayload({ v: 'old' })]);

  const rotated = createPayloadCodec(`${specB},${specA}`, 'key-b');
  assert.equal(rotated.activeKeyId, 'key-b');
  const [newPayload] = await rotated.encode([toPayload({ v: 'new' })]);
  assert.equal(meta(newPayload, METADATA_KEY_ID_KEY), 'key-b');
  const [oldBack, newBack] = await rotated.decode([oldPayload!, newPayload!]);
  assert.deepEqual(fromPayload(oldBack), { v: 'old' });
  assert.deepEqual(fromPayload(newBack), { v: 'new' });

  const onlyB = createPayloadCodec(specB);
  await assert.rejects(onlyB.decode([oldPayload!]), (err: unknown) => {
    assert.ok(err instanceof PayloadKeyUnknownError);
    assert.equal(err.code, 'PAYLOAD_KEY_UNKNOWN');
    assert.match(err.message, /"key-a"/);
    const keyMaterialA = specA.split(':')[1]!;
    const keyMaterialB = specB.split(':')[1]!;
    assert.equal(err.message.includes(keyMaterialA) || err.message.includes(keyMaterialB), false);
    return true;
  });
});

void test('the active key defaults to the first listed key', async () => {
  const codec = createPayloadCodec(`${generateKeySpec('first')}\n${generateKeySpec('second')}`);
  const [p] = await codec.encode([toPayload(1)]);
  assert.equal(meta(p, METADATA_KEY_ID_KEY), 'first');
});

void test('tampered ciphertext, tag or key id fails GCM authentication', async () => {
  const spec = `${generateKeySpec('a')},${generateKeySpec('b')}`;
  const codec = createPayloadCodec(spec);
  const [p] = await codec.encode([toPayload({ patient: MARKER })]);
  const flip = (at: number) => {
    const data = Buffer.from(p!.data!);
    data[at] = data[at]! ^ 0x01;
    return { metadata: p!.metadata, data };
  };
  await assert.rejects(codec.decode([flip(20)]), PayloadDecryptError);
  await assert.rejects(codec.decode([flip(p!.data!.length - 1)]), PayloadDecryptError);
  const relabelled = { metadata: { ...p!.metadata, [METADATA_KEY_ID_KEY]: Buffer.from('b') }, data: p!.data };
  await assert.rejects(codec.decode([relabelled]), PayloadDecryptError);
  const truncated = { metadata: p!.metadata, data: Buffer.from(p!.data!).subarray(0, 10) };
  await assert.rejects(codec.decode([truncated]), PayloadDecryptError);
});

void test('payloads that were never encrypted pass through decode unchanged', async () => {
  const codec = createPayloadCodec(generateKeySpec('a'));
  const plain = toPayload({ legacy: true });
  const [out] = await codec.decode([plain]);
  assert.equal(out, plain);
});

void test('bad key specs fail with ConfigError that never echoes key material', () => {
  const short = Buffer.alloc(16, 7).toString('base64');
  for (const spec of ['', 'nokey', `a:${short}`, 'a:not base64!', `${generateKeySpec('a')},${generateKeySpec('a')}`]) {
    assert.throws(
      () => parseKeySpec(spec),
      (err: unknown) => err instanceof ConfigError && !err.message.includes(short) && /PAYLOAD_KEYS/.test(err.message),
      spec,
    );
  }
  assert.throws(() => createPayloadCodec(generateKeySpec('a'), 'zzz'), /PAYLOAD_ACTIVE_KEY_ID: key id "zzz"/);
});
