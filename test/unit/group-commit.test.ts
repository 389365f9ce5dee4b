import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommit } from '../../src/store/group-commit';

void test('group commit: the first item goes at once, the ones that arrive meanwhile share the next write', async () => {
  const writes: number[][] = [];
  let release: () => void = () => undefined;
  const gc = new GroupCommit<number, number>(async (_group, items) => {
    writes.push(items);
    if (writes.length === 1) await new Promise<void>((r) => (release = r));
    return items.map((x) => x * 10);
  });
  const first = gc.submit('g', 1);
  const rest = [2, 3, 4].map((x) => gc.submit('g', x));
  const other = gc.submit('h', 9);
  assert.deepEqual(writes, [[1], [9]], 'another group is not held up by this one');
  release();
  assert.equal(await first, 10);
  assert.deepEqual(await Promise.all(rest), [20, 30, 40], 'each item gets its own result');
  assert.equal(await other, 90);
  assert.deepEqual(writes, [[1], [9], [2, 3, 4]]);
});

void test('group commit: a failed write rejects exactly the items it carried; the group goes on', async () => {
  let n = 0;
  const gc = new GroupCommit<string, string>(async (_group, items) => {
    n++;
    await Promise.resolve();
    if (items.includes('bad')) throw new Error('statement failed');
    return items.map((x) => x.toUpperCase());
  });
  const a = gc.submit('g', 'ok');
  const b = gc.submit('g', 'bad');
  const c = gc.submit('g', 'also');
  assert.equal(await a, 'OK');
  await assert.rejects(b, /statement failed/);
  await assert.rejects(c, /statement failed/, 'shared the failed statement');
  assert.equal(await gc.submit('g', 'after'), 'AFTER');
  assert.equal(n, 3);
});

void test('group commit: a write that returns the wrong number of results fails its items', async () => {
  const gc = new GroupCommit<number, number>(async () => []);
  await assert.rejects(gc.submit('g', 1), /0 results for 1 items/);
});
