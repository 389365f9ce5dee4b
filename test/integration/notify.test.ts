import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import { ApplicationFailure } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { ReimportActivities } from '../../src/activities/types';
import { createNotifier, NotificationNotDeliveredError, type Notifier, type NotifyEvent } from '../../src/notify';
import { createLogger } from '../../src/logger';
import { preflightPassed, workflowTestEnv } from '../helpers/workflow-env';

// Markers that must never leave the process in a notification or a log line.
const PATIENT_NAME = 'Marjorie Testpatient';
const PATIENT_DOB = '1954-03-07';
const WEBHOOK_SECRET_PATH = '/services/T0000/B0000/sEcReTwEbHoOkToKeN';
const SMTP_PASSWORD = 'smtp-pa55-sEcReT';

const logLines: string[] = [];
const logger = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString('utf8'));
      cb();
    },
  }),
});

interface Received {
  path: string;
  body: { text: string; blocks?: unknown[] };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/**
 * A webhook receiver that answers `failFirst` requests with HTTP 500, then 200; and, with `failing`, answers HTTP 500
 * to the first `failing.times` messages whose text matches `failing.text`.
 */
async function startWebhookReceiver(failFirst = 0, failing?: { text: RegExp; times: number }) {
  const received: Received[] = [];
  let requests = 0;
  let refused = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'];
      if (requests <= failFirst || (failing && failing.text.test(body.text) && refused++ < failing.times)) {
        res.writeHead(500).end('boom');
        return;
      }
      received.push({ path: req.url ?? '', body });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  const port = await listen(server);
  return {
    received,
    requests: () => requests,
    url: `http://127.0.0.1:${port}${WEBHOOK_SECRET_PATH}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

interface Mail {
  from: string | undefined;
  to: string[];
  raw: string;
  user: string | undefined;
}
const mails: Mail[] = [];
let smtp: SMTPServer;
let smtpPort: number;

before(async () => {
  smtp = new SMTPServer({
    authOptional: true,
    // Loopback test server: no TLS, so plain-text AUTH must be allowed explicitly.
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === 'notify' && auth.password === SMTP_PASSWORD) cb(null, { user: auth.username });
      else cb(new Error('bad credentials'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
          user: session.user as string | undefined,
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = ((smtp as unknown as { server: Server }).server.address() as AddressInfo).port;
});
after(async () => {
  await new Promise<void>((r) => smtp.close(() => r()));
});

const smtpUrl = () => `smtp://notify:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${smtpPort}`;
const subjectOf = (raw: string) => /^Subject: (.*)$/m.exec(raw)?.[1] ?? '';
const quick = { attempts: 3, baseDelayMs: 20 };

const runId = 'reimport-test-1';
const wf = (p?: string) => (p ? `${runId}/${p}` : runId);
const runInput = { runId, sample: { patientName: PATIENT_NAME, dob: PATIENT_DOB } };
const events: NotifyEvent[] = [
  // A careless caller spreading the run's input into the event: the extra field must not be rendered.
  {
    ...runInput,
    type: 'run_started',
    runId,
    workflowId: wf(),
    phases: ['patients', 'documents'],
  },
  {
    type: 'phase_completed',
    runId,
    workflowId: wf('patients'),
    phase: 'patients',
    counts: { done: 10 },
    durationMs: 1200,
  },
  {
    type: 'cooldown_long',
    runId,
    workflowId: wf('documents'),
    phase: 'documents',
    cooldownSeconds: 900,
    reasonCode: 'FILEMAKER_OVERLOADED',
  },
  { type: 'paused_for_quota', runId, workflowId: wf('documents'), reasonCode: 'TRANSFER_QUOTA_EXCEEDED' },
  { type: 'run_failed', runId, workflowId: wf(), reasonCode: 'INTEGRITY_MISMATCH' },
  { type: 'rolled_back', runId, workflowId: wf(), phases: ['documents', 'patients'], reasonCode: 'INTEGRITY_MISMATCH' },
  { type: 'run_completed', runId, workflowId: wf(), durationMs: 5000, counts: { patients: 10 } },
];

void test('every event reaches the webhook and the mailbox, in order, without patient data or secrets', async () => {
  const hook = await startWebhookReceiver();
  mails.length = 0;
  logLines.length = 0;
  const notifier = createNotifier({
    webhookUrl: hook.url,
    smtpUrl: smtpUrl(),
    emailFrom: 'fm-reimport@clinic.test',
    emailTo: ['ops@clinic.test', 'oncall@clinic.test'],
    logger,
    retry: quick,
    cooldownThresholdSeconds: 300,
  });
  try {
    assert.deepEqual(notifier.channels, ['webhook', 'email']);
    for (const e of events) {
      const r = await notifier.send(e);
      assert.equal(r.ok, true, `${e.type}: ${JSON.stringify(r)}`);
      assert.deepEqual(
        r.channels.map((c) => [c.channel, c.ok]),
        [
          ['webhook', true],
          ['email', true],
        ],
      );
    }
    const expectedOrder = [
      /run reimport-test-1 started/,
      /phase patients completed/,
      /cooling down/,
      /paused: TRANSFER_QUOTA_EXCEEDED/,
      /FAILED: INTEGRITY_MISMATCH/,
      /rolled back/,
      /run reimport-test-1 completed/,
    ];
    assert.equal(hook.received.length, events.length);
    assert.equal(mails.length, events.length);
    expectedOrder.forEach((re, i) => {
      assert.match(hook.received[i]!.body.text, re, `webhook #${i}`);
      assert.match(subjectOf(mails[i]!.raw), re, `mail #${i}`);
    });
    assert.equal(hook.received[0]!.path, WEBHOOK_SECRET_PATH);
    assert.ok(Array.isArray(hook.received[0]!.body.blocks));
    assert.deepEqual(mails[0]!.to, ['ops@clinic.test', 'oncall@clinic.test']);
    assert.equal(mails[0]!.from, 'fm-reimport@clinic.test');
    assert.equal(mails[0]!.user, 'notify', 'SMTP credentials from the URL were used');

    const delivered = [...hook.received.map((r) => JSON.stringify(r.body)), ...mails.map((m) => m.raw)].join('\n');
    for (const marker of [PATIENT_NAME, PATIENT_DOB, 'Testpatient'])
      assert.equal(delivered.includes(marker), false, marker);
    const logs = logLines.join('');
    for (const marker of [PATIENT_NAME, PATIENT_DOB, WEBHOOK_SECRET_PATH, 'sEcReTwEbHoOkToKeN', SMTP_PASSWORD]) {
      assert.equal(logs.includes(marker), false, `log leaks ${marker}`);
    }
    assert.match(logs, /notification sent/);
  } finally {
    await notifier.close();
    await hook.close();
  }
});

void test('a webhook that fails twice with HTTP 500 still gets the message on the third attempt', async () => {
  const hook = await startWebhookReceiver(2);
  const notifier = createNotifier({ webhookUrl: hook.url, emailTo: [], logger, retry: quick });
  try {
    const r = await notifier.send(events[1]!);
    assert.equal(r.ok, true);
    assert.equal(r.channels[0]!.attempts, 3);
    assert.equal(hook.requests(), 3);
    assert.equal(hook.received.length, 1);
    assert.match(hook.received[0]!.body.text, /phase patients completed/);
  } finally {
    await notifier.close();
    await hook.close();
  }
});

void test('a dead webhook yields a failure outcome within the time bound while email still delivers', async () => {
  const probe = createServer();
  const deadPort = await listen(probe);
  await new Promise<void>((r) => probe.close(() => r()));
  mails.length = 0;
  const notifier = createNotifier({
    webhookUrl: `http://127.0.0.1:${deadPort}${WEBHOOK_SECRET_PATH}`,
    smtpUrl: smtpUrl(),
    emailFrom: 'fm-reimport@clinic.test',
    emailTo: ['ops@clinic.test'],
    logger,
    retry: { attempts: 4, baseDelayMs: 50 },
    totalTimeoutMs: 3_000,
  });
  try {
    const started = Date.now();
    const r = await notifier.send(events[4]!);
    const took = Date.now() - started;
    assert.equal(r.ok, false);
    const [webhook, email] = r.channels;
    assert.equal(webhook!.ok, false);
    assert.equal(webhook!.error, 'ECONNREFUSED');
    assert.equal(webhook!.attempts, 4);
    assert.equal(email!.ok, true);
    assert.equal(mails.length, 1);
    assert.ok(took < 3_500, `send took ${took} ms`);
  } finally {
    await notifier.close();
  }
});

void test('a webhook that accepts but never answers is cut off by the total time bound', async () => {
  const sockets: Socket[] = [];
  const blackHole = createTcpServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
  const port = (blackHole.address() as AddressInfo).port;
  const notifier = createNotifier({
    webhookUrl: `http://127.0.0.1:${port}/hook`,
    emailTo: [],
    logger,
    retry: { attempts: 5, baseDelayMs: 50 },
    attemptTimeoutMs: 400,
    totalTimeoutMs: 1_000,
  });
  try {
    const started = Date.now();
    const r = await notifier.send(events[0]!);
    const took = Date.now() - started;
    assert.equal(r.ok, false);
    assert.equal(r.channels[0]!.error, 'TIMEOUT');
    assert.ok(took < 1_500, `send took ${took} ms`);
  } finally {
    await notifier.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => blackHole.close(() => r()));
  }
});

void test('an event carrying free text where an id belongs is refused, not sent, and the log names only the field', async () => {
  const hook = await startWebhookReceiver();
  logLines.length = 0;
  const notifier = createNotifier({ webhookUrl: hook.url, emailTo: [], logger, retry: quick });
  try {
    const bad = { ...events[2]!, phase: PATIENT_NAME } as NotifyEvent;
    const r = await notifier.send(bad);
    assert.equal(r.ok, false);
    assert.equal(r.skipped, 'NOTIFY_EVENT_INVALID');
    assert.equal(hook.requests(), 0);
    assert.equal(logLines.join('').includes(PATIENT_NAME), false);
    assert.match(logLines.join(''), /"fields":\["phase"\]/);

    const short = await notifier.send({ ...(events[2] as object), cooldownSeconds: 60 } as NotifyEvent);
    assert.equal(short.ok, true);
    assert.equal(short.skipped, undefined, 'no threshold configured: sent');
  } finally {
    await notifier.close();
    await hook.close();
  }
});

void test('deliver throws a retryable error naming only channel and code when a message does not arrive', async () => {
  const hook = await startWebhookReceiver(0, { text: /FAILED/, times: 100 });
  const refusing = createServer((_req, res) => res.writeHead(404).end('no such hook'));
  const refusingPort = await listen(refusing);
  const notifier = createNotifier({ webhookUrl: hook.url, emailTo: [], logger, retry: quick });
  const gone = createNotifier({
    webhookUrl: `http://127.0.0.1:${refusingPort}${WEBHOOK_SECRET_PATH}`,
    emailTo: [],
    logger,
    retry: quick,
  });
  try {
    const sent = await notifier.deliver(events[6]!);
    assert.equal(sent.ok, true);
    assert.match(hook.received[0]!.body.text, /run reimport-test-1 completed/);

    const failed = await notifier.deliver(events[4]!).then(
      () => assert.fail('an undelivered message must throw'),
      (err: unknown) => err,
    );
    assert.ok(failed instanceof NotificationNotDeliveredError);
    assert.equal(failed.code, 'NOTIFICATION_NOT_DELIVERED');
    assert.equal(failed.retryable, true);
    assert.equal(failed.message, 'notification run_failed not delivered: webhook HTTP_500');
    assert.equal(hook.requests(), 1 + quick.attempts);

    // A 404 will answer 404 again, and an invalid event stays invalid: the activity need not retry either.
    const refused = await gone.deliver(events[4]!).catch((err: unknown) => err);
    assert.ok(refused instanceof NotificationNotDeliveredError);
    assert.equal(refused.message, 'notification run_failed not delivered: webhook HTTP_404');
    assert.equal(refused.retryable, false);
    const invalid = await notifier
      .deliver({ ...events[2]!, phase: PATIENT_NAME } as NotifyEvent)
      .catch((err: unknown) => err);
    assert.ok(invalid instanceof NotificationNotDeliveredError);
    assert.equal(invalid.message, 'notification cooldown_long not delivered: NOTIFY_EVENT_INVALID');
    assert.equal(invalid.retryable, false);
  } finally {
    await notifier.close();
    await gone.close();
    await hook.close();
    await new Promise<void>((r) => refusing.close(() => r()));
  }
});

/** A notifier for the webhook at `webhookUrl` and ops@ at the test mail server, whose mailbox it empties. */
function hookAndMailbox(webhookUrl: string, retry: { attempts: number; baseDelayMs: number }): Notifier {
  mails.length = 0;
  return createNotifier({
    webhookUrl,
    smtpUrl: smtpUrl(),
    emailFrom: 'fm-reimport@clinic.test',
    emailTo: ['ops@clinic.test'],
    logger,
    retry,
  });
}

void test('a retried deliver sends the message only to the channels that did not take it', async () => {
  const hook = await startWebhookReceiver(0, { text: /completed/, times: 1 });
  const notifier = hookAndMailbox(hook.url, { attempts: 1, baseDelayMs: 10 });
  try {
    const first = await notifier.deliver(events[6]!).catch((err: unknown) => err);
    assert.ok(first instanceof NotificationNotDeliveredError);
    assert.equal(first.message, 'notification run_completed not delivered: webhook HTTP_500');
    const retried = await notifier.deliver(events[6]!);
    assert.deepEqual(
      retried.channels.map((c) => [c.channel, c.ok]),
      [['webhook', true]],
    );
    assert.equal(hook.received.length, 1);
    assert.deepEqual(
      mails.map((m) => subjectOf(m.raw)),
      ['[fm-reimport] run reimport-test-1 completed'],
    );
    // Once delivered everywhere, the same event again is a new message for every channel.
    const again = await notifier.deliver(events[6]!);
    assert.equal(again.channels.length, 2);
    assert.equal(mails.length, 2);
  } finally {
    await notifier.close();
    await hook.close();
  }
});

let env: TestWorkflowEnvironment | undefined;
after(async () => {
  await env?.teardown();
});

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const CLOSED = ['workflowExecutionCompletedEventAttributes', 'workflowExecutionFailedEventAttributes'] as const;

/**
 * Runs the reimport workflow (metadata-only, the activities it reaches faked except `notify`, which goes to
 * `notifier` as the worker's does) and returns its outcome and its history.
 */
async function runReimport(notifier: Notifier, input: object, extra: Partial<ReimportActivities> = {}) {
  env ??= await workflowTestEnv();
  const taskQueue = `notify-${randomUUID()}`;
  const activities: Partial<ReimportActivities> = {
    preflight: preflightPassed,
    notify: async (event) => {
      await notifier.deliver(event);
    },
    ...extra,
  };
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../../src/workflows'),
    activities,
  });
  const workflowId = `reimport-notify-${randomUUID().slice(0, 8)}`;
  const handle = await env.client.workflow.start('reimport', { taskQueue, workflowId, args: [input] });
  const outcome = await worker.runUntil(
    handle.result().then(
      (result: unknown) => ({ result, error: undefined }),
      (error: unknown) => ({ result: undefined, error }),
    ),
  );
  const events = (await handle.fetchHistory()).events ?? [];
  return { workflowId, ...outcome, events };
}

