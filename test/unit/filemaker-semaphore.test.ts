import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Semaphore } from '../../src/filemaker/semaphore';

void test('semaphore never lets more than its limit run and serves waiters first-come first-served', async () => {
  const sem = new Semaphore(3);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const release = await sem.acquire();
      order.push(i);
      running++;
      peak = Math.max(peak, running);
      await sleep(2);
      running--;
      release();
      release(); // idempotent
    }),
  );
  assert.equal(peak, 3);
  assert.equal(sem.peakInFlight, 3);
  assert.equal(sem.inFlight, 0);
  assert.deepEqual(order, [...Array(20).keys()]);
});

void test('semaphore limit can be raised and lowered while running', async () => {
  const sem = new Semaphore(1);
  const a = await sem.acquire();
  let gotB = false;
  const b = sem.acquire().then((r) => {
    gotB = true;
    return r;
  });
  await sleep(1);
  assert.equal(gotB, false);
  sem.setLimit(2);
  const releaseB = await b;
  assert.equal(sem.inFlight, 2);
  sem.setLimit(1);
  let gotC = false;
  const c = sem.acquire().then((r) => {
    gotC = true;
    return r;
  });
  a();
  await sleep(1);
  assert.equal(gotC, false, 'still at the lowered limit');
  releaseB();
  (await c)();
  assert.equal(gotC, true);
  assert.throws(() => sem.setLimit(0), RangeError);
});

void test('semaphore waiters can be aborted without leaking a slot', async () => {
  const sem = new Semaphore(1);
  const a = await sem.acquire();
  const ac = new AbortController();
  const waiting = sem.acquire(ac.signal);
  ac.abort();
  await assert.rejects(waiting);
  assert.equal(sem.waiting, 0);
  a();
  assert.equal(sem.inFlight, 0);
  (await sem.acquire())();
});
