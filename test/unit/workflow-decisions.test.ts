import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  ChildWorkflowFailure,
  RetryState,
} from '@temporalio/common';
import { PHASES } from '../../src/domain/tables';
import {
  ConfigError,
  FileMakerOverloadedError,
  IntegrityError,
  ManifestError,
  SchemaVersionError,
  TransferQuotaError,
} from '../../src/errors';
import { ERROR_CODES, describeFailure, failureCode } from '../../src/workflows/failures';
import { reimportInputSchema, selectPhases, settingsSchema } from '../../src/workflows/options';
import { tablesOf } from '../../src/workflows/phase';
import { cooldownSeconds } from '../../src/workflows/scheduler';

const activityFailed = (cause: Error) =>
  new ActivityFailure('activity failed', 'importChunk', '7', RetryState.NON_RETRYABLE_FAILURE, 'worker-1', cause);
const childFailed = (cause: Error) =>
  new ChildWorkflowFailure(
    'default',
    { workflowId: 'run-1/patients', runId: 'r' },
    'importPhase',
    RetryState.NON_RETRYABLE_FAILURE,
    cause,
  );

describe('selectPhases', () => {
  const select = (input: object) => selectPhases(reimportInputSchema.parse(input));

  test('every phase in run order by default', () => {
    assert.deepEqual(select({}), [...PHASES]);
  });

  test('the chosen phases run in run order, whatever order they were given in', () => {
    assert.deepEqual(select({ phases: ['images', 'patients', 'notes'] }), ['patients', 'notes', 'images']);
  });

  test('resumeFrom drops the phases before it, alone or with a choice', () => {
    assert.deepEqual(select({ resumeFrom: 'documents' }), ['documents', 'images', 'validation']);
    assert.deepEqual(select({ phases: ['patients', 'images', 'validation'], resumeFrom: 'notes' }), [
      'images',
      'validation',
    ]);
  });
});

describe('cooldownSeconds', () => {
  const settings = settingsSchema.parse({ cooldownBaseSeconds: 2, cooldownMaxSeconds: 50 });

  test('doubles with each overload in a row from the base, up to the cap', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => cooldownSeconds(settings, n)),
      [2, 4, 8, 16, 32, 50, 50],
    );
  });

  test('a count below one is the first cooldown', () => {
    assert.equal(cooldownSeconds(settings, 0), 2);
  });
});

describe('tablesOf', () => {
  test('patients: the clinic, then contact details before the patients that fold them in', () => {
    assert.deepEqual(tablesOf('patients'), ['API_Clinic_Name', 'API_Contact_Details', 'API_Contacts']);
  });

  test('the other phases keep the catalogue order', () => {
    assert.deepEqual(tablesOf('notes'), ['API_Notes', 'API_Messages']);
    assert.deepEqual(tablesOf('images'), ['API_Images']);
  });
});

describe('failureCode', () => {
  test("is the type of the chain's ApplicationFailure, however deep in a child's activity", () => {
    const root = ApplicationFailure.nonRetryable('3 of 9 ids open', 'RECONCILIATION_FAILED');
    assert.equal(failureCode(root), 'RECONCILIATION_FAILED');
    assert.equal(failureCode(childFailed(activityFailed(root))), 'RECONCILIATION_FAILED');
  });

  test('a type that is not an upper-case code is reported as APPLICATION_ERROR', () => {
    assert.equal(failureCode(ApplicationFailure.create({ message: 'x', type: 'TypeError' })), 'APPLICATION_ERROR');
  });

  test('a cancel is CANCELLED, anything else UNKNOWN_FAILURE', () => {
    assert.equal(failureCode(childFailed(new CancelledFailure('cancelled'))), 'CANCELLED');
    assert.equal(failureCode(new Error('boom')), 'UNKNOWN_FAILURE');
    assert.equal(failureCode(undefined), 'UNKNOWN_FAILURE');
  });

  test('stops looking after six links', () => {
    let deep: Error = ApplicationFailure.nonRetryable('deep', 'DEEP');
    for (let i = 0; i < 6; i++) deep = new Error('wrapper', { cause: deep });
    assert.equal(failureCode(deep), 'UNKNOWN_FAILURE');
  });
});

describe('describeFailure', () => {
  test('names the child and ends at our own error, its type and message', () => {
    const root = ApplicationFailure.nonRetryable('API_Notes: 2 of 5 manifest ids open', 'RECONCILIATION_FAILED');
    assert.equal(
      describeFailure(childFailed(activityFailed(root))),
      'child run-1/patients ← activity failed ← RECONCILIATION_FAILED: API_Notes: 2 of 5 manifest ids open',
    );
  });

  test('stops at a cancel, and says so when nothing is known', () => {
    assert.equal(
      describeFailure(childFailed(new CancelledFailure('x', [], ApplicationFailure.nonRetryable('hidden', 'H')))),
      'child run-1/patients ← cancelled',
    );
    assert.equal(describeFailure(undefined), 'unknown failure');
    assert.equal(describeFailure({}), 'unknown failure');
  });
});

describe('error codes', () => {
  test('the codes the activities raise are the codes of the local error classes', () => {
    assert.equal(new FileMakerOverloadedError('busy', '812', 502).code, ERROR_CODES.FILEMAKER_OVERLOADED);
    assert.equal(new TransferQuotaError().code, ERROR_CODES.TRANSFER_QUOTA_EXCEEDED);
    assert.equal(new ConfigError().code, ERROR_CODES.CONFIG_INVALID);
    assert.equal(new SchemaVersionError().code, ERROR_CODES.SCHEMA_VERSION_UNKNOWN);
    assert.equal(new ManifestError().code, ERROR_CODES.MANIFEST_INCONSISTENT);
    assert.equal(new IntegrityError().code, ERROR_CODES.INTEGRITY_MISMATCH);
  });

  test('each code is named by itself', () => {
    for (const [name, code] of Object.entries(ERROR_CODES)) assert.equal(code, name);
  });
});
