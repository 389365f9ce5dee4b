/** The lines the Web UI shows for a phase's counts and for a cooldown timer. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countsLine } from '../../src/workflows/progress';
import { cooldownSummary } from '../../src/workflows/scheduler';

test('a phase counts line reads the records, with thousands separated and zero unlinked or skipped left out', () => {
  assert.equal(
    countsLine('patients', { imported: 2790, unlinked: 0, skipped: 43, failed: 12 }),
    'patients: 2,845 read, 2,790 imported, 43 skipped, 12 failed',
  );
  assert.equal(
    countsLine('images', { imported: 1_234_567, unlinked: 3, skipped: 0, failed: 0 }),
    'images: 1,234,570 read, 1,234,567 imported, 3 unlinked, 0 failed',
  );
});

test('a cooldown timer says how long and why', () => {
  assert.equal(cooldownSummary(30), 'Cooldown 30 s: FileMaker answered overloaded');
});