/** The last notification the run scheduled: where it stands when the workflow closed, and its final attempt. */
function lastNotification(events: HistoryEvent[]) {
  const id = (e: HistoryEvent) => Number(e.eventId);
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'notify');
  const last = scheduled.at(-1)!;
  const of = (e: HistoryEvent) =>
    [
      e.activityTaskStartedEventAttributes,
      e.activityTaskCompletedEventAttributes,
      e.activityTaskFailedEventAttributes,
      e.activityTaskTimedOutEventAttributes,
    ].some((a) => a && Number(a.scheduledEventId) === id(last));
  const closed = events.find((e) => CLOSED.some((k) => e[k]));
  const ended = events.find((e) => of(e) && !e.activityTaskStartedEventAttributes);
  const started = events.find((e) => of(e) && e.activityTaskStartedEventAttributes);
  return {
    notifications: scheduled.length,
    /** completed / failed / timedOut, or pending when the workflow closed without it. */
    outcome: !ended
      ? 'pending'
      : ended.activityTaskCompletedEventAttributes
        ? 'completed'
        : ended.activityTaskFailedEventAttributes
          ? 'failed'
          : 'timedOut',
    endedBeforeWorkflow: !!ended && !!closed && id(ended) < id(closed),
    attempt: started?.activityTaskStartedEventAttributes?.attempt ?? 0,
  };
}

