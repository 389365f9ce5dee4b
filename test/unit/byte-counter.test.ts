/**
 * The files phases' byte counter: a download's bytes wait for its transfer reservation (`open()`), then flow up to
 * the read-ahead limit without a consumer, so a file that fits is received whole (and its FileMaker slot freed).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { pipeline } from 'node:stream';
import { ByteCounter } from '../../src/activities/files/download';

/** A 64 KiB-chunked source that says whether it has been read to its end. */
function source(bytes: number): { stream: Readable; ended: () => boolean } {
  let sent = 0;
  let ended = false;
  const stream = new Readable({
    highWaterMark: 16 * 1024,
    read() {
      const n = Math.min(64 * 1024, bytes - sent);
      if (n === 0) {
        ended = true;
        this.push(null);
        return;
      }
      sent += n;
      this.push(Buffer.alloc(n, 7));
    },
  });
  return { stream, ended: () => ended };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await tick();
}

void test('nothing passes before the reservation; then a body within the read-ahead is read whole unconsumed', async () => {
  const src = source(300 * 1024);
  const counter = new ByteCounter(() => undefined, 512 * 1024);
  pipeline(src.stream, counter, () => undefined);
  await settle();
  assert.equal(counter.bytes, 0, 'no byte counted before open()');
  assert.equal(src.ended(), false, 'the source is held back before open()');
  counter.open();
  await settle();
  assert.equal(counter.bytes, 300 * 1024, 'every byte passed without a consumer');
  assert.equal(src.ended(), true, 'the source was read to its end');
  let read = 0;
  for await (const chunk of counter) read += (chunk as Buffer).length;
  assert.equal(read, 300 * 1024, 'the consumer still gets every byte');
});

void test('a body larger than the read-ahead waits for its consumer beyond that', async () => {
  const src = source(4 * 1024 * 1024);
  const counter = new ByteCounter(() => undefined, 512 * 1024);
  pipeline(src.stream, counter, () => undefined);
  counter.open();
  await settle();
  assert.ok(counter.bytes >= 512 * 1024, `read ahead to the limit (${counter.bytes})`);
  assert.ok(counter.bytes < 1024 * 1024, `not much further without a consumer (${counter.bytes})`);
  assert.equal(src.ended(), false);
  let read = 0;
  for await (const chunk of counter) read += (chunk as Buffer).length;
  assert.equal(read, 4 * 1024 * 1024);
  assert.equal(counter.bytes, 4 * 1024 * 1024);
});
