/**
 * Nothing sensitive leaks: a full `tiny` reimport (every phase) on the real stack and simulator, with the worker
 * logging at debug (Temporal's SDK and Core too) into memory and notifications going to a local webhook receiver and
 * a local SMTP server. Every log line, every notification and the run's whole history — raw from the server and
 * decoded with the codec — is then searched for the FileMaker password and credentials, the session tokens and
 * container cookies the worker used (seen by a recording proxy in front of the simulator, not by logging them), the
 * other secrets of the run, and the patients' names, birth dates, health numbers and note text from the
 * simulator's ground truth. None may appear. Canaries show that each search finds what it looks for.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import nodemailer from 'nodemailer';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { startSimulator, type RunningSimulator } from '../../sim/server';
import { dataConverterFor, generateKeySpec, payloadCodecFromConfig } from '../../src/codec';
import { loadConfig, type Config } from '../../src/config';
import { createLogger } from '../../src/logger';
import { migrate } from '../../src/store/migrate';
import { installTemporalRuntime, startWorker, type RunningWorker } from '../../src/worker';
import type { RunProgress } from '../../src/workflows/messages';
import { createTestBucket, createTestDatabase, stackEnv } from '../helpers/stack';
import { historyText, payloadsIn } from '../helpers/history';

const FM_PASSWORD = `fm-Pa55-${randomBytes(6).toString('hex')}`;
const SMTP_PASSWORD = `smtp-Pa55-${randomBytes(6).toString('hex')}`;
const WEBHOOK_SECRET = `hook${randomBytes(8).toString('hex')}`;
const PAYLOAD_KEY_SPEC = generateKeySpec('leak-test');
/** How long the files phases may run after the core phases before the run is cancelled (and rolled back). */
const FILES_GRACE_MS = 30_000;
const CANCEL_GRACE_MS = 20_000;

// ---------------------------------------------------------------------------------------------------------------
// What to look for, and where

interface Needle {
  label: string;
  pattern: RegExp;
}
interface Haystack {
  name: string;
  text: string;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A secret: found anywhere, even inside a longer string. */
const secret = (label: string, value: string): Needle => ({ label, pattern: new RegExp(escapeRegExp(value)) });
/** A piece of patient data: found as a whole word (so `Tran` does not hit `transfer`), case as in the source. */
const word = (label: string, value: string): Needle => ({
  label,
  pattern: new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(value)}(?![\\p{L}\\p{N}])`, 'u'),
});

/** Every needle found in every haystack, with a little context. */
function findLeaks(haystacks: readonly Haystack[], needles: readonly Needle[]): string[] {
  const found: string[] = [];
  for (const h of haystacks) {
    for (const n of needles) {
      const m = n.pattern.exec(h.text);
      if (m) {
        const context = h.text.slice(Math.max(0, m.index - 80), m.index + m[0].length + 80).replace(/\s+/g, ' ');
        found.push(`${n.label} in ${h.name}: …${context}…`);
      }
    }
  }
  return found;
}

// Names, dates of birth in the forms the source and the mappers use, health numbers, addresses and note text.
const clean = (v: unknown) => (typeof v === 'string' ? v : '').replace(/[\u0000-\u001f\u007f]/g, '').trim();

function dateForms(raw: string): string[] {
  const forms = [raw];
  const m = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(raw);
  if (m) {
    const [a, b, y] = [m[1]!.padStart(2, '0'), m[2]!.padStart(2, '0'), m[3]!];
    forms.push(`${y}-${a}-${b}`, `${y}-${b}-${a}`);
  }
  return forms;
}

async function truth(sim: RunningSimulator, table: string): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${sim.adminUrl}/truth/tables/${table}`);
  const body = (await res.json()) as { records: { fieldData: Record<string, unknown> }[] };
  return body.records.map((r) => r.fieldData);
}