/**
 * A metadata-only run of the validation phase, completed, whose notifier tries each message once: any further try is
 * the notify activity's retry.
 */
async function completedDryRun(webhookUrl: string) {
  const notifier = createNotifier({ webhookUrl, emailTo: [], logger, retry: { attempts: 1, baseDelayMs: 10 } });
  try {
    const run = await runReimport(notifier, { dryRun: true, phases: ['validation'] });
    assert.equal(run.error, undefined, String(run.error));
    assert.equal((run.result as { status?: string }).status, 'dry_run');
    return { ...run, last: lastNotification(run.events) };
  } finally {
    await notifier.close();
  }
}

void test(
  'a run ends after its run_completed message arrived, a failing webhook retried by the notify activity',
  { timeout: 120_000 },
  async () => {
    // The receiver refuses the first run_completed message, and the notifier gives up on it after one try: only the
    // activity's own retry can bring it.
    const hook = await startWebhookReceiver(0, { text: /^\[fm-reimport\] run \S+ completed$/m, times: 1 });
    try {
      const { last, ...run } = await completedDryRun(hook.url);
      assert.equal(last.notifications, 3, 'run_started, phase_completed, run_completed');
      assert.deepEqual([last.outcome, last.endedBeforeWorkflow], ['completed', true]);
      assert.equal(last.attempt, 2, 'the refused message was sent again by the activity retry');
      const subjects = hook.received.map((r) => r.body.text.split('\n')[0]);
      assert.deepEqual(
        subjects.filter((t) => t === `[fm-reimport] run ${run.workflowId} completed`).length,
        1,
        JSON.stringify(subjects),
      );
      assert.ok(subjects.includes(`[fm-reimport] run ${run.workflowId} started`), JSON.stringify(subjects));
    } finally {
      await hook.close();
    }
  },
);

