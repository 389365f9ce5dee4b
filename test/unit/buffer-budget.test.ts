import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteBudget } from '../../src/s3/buffer-budget';

void test('byte budget: holders never pass the limit, waiters are served in order, an abort leaves the line', async () => {
  const b = new ByteBudget(100);
  const r1 = await b.acquire(60);
  const order: string[] = [];
  const big = b.acquire(70).then((r) => (order.push('big'), r));
  const small = b.acquire(10).then((r) => (order.push('small'), r));
  const ac = new AbortController();
  const aborted = b.acquire(90, ac.signal);
  await new Promise((r) => setImmediate(r));
  assert.equal(b.inUse, 60, 'the small one waits behind the big one: first come, first served');
  ac.abort();
  await assert.rejects(aborted);
  r1();
  r1();
  const rBig = await big;
  const rSmall = await small;
  assert.deepEqual(order, ['big', 'small']);
  assert.equal(b.inUse, 80);
  rBig();
  rSmall();
  assert.equal(b.inUse, 0);
  // A request above the whole budget takes all of it rather than waiting forever.
  const all = await b.acquire(1_000);
  assert.equal(b.inUse, 100);
  all();
});