async function patientNeedles(sim: RunningSimulator): Promise<Needle[]> {
  const needles: Needle[] = [];
  for (const c of await truth(sim, 'API_Contacts')) {
    const first = clean(c.nameFirst);
    const last = clean(c.nameLast);
    if (first && last) needles.push(word('patient name', `${first} ${last}`));
    for (const part of [first, last]) if (part.length >= 4) needles.push(word('patient name part', part));
    const dob = clean(c.DOB);
    if (/\d{4}/.test(dob)) for (const form of dateForms(dob)) needles.push(word('patient birth date', form));
    const health = clean(c['Health Number']);
    if (health.replace(/\D/g, '').length >= 8) {
      needles.push(word('health number', health), word('health number', health.replace(/\s+/g, '')));
    }
  }
  for (const d of await truth(sim, 'API_Contact_Details')) {
    for (const field of ['ph', 'address 1']) {
      const v = clean(d[field]);
      if (v.length >= 8) needles.push(word(`contact ${field}`, v));
    }
  }
  for (const n of await truth(sim, 'API_Notes')) {
    const text = clean(n.Note).replace(/\s+/g, ' ');
    if (text.length < 30) continue;
    needles.push(secret('note text', text.slice(0, 30)));
    if (text.length >= 70) needles.push(secret('note text', text.slice(text.length - 30)));
  }
  return needles;
}

// ---------------------------------------------------------------------------------------------------------------
// A recording proxy in front of the simulator: the worker's FileMaker traffic passes through it, so the test learns
// every credential, token and cookie actually used without anything being logged.

interface Observed {
  basic: Set<string>;
  bearer: Set<string>;
  tokens: Set<string>;
  cookies: Set<string>;
  layouts: Set<string>;
}