void test(
  'a webhook that stays down is given up after the notify retries and the run still completes',
  { timeout: 120_000 },
  async () => {
    const hook = await startWebhookReceiver(1_000);
    try {
      const { last } = await completedDryRun(hook.url);
      assert.deepEqual([last.outcome, last.endedBeforeWorkflow, last.attempt], ['failed', true, 3]);
      assert.equal(hook.received.length, 0);
    } finally {
      await hook.close();
    }
  },
);

void test(
  'a rolled-back run ends after its rolled_back message reached the webhook and the mailbox',
  { timeout: 120_000 },
  async () => {
    const hook = await startWebhookReceiver();
    const notifier = hookAndMailbox(hook.url, quick);
    try {
      const run = await runReimport(
        notifier,
        { dryRun: true, phases: ['patients'] },
        {
          dryRunTable: () => Promise.reject(ApplicationFailure.nonRetryable('counts differ', 'INTEGRITY_MISMATCH')),
        },
      );
      assert.ok(run.error, 'the run failed');
      assert.match(String((run.error as { cause?: unknown }).cause), /RUN_ROLLED_BACK|rolled back/);
      const last = lastNotification(run.events);
      assert.deepEqual([last.outcome, last.endedBeforeWorkflow], ['completed', true]);
      const rolledBack = new RegExp(`run ${run.workflowId} rolled back: INTEGRITY_MISMATCH`);
      assert.ok(
        hook.received.some((r) => rolledBack.test(r.body.text)),
        JSON.stringify(hook.received.map((r) => r.body.text)),
      );
      // A long subject is folded over two header lines.
      const subjects = mails.map((m) => subjectOf(m.raw.replace(/\r?\n(?=[ \t])/g, '')));
      assert.ok(
        subjects.some((s) => rolledBack.test(s)),
        JSON.stringify(subjects),
      );
    } finally {
      await notifier.close();
      await hook.close();
    }
  },
);
