import assert from 'node:assert/strict';
import { test } from 'node:test';
import { retentionDecisions, type RunForRetention } from '../../src/domain/retention';

const at = (n: number) => Date.UTC(2026, 0, n);
const run = (runId: string, day: number, status: RunForRetention['status'], signedOff = true): RunForRetention => ({
  runId,
  status,
  startedAt: at(day),
  signedOff,
});
const kept = (runs: RunForRetention[], keep: number) =>
  retentionDecisions(runs, keep)
    .filter((d) => d.keep)
    .map((d) => d.runId);

void test('the last N completed runs are kept, older signed-off ones dropped, newest first', () => {
  const runs = [1, 2, 3, 4, 5].map((d) => run(`r${d}`, d, 'completed'));
  assert.deepEqual(kept(runs, 3), ['r5', 'r4', 'r3']);
  assert.deepEqual(kept(runs.reverse(), 1), ['r5'], 'input order does not matter');
});

void test('a completed run not signed off is kept however old', () => {
  const runs = [run('r1', 1, 'completed', false), run('r2', 2, 'completed'), run('r3', 3, 'completed')];
  assert.deepEqual(kept(runs, 1), ['r3', 'r1']);
});

void test('running and failed runs are always kept; rolled-back ones until a later run completes', () => {
  const runs = [
    run('old-failed', 1, 'failed'),
    run('rolled', 2, 'rolled_back'),
    run('done', 3, 'completed'),
    run('cancelled', 4, 'cancelled'),
    run('now', 5, 'running'),
  ];
  const d = retentionDecisions(runs, 1);
  assert.deepEqual(
    d.map((x) => [x.runId, x.keep]),
    [
      ['now', true],
      ['cancelled', true],
      ['done', true],
      ['rolled', false],
      ['old-failed', true],
    ],
  );
  assert.match(d.find((x) => x.runId === 'rolled')!.why, /superseded by completed run done/);
});

void test('keep must be at least one', () => {
  assert.throws(() => retentionDecisions([], 0), RangeError);
  assert.throws(() => retentionDecisions([], 1.5), RangeError);
});
