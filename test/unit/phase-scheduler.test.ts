import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { settingsSchema } from '../../src/workflows/options';
import {
  HISTORY_SOFT_LIMIT,
  PhaseScheduler,
  RELINK_BATCH_MAX,
  historyFull,
  relinkBatchSize,
} from '../../src/workflows/scheduler';

const settings = settingsSchema.parse({ concurrency: 8, cooldownBaseSeconds: 1, cooldownMaxSeconds: 300 });
const T0 = 1_000_000;

/** Starts batches while the scheduler allows; returns how many started. */
function fill(s: PhaseScheduler, pending: number, nowMs = T0): number {
  let started = 0;
  while (s.mayLaunch(pending - started, nowMs, false)) {
    s.running++;
    started++;
  }
  return started;
}

describe('phase scheduler', () => {
  test('one overload episode is one cooldown step, however many batches it fails', () => {
    const s = new PhaseScheduler({ settings, paused: false });
    assert.equal(fill(s, 100), 8);
    // The eight batches in flight all come back overloaded within the first cooldown.
    const answers = Array.from({ length: 8 }, (_, i) => s.overloaded(T0 + i * 10));
    assert.deepEqual(answers, [1, ...Array<undefined>(7).fill(undefined)], 'one cooldown of the first length');
    assert.equal(s.window, 4, 'the window halved once');
    assert.equal(s.mayLaunch(100, T0 + 999, false), false, 'nothing starts while cooling down');
    s.running = 0;
    s.cooledDown();
    // The next episode, with no success in between, is the next step: twice as long, window halved again.
    assert.equal(s.overloaded(T0 + 2000), 2);
    assert.equal(s.window, 2);
    s.cooledDown();
    s.batchSucceeded();
    // A success ends the streak: the next episode starts from the shortest cooldown again.
    assert.equal(s.overloaded(T0 + 5000), 1);
  });

  test('the window halves on overload and grows back by one per success up to the concurrency', () => {
    const s = new PhaseScheduler({ settings, paused: false });
    const windows: number[] = [];
    for (let i = 0; i < 3; i++) {
      s.overloaded(T0 + i * 10_000);
      s.cooledDown();
      windows.push(s.window);
    }
    s.overloaded(T0 + 50_000);
    s.cooledDown();
    windows.push(s.window);
    assert.deepEqual(windows, [4, 2, 1, 1], 'halved, never below one');
    assert.equal(fill(s, 100), 1, 'one batch in flight at the smallest window');
    s.running = 0;
    const grown: number[] = [];
    for (let i = 0; i < 9; i++) {
      s.batchSucceeded();
      grown.push(s.window);
    }
    assert.deepEqual(grown, [2, 3, 4, 5, 6, 7, 8, 8, 8]);
    assert.equal(fill(s, 100), 8);
  });

  test('lowering the concurrency shrinks the window at once, raising it lets the window grow further', () => {
    const s = new PhaseScheduler({ settings, paused: false });
    s.control({ settings: { ...settings, concurrency: 3 } });
    assert.equal(s.window, 3);
    s.control({ settings: { ...settings, concurrency: 5 } });
    assert.equal(s.window, 3, 'grows back by successes, not at once');
    s.batchSucceeded();
    s.batchSucceeded();
    s.batchSucceeded();
    assert.equal(s.window, 5);
  });

  test('a quota pause holds until the budget is raised', () => {
    const s = new PhaseScheduler({ settings, paused: false, transferBudgetBytes: 1000 });
    assert.equal(s.quotaRefused(1000), 'pause', 'the first refusal pauses the phase');
    assert.equal(s.quotaRefused(1000), 'still_paused', 'a second one changes nothing (one notification)');
    assert.equal(s.mayLaunch(10, T0, false), false);
    s.control({ paused: false, settings });
    assert.equal(s.mayLaunch(10, T0, false), false, 'a resume or new settings do not lift it');
    s.control({ transferBudgetBytes: 5000 });
    assert.equal(s.mayLaunch(10, T0, false), true, 'a new budget does');
    assert.equal(s.transferBudgetBytes, 5000);
  });

  test('a batch refused for a budget that was raised during its flight only goes back in line', () => {
    const s = new PhaseScheduler({ settings, paused: false, transferBudgetBytes: 1000 });
    s.control({ transferBudgetBytes: 2000 });
    assert.equal(s.quotaRefused(1000), 'retry');
    assert.equal(s.mayLaunch(10, T0, false), true);
  });

  test('the next step: a failure first, then done, then continue-as-new once no batch is in flight', () => {
    const s = new PhaseScheduler({ settings, paused: false });
    const at = (failed: boolean, pending: number, historyIsFull: boolean) =>
      s.next({ failed, pending, nowMs: T0, historyIsFull });
    assert.equal(at(true, 0, true), 'fail');
    assert.equal(at(false, 0, true), 'done');
    assert.equal(at(false, 5, true), 'continue_as_new');
    assert.equal(at(false, 5, false), 'launch');
    s.running = 1;
    assert.equal(at(false, 5, true), 'wait', 'a full history launches nothing and waits for the batch in flight');
    assert.equal(at(false, 0, false), 'wait');
    s.control({ paused: true });
    s.running = 0;
    assert.equal(at(false, 5, false), 'wait', 'paused');
  });

  test('the history is full when Temporal suggests it or past the soft limit', () => {
    assert.equal(historyFull({ continueAsNewSuggested: false, historyLength: HISTORY_SOFT_LIMIT }), false);
    assert.equal(historyFull({ continueAsNewSuggested: false, historyLength: HISTORY_SOFT_LIMIT + 1 }), true);
    assert.equal(historyFull({ continueAsNewSuggested: true, historyLength: 10 }), true);
  });

  test("continue-as-new carries the operator's settings, pause and budget into the next execution", () => {
    const s = new PhaseScheduler({ settings, paused: false, transferBudgetBytes: 1000 });
    const changed = { ...settings, concurrency: 2, chunkSize: 50 };
    s.control({ settings: changed, paused: true, transferBudgetBytes: 7000 });
    const carried = s.carry();
    assert.deepEqual(carried, { settings: changed, paused: true, transferBudgetBytes: 7000 });
    const next = new PhaseScheduler(structuredClone(carried));
    assert.deepEqual(next.carry(), carried);
    assert.equal(next.window, 2);
    assert.equal(next.mayLaunch(10, T0, false), false, 'still paused');
    next.control({ paused: false });
    assert.equal(fill(next, 10), 2);
  });

  test('a files table its earlier run stored almost whole is read in about two relink batches per slot', () => {
    // Seed counts: 11,269 documents, all relinkable, 8 batches in flight → 16 batches of 705, not 282 of 40.
    assert.equal(relinkBatchSize(settings, 11_269, 11_269), 705);
    assert.equal(relinkBatchSize(settings, 11_269, 10_200), 705, '90 % relinkable is enough');
    assert.equal(relinkBatchSize(settings, 11_269, 10_100), undefined, 'fewer: the batches download, 40 files each');
    assert.equal(relinkBatchSize(settings, 11_269, undefined), undefined, 'a manifest that reports none');
    assert.equal(relinkBatchSize(settings, 0, 0), undefined, 'an empty table');
    assert.equal(relinkBatchSize(settings, 100_000, 100_000), RELINK_BATCH_MAX, 'capped');
    assert.equal(relinkBatchSize(settings, 200, 200), settings.fileBatchSize, 'never below the configured size');
  });
});