async function startRecordingProxy(target: string, observed: Observed): Promise<{ url: string; close(): void }> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const auth = req.headers.authorization ?? '';
    const [scheme, value] = auth.split(' ');
    if (value && scheme === 'Basic') observed.basic.add(value);
    if (value && scheme === 'Bearer') observed.bearer.add(value);
    for (const m of (req.headers.cookie ?? '').matchAll(/X-FMS-Session-Key=([^;\s]+)/g)) observed.cookies.add(m[1]!);
    const layout = /\/layouts\/([^/]+)\//.exec(req.url ?? '')?.[1];
    if (layout) observed.layouts.add(decodeURIComponent(layout));
    // The Host header is kept: the simulator builds container URLs from it, so downloads come back through here.
    const up = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        const token = upRes.headers['x-fm-data-access-token'];
        if (typeof token === 'string' && token) observed.tokens.add(token);
        for (const c of upRes.headers['set-cookie'] ?? []) {
          const m = /X-FMS-Session-Key=([^;\s]+)/.exec(c);
          if (m) observed.cookies.add(m[1]!);
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Notification receivers

async function startWebhookReceiver(bodies: string[]): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // The URL path is the secret itself (where the message goes), so only the body is searched.
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T0/B0/${WEBHOOK_SECRET}`, server };
}

/** A webhook body as sent and with its JSON strings unescaped (a name could hide behind \u escapes). */
function webhookText(json: string): string {
  const strings: string[] = [];
  try {
    JSON.parse(json, (_k, v: unknown) => {
      if (typeof v === 'string') strings.push(v);
      return v;
    });
  } catch {
    /* searched as sent */
  }
  return `${json}\n${strings.join('\n')}`;
}

/** A mail as sent plus its headers' encoded words and its body's transfer encoding undone. */
function mailText(raw: string): string {
  const split = raw.search(/\r?\n\r?\n/);
  const head = (split < 0 ? raw : raw.slice(0, split)).replace(/\r?\n[ \t]+/g, ' ');
  const body = split < 0 ? '' : raw.slice(split).replace(/^\r?\n\r?\n/, '');
  const qp = (s: string) => {
    const bytes: number[] = [];
    const text = s.replace(/=\r?\n/g, '');
    for (let i = 0; i < text.length; i++) {
      const hex = text[i] === '=' ? /^[0-9A-Fa-f]{2}/.exec(text.slice(i + 1, i + 3)) : null;
      if (hex) {
        bytes.push(parseInt(hex[0], 16));
        i += 2;
      } else bytes.push(...Buffer.from(text[i]!, 'utf8'));
    }
    return Buffer.from(bytes).toString('utf8');
  };
  const headers = head.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_m, _cs, enc: string, text: string) =>
    enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64').toString('utf8') : qp(text.replace(/_/g, ' ')),
  );
  const cte = /^Content-Transfer-Encoding:\s*(\S+)/im.exec(head)?.[1]?.toLowerCase();
  const decoded =
    cte === 'quoted-printable'
      ? qp(body)
      : cte === 'base64'
        ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
        : body;
  return `${raw}\n${headers}\n${decoded}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The run's history: the parent and every child and continued run, raw as the server keeps it

type History = Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>;

async function runHistories(client: Client, rootId: string): Promise<{ id: string; history: History }[]> {
  const out: { id: string; history: History }[] = [];
  const queue: { workflowId: string; runId?: string }[] = [{ workflowId: rootId }];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const { workflowId, runId } = queue.shift()!;
    const key = `${workflowId} ${runId ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    out.push({ id: `${workflowId}${runId ? ` (${runId})` : ''}`, history });
    for (const e of history.events ?? []) {
      const child = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
      if (child?.workflowId) queue.push({ workflowId: child.workflowId, runId: child.runId ?? undefined });
      const next = e.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
      if (next) queue.push({ workflowId, runId: next });
    }
  }
  return out;
}

const payloadText = (p: Payload) =>
  [...Object.values(p.metadata ?? {}), p.data ?? new Uint8Array()]
    .map((b) => Buffer.from(b).toString('utf8'))
    .join(' ');

// ---------------------------------------------------------------------------------------------------------------

/**
 * Lets the run finish; if the files phases (which may be unfinished work in this build) are still going a while
 * after the core phases, cancels it, which rolls it back — logs, notifications and history of that path count too.
 */
async function finishOrCancel(handle: WorkflowHandle): Promise<string> {
  const core = new Set(['backup', 'delete', 'patients', 'appointments', 'notes', 'referrers']);
  let coreDoneAt: number | undefined;
  const result = handle.result().then(
    () => 'completed',
    (err: unknown) => {
      if (err instanceof WorkflowFailedError) return `failed (${err.cause?.message ?? 'no cause'})`;
      throw err;
    },
  );
  for (;;) {
    const settled = await Promise.race([result, delay(1000).then(() => undefined)]);
    if (settled !== undefined) return settled;
    const progress = await handle.query<RunProgress>('progress').catch(() => undefined);
    const coreDone = progress?.phases
      .filter((p) => core.has(p.phase))
      .every((p) => p.status !== 'pending' && p.status !== 'running');
    if (coreDone) coreDoneAt ??= Date.now();
    if (coreDoneAt !== undefined && Date.now() - coreDoneAt > FILES_GRACE_MS) {
      await handle.cancel();
      const after = await Promise.race([result, delay(CANCEL_GRACE_MS).then(() => undefined)]);
      if (after !== undefined) return `cancelled after the core phases: ${after}`;
      // A files phase that does not honour the cancel must not hang this test: what ran so far is searched.
      await handle.terminate('leak test: the cancel did not finish');
      await result.catch(() => undefined);
      return 'cancelled after the core phases, then terminated (the cancel did not finish)';
    }
  }
}

describe('nothing sensitive leaks from a full tiny reimport', () => {
  const logLines: string[] = [];
  const logger = createLogger({
    level: 'debug',
    name: 'fm-reimport-worker',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(chunk.toString('utf8'));
        cb();
      },
    }),
  });
  const webhookBodies: string[] = [];
  const mails: string[] = [];
  const observed: Observed = {
    basic: new Set(),
    bearer: new Set(),
    tokens: new Set(),
    cookies: new Set(),
    layouts: new Set(),
  };
  let sim: RunningSimulator;
  let proxy: { url: string; close(): void };
  let webhook: { url: string; server: Server };
  let smtp: SMTPServer;
  let worker: RunningWorker | undefined;
  let connection: Connection;
  let config: Config;
  let pool: pg.Pool;
  let runtimeInstalled = false;
  let s3Secret = '';

  before(async () => {
    // Before anything creates Temporal's Runtime: the SDK's and Core's own messages at debug go into the capture too.
    runtimeInstalled = installTemporalRuntime(logger, { sdkLevel: 'DEBUG' });
    const env = await stackEnv();
    s3Secret = env.S3_SECRET_ACCESS_KEY ?? '';
    const db = await createTestDatabase();
    const bucket = await createTestBucket();
    await migrate(db.url);
    sim = await startSimulator({ preset: 'tiny', seed: 11, password: FM_PASSWORD });
    proxy = await startRecordingProxy(sim.url, observed);
    webhook = await startWebhookReceiver(webhookBodies);
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
      onData(stream, _session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push(Buffer.concat(chunks).toString('utf8'));
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    const smtpPort = ((smtp as unknown as { server: Server }).server.address() as AddressInfo).port;
    config = loadConfig({
      ...env,
      DATABASE_URL: db.url,
      S3_BUCKET: bucket,
      FM_URL: proxy.url,
      FM_DATABASE: sim.database,
      FM_USERNAME: sim.username,
      FM_PASSWORD: sim.password,
      TEMPORAL_TASK_QUEUE: `leak-${randomUUID()}`,
      PAYLOAD_KEYS: PAYLOAD_KEY_SPEC,
      NOTIFY_WEBHOOK_URL: webhook.url,
      NOTIFY_SMTP_URL: `smtp://notify:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${smtpPort}`,
      NOTIFY_EMAIL_FROM: 'fm-reimport@clinic.test',
      NOTIFY_EMAIL_TO: 'ops@clinic.test',
      NOTIFY_COOLDOWN_THRESHOLD_SECONDS: '1',
      LOG_LEVEL: 'debug',
      LOG_FORMAT: 'json',
    });
    worker = await startWorker(config, logger);
    connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
    pool = new pg.Pool({ connectionString: db.url });
  });

  after(async () => {
    await worker?.shutdown();
    await connection?.close();
    await pool?.end();
    proxy?.close();
    await new Promise<void>((r) => webhook?.server.close(() => r()));
    await new Promise<void>((r) => (smtp ? smtp.close(() => r()) : r()));
    await sim?.close();
  });

  test(
    'logs, notifications and the raw and decoded history hold no secret, token, cookie or patient data',
    { timeout: 420_000 },
    async (t) => {
      assert.ok(runtimeInstalled, 'the Temporal Runtime logs into the captured logger (nothing created it earlier)');
      const codec = payloadCodecFromConfig(config);
      const encrypted = new Client({
        connection,
        namespace: config.temporal.namespace,
        dataConverter: dataConverterFor(codec),
      });
      const raw = new Client({ connection, namespace: config.temporal.namespace });

      // Every phase, as `npm start` runs it. The files phases may or may not be implemented in this build, and
      // a run may end completed or rolled back: either way its logs, messages and history must be clean.
      const runId = `leak-${randomUUID().slice(0, 8)}`;
      const handle = await encrypted.workflow.start('reimport', {
        taskQueue: config.temporal.taskQueue,
        workflowId: runId,
        args: [{ settings: { chunkSize: 9, fileBatchSize: 5, cooldownBaseSeconds: 0.2, cooldownMaxSeconds: 1 } }],
      });
      const outcome = await finishOrCancel(handle);
      // Patient data really went through the worker.
      const ledger = await pool.query<{ source_table: string; n: number }>(
        `select source_table, count(*)::int as n from import_ledger
          where run_id = $1 and state in ('imported', 'unlinked') group by source_table`,
        [runId],
      );
      const landed = Object.fromEntries(ledger.rows.map((r) => [r.source_table, r.n]));
      assert.ok((landed.API_Contacts ?? 0) > 0, `patients were imported (run ${outcome}): ${JSON.stringify(landed)}`);
      assert.ok((landed.API_Notes ?? 0) > 0, `notes were imported (run ${outcome}): ${JSON.stringify(landed)}`);
      assert.ok(observed.layouts.has('API_Contacts'), 'patient records were fetched through the proxy');

      // The run ends only after its notifications went out, the last one included (completed; rolled back after a
      // failure or a cancel; failed when the rollback did not finish): nothing is waited for here. A terminated run
      // never reaches its last message.
      assert.ok(webhookBodies.length >= 2, `notifications reached the webhook: ${webhookBodies.length}`);
      assert.ok(mails.length >= 2, `notifications reached the mailbox: ${mails.length}`);
      if (!outcome.includes('terminated')) {
        const ending =
          outcome === 'completed' ? 'completed' : outcome.includes('rollback incomplete') ? 'FAILED' : 'rolled back';
        const last = new RegExp(`\\[fm-reimport\\] run ${runId} ${ending}`);
        assert.ok(
          webhookBodies.some((b) => last.test(webhookText(b))),
          `run ${outcome}: its last message reached the webhook`,
        );
        assert.ok(
          mails.some((m) => last.test(mailText(m))),
          `run ${outcome}: its last message reached the mailbox`,
        );
      }
      assert.ok(logLines.length > 200, `debug logging captured a real amount of lines: ${logLines.length}`);

      // The secrets of this run, including every credential, token and cookie the proxy saw in use.
      assert.ok(observed.basic.size > 0 || observed.bearer.size > 0, 'the proxy saw the worker authenticate');
      assert.ok(observed.tokens.size > 0, 'the proxy saw at least one Data API session token');
      const secrets: Needle[] = [
        secret('FileMaker password', FM_PASSWORD),
        secret('FileMaker password (URL-encoded)', encodeURIComponent(FM_PASSWORD)),
        ...[...observed.basic].map((v) => secret('FileMaker Basic credentials', v)),
        ...[...observed.bearer, ...observed.tokens].map((v) => secret('FileMaker session token', v)),
        ...[...observed.cookies].map((v) => secret('X-FMS-Session-Key cookie', v)),
        secret('SMTP password', SMTP_PASSWORD),
        secret('webhook URL secret', WEBHOOK_SECRET),
        secret('payload encryption key', PAYLOAD_KEY_SPEC.split(':')[1]!),
        ...(s3Secret ? [secret('S3 secret key', s3Secret)] : []),
      ];
      const patients = await patientNeedles(sim);
      assert.ok(patients.length > 50, `a real sample of patient data to look for: ${patients.length} needles`);

      const logs: Haystack[] = logLines.map((text, i) => ({ name: `log line ${i + 1}`, text }));
      const notifications: Haystack[] = [
        ...webhookBodies.map((b, i) => ({ name: `webhook message ${i + 1}`, text: webhookText(b) })),
        ...mails.map((m, i) => ({ name: `mail ${i + 1}`, text: mailText(m) })),
      ];
      const histories = await runHistories(raw, runId);
      assert.ok(histories.length >= 5, `the parent and its phase children: ${histories.length} histories`);
      const rawHistory: Haystack[] = histories.map((h) => ({
        name: `raw history of ${h.id}`,
        text: historyText(h.history),
      }));
      const found = histories.flatMap((h) => payloadsIn(h.history).map((p) => ({ ...p, id: h.id })));
      // Search attributes are indexed by the server and never pass the codec, nor does a patch marker's data (the SDK
      // writes the patch id itself); everything else must be encrypted. Both are still searched as raw history.
      const coded = found.filter((p) => !p.path.includes('indexedFields') && !p.path.includes('.details.patch-data.'));
      const plain = coded.filter((p) => Buffer.from(p.payload.metadata!.encoding!).toString() !== 'binary/encrypted');
      assert.ok(coded.length > 20, `the histories carry payloads: ${coded.length}`);
      assert.deepEqual(
        plain.map((p) => `${p.id}${p.path}`),
        [],
        'every payload in the raw history is encrypted',
      );
      const decoded = await codec.decode(coded.map((p) => p.payload));
      const decodedHistory: Haystack[] = decoded.map((p, i) => ({
        name: `decoded payload ${coded[i]!.id}${coded[i]!.path}`,
        text: payloadText(p),
      }));
      assert.ok(
        decodedHistory.some((h) => h.text.includes(runId)),
        'decoding works: the run id is readable in the decoded payloads',
      );

      const leaks = findLeaks([...logs, ...notifications, ...rawHistory, ...decodedHistory], [...secrets, ...patients]);
      t.diagnostic(
        `run ${outcome}; searched ${logs.length} log lines, ${webhookBodies.length} webhook messages, ` +
          `${mails.length} mails, ${histories.length} histories with ${coded.length} payloads, for ` +
          `${secrets.length} secrets (${observed.tokens.size} session tokens, ${observed.cookies.size} container ` +
          `cookies) and ${patients.length} pieces of patient data`,
      );
      if (leaks.length > 0) {
        // What was searched, for whoever has to find the leak (synthetic data from the simulator only).
        const dir = join(__dirname, '..', '..', 'artifacts', 'leak-test');
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'logs.ndjson'), logLines.join(''));
        writeFileSync(join(dir, 'notifications.txt'), notifications.map((n) => `## ${n.name}\n${n.text}`).join('\n'));
        writeFileSync(join(dir, 'findings.txt'), leaks.join('\n'));
      }
      assert.deepEqual(leaks, [], `run ${outcome}: nothing sensitive in logs, notifications or history`);
    },
  );

  test('the searches find what they look for: canaries in a log line, a mail, a webhook message and a payload', async () => {
    const patients = await patientNeedles(sim);
    const contacts = await truth(sim, 'API_Contacts');
    const notes = await truth(sim, 'API_Notes');
    const person = contacts.find((c) => clean(c.nameFirst).length >= 4 && clean(c.nameLast).length >= 4)!;
    const name = `${clean(person.nameFirst)} ${clean(person.nameLast)}`;
    const note = clean(notes.find((n) => clean(n.Note).length >= 40)!.Note).replace(/\s+/g, ' ');

    // A log line written the way the worker writes them.
    const canaryLines: string[] = [];
    const canaryLogger = createLogger({
      level: 'debug',
      destination: new Writable({
        write(chunk: Buffer, _enc, cb) {
          canaryLines.push(chunk.toString('utf8'));
          cb();
        },
      }),
    });
    canaryLogger.debug({ patient: name, password: FM_PASSWORD, fmPassword: FM_PASSWORD }, 'careless debug line');
    const inLog = findLeaks(
      [{ name: 'canary log line', text: canaryLines.join('') }],
      [...patients, secret('FileMaker password', FM_PASSWORD)],
    );
    assert.ok(
      inLog.some((l) => l.startsWith('patient name ')),
      `the patient name is found in the log line: ${inLog.join(' | ')}`,
    );
    assert.ok(
      inLog.some((l) => l.startsWith('FileMaker password')),
      'a password under a key redaction does not know is found',
    );
    assert.ok(!canaryLines.join('').includes(`"password":"${FM_PASSWORD}"`), 'the `password` key itself is redacted');

    // A mail with non-ASCII text is sent quoted-printable or base64: the search must see through both.
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true });
    for (const text of [`${name} Chloé ${note}`, `${name} ${'山田'.repeat(40)} ${note}`]) {
      const info = await transport.sendMail({ from: 'a@clinic.test', to: 'b@clinic.test', subject: `${name} é`, text });
      const mail = Buffer.from(info.message as Buffer).toString('utf8');
      const inMail = findLeaks([{ name: 'canary mail', text: mailText(mail) }], patients);
      assert.ok(
        inMail.some((l) => l.startsWith('patient name ')),
        `the name is found in the mail: ${inMail.join(' | ')}`,
      );
      assert.ok(
        inMail.some((l) => l.startsWith('note text')),
        `the note is found in the mail: ${inMail.join(' | ')}`,
      );
    }

    // A webhook message whose JSON escapes every non-ASCII character.
    const escaped = JSON.stringify({ text: `${name} ${note}` }).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    const inHook = findLeaks([{ name: 'canary webhook', text: webhookText(escaped) }], patients);
    assert.ok(
      inHook.some((l) => l.startsWith('patient name ')),
      `the name is found in the webhook body: ${inHook.join(' | ')}`,
    );

    // A payload: invisible encrypted, found once decoded.
    const codec = payloadCodecFromConfig(config);
    const [enc] = await codec.encode([defaultPayloadConverter.toPayload({ patient: name, note })]);
    assert.deepEqual(findLeaks([{ name: 'encrypted payload', text: payloadText(enc!) }], patients), []);
    const [dec] = await codec.decode([enc!]);
    const inPayload = findLeaks([{ name: 'decoded payload', text: payloadText(dec!) }], patients);
    assert.ok(
      inPayload.some((l) => l.startsWith('note text')),
      `the note is found in the decoded payload: ${inPayload.join(' | ')}`,
    );
  });
});
