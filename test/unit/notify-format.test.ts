import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatNotification,
  formatDuration,
  InvalidNotifyEventError,
  isLongCooldown,
  type NotifyEvent,
  type RunStartedEvent,
} from '../../src/notify';

const base = { runId: 'reimport-2024-06-01', workflowId: 'reimport-2024-06-01' };

const samples: NotifyEvent[] = [
  { ...base, type: 'run_started', phases: ['patients', 'appointments', 'documents'], sourceCounts: { patients: 5120 } },
  {
    ...base,
    type: 'phase_completed',
    workflowId: 'reimport-2024-06-01/appointments',
    phase: 'appointments',
    counts: { done: 41230, failed: 2 },
    durationMs: 3_723_000,
  },
  { ...base, type: 'cooldown_long', phase: 'documents', cooldownSeconds: 900, reasonCode: 'FILEMAKER_OVERLOADED' },
  {
    ...base,
    type: 'paused_for_quota',
    phase: 'documents',
    reasonCode: 'TRANSFER_QUOTA_EXCEEDED',
    bytesUsed: 143_900_000_000,
    bytesBudget: 144_000_000_000,
  },
  {
    ...base,
    type: 'run_failed',
    phase: 'documents',
    reasonCode: 'INTEGRITY_MISMATCH',
    failuresByReason: { INTEGRITY_MISMATCH: 3 },
  },
  {
    ...base,
    type: 'rolled_back',
    phases: ['documents', 'appointments'],
    reasonCode: 'OPERATOR_CANCELLED',
    failedCompensations: ['documents'],
  },
  { ...base, type: 'run_completed', durationMs: 90_061_000, counts: { patients: 5120, documents: 88412 } },
];

void test('every event type formats to a prefixed subject and a text naming the run and workflow', () => {
  const seen = new Set<string>();
  for (const e of samples) {
    const { subject, text } = formatNotification(e);
    seen.add(e.type);
    assert.match(subject, /^\[fm-reimport\] run reimport-2024-06-01/);
    assert.match(text, /reimport-2024-06-01/);
    assert.match(text, new RegExp(`Workflow: ${e.workflowId}`));
  }
  assert.equal(seen.size, 7);
});

void test('formatting carries the numbers an operator acts on', () => {
  const [started, phase, cooldown, quota, failed, rolled, completed] = samples.map((e) => formatNotification(e));
  assert.match(started!.text, /patients -> appointments -> documents/);
  assert.match(phase!.subject, /phase appointments completed/);
  assert.match(phase!.text, /1h 02m 03s/);
  assert.match(phase!.text, /done=41230, failed=2/);
  assert.match(cooldown!.text, /15m 00s/);
  assert.match(cooldown!.text, /FILEMAKER_OVERLOADED/);
  assert.match(quota!.text, /143\.9 GB of 144\.0 GB/);
  assert.match(failed!.subject, /FAILED: INTEGRITY_MISMATCH/);
  assert.match(rolled!.text, /FAILED \(operator action needed\): documents/);
  assert.match(completed!.text, /documents=88412, patients=5120/);
});

void test('formatting is deterministic and links to the Web UI when configured', () => {
  const e = samples[1]!;
  const opts = { temporalUiUrl: 'http://localhost:8233/', namespace: 'default' };
  assert.deepEqual(formatNotification(e, opts), formatNotification(e, opts));
  assert.match(
    formatNotification(e, opts).text,
    /http:\/\/localhost:8233\/namespaces\/default\/workflows\/reimport-2024-06-01%2Fappointments/,
  );
  const withTime = formatNotification({ ...samples[0]!, atMs: Date.UTC(2024, 5, 1, 2, 3, 4) });
  assert.match(withTime.text, /At: 2024-06-01T02:03:04.000Z/);
});

void test('patient data has nowhere to go: extra fields are ignored and free text in id fields is rejected', () => {
  const patient = { name: 'Marjorie Testpatient', dob: '1954-03-07', note: 'allergic to penicillin' };
  const smuggled = {
    ...samples[0]!,
    // @ts-expect-error events have no field for run input or records
    input: { patient },
  } satisfies RunStartedEvent;
  const out = formatNotification(smuggled);
  for (const v of Object.values(patient)) assert.equal(out.text.includes(v) || out.subject.includes(v), false);

  const inIdField: NotifyEvent = { ...samples[2]!, type: 'cooldown_long', phase: patient.name } as NotifyEvent;
  assert.throws(
    () => formatNotification(inIdField),
    (err: unknown) =>
      err instanceof InvalidNotifyEventError && !err.message.includes(patient.name) && err.paths.includes('phase'),
  );
  const inReason = { ...samples[4]!, reasonCode: 'note: allergic to penicillin' } as NotifyEvent;
  assert.throws(() => formatNotification(inReason), InvalidNotifyEventError);
  const inCountKey = { ...samples[6]!, counts: { [patient.name]: 1 } } as NotifyEvent;
  assert.throws(() => formatNotification(inCountKey), InvalidNotifyEventError);
  assert.throws(
    () => formatNotification({ type: 'something_else' } as unknown as NotifyEvent),
    InvalidNotifyEventError,
  );
});

void test('durations and the cooldown threshold', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(59_400), '59s');
  assert.equal(formatDuration(61_000), '1m 01s');
  assert.equal(isLongCooldown(301, 300), true);
  assert.equal(isLongCooldown(300, 300), false);
});
