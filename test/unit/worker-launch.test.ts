import { test } from 'node:test';
import assert from 'node:assert/strict';
import { productionWorkerLaunch } from '../../scripts/worker-launch';

void test('the production worker launch is read from package.json: heap caps and the malloc arena limit', () => {
  const launch = productionWorkerLaunch();
  const flag = (name: string) => launch.nodeArgs.find((a) => a.startsWith(`${name}=`));
  assert.ok(flag('--max-old-space-size'), `old space capped: ${launch.nodeArgs.join(' ')}`);
  assert.ok(Number(flag('--max-old-space-size')!.split('=')[1]) <= 256, 'an old space that keeps the worker < 300 MB');
  assert.ok(flag('--max-semi-space-size'), 'young generation capped');
  assert.equal(launch.env.MALLOC_ARENA_MAX, '2');
  assert.equal(launch.env.MALLOC_MMAP_THRESHOLD_, '131072');
});
