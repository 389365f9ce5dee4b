import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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

void test("the README's deployment steps quote the production worker's heap flags as package.json sets them", () => {
  const launch = productionWorkerLaunch();
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
  const quoted = /`(--max-old-space-size=\d+ --max-semi-space-size=\d+)`/.exec(readme)?.[1];
  assert.ok(quoted, 'the README quotes the heap flags');
  const heap = launch.nodeArgs.filter(
    (a) => a.startsWith('--max-old-space-size=') || a.startsWith('--max-semi-space-size='),
  );
  assert.equal(quoted, heap.join(' '));
});
