/**
 * A whole reimport against a FileMaker Cloud host (the simulator in Claris ID mode), end to end on the real dev
 * server, PostgreSQL, MinIO: the worker signs in only with FMID tokens printed by FM_CLARIS_ID_TOKEN_COMMAND, no user
 * or password configured. The tokens live 4 seconds, so the run (core and files phases) outlives several of them:
 * every source record still ends with a terminal ledger state, every file lands with its checksum, no call failed
 * for good on an expired token, and no token reaches a log line or the run's history.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { PHASES, SOURCE_TABLES, type SourceTableName } from '../../src/domain/tables';
import { startWorker } from '../../src/worker';
import type { ReimportResult } from '../../src/workflows/reimport';
import { assertFilesLanded, type Setup } from '../helpers/files';
import { tokenCommand } from '../../sim/server';
import { capturingLogger, prepareRun } from '../helpers/run';

const TOKEN_LIFETIME_MS = 4_000;
const TABLES = Object.keys(SOURCE_TABLES) as SourceTableName[];
const TERMINAL = new Set(['imported', 'unlinked', 'skipped', 'failed']);

describe('a reimport from a FileMaker Cloud host with Claris ID tokens that expire under the run', () => {
  let logLines: string[] = [];
  let s: Setup;
  let dir: string;
  let issuedFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fmid-'));
    issuedFile = join(dir, 'issued');
    await writeFile(issuedFile, '');
    const run = await prepareRun(
      // A little latency stretches the tiny run over several token lifetimes.
      {
        preset: 'tiny',
        seed: 17,
        sizeScale: 0.1,
        auth: 'fmid',
        faults: { fmidTokenLifetimeMs: TOKEN_LIFETIME_MS, latencyMs: 15 },
      },
      'claris-id',
    );
    // prepareRun configures a simulator in FMID mode with FM_AUTH=claris-id and no account; the token command
    // here also keeps the tokens it was given (no secret on the command line: an admin URL and a file path).
    assert.equal(run.env.FM_USERNAME ?? run.env.FM_PASSWORD, undefined, 'no account configured');
    const env = {
      ...run.env,
      FM_CLARIS_ID_TOKEN_COMMAND: tokenCommand(run.sim.adminUrl, issuedFile),
      LOG_LEVEL: 'debug',
    };
    const { logger, lines } = capturingLogger('debug');
    logLines = lines;
    const worker = await startWorker(loadConfig(env, 'worker'), logger);
    s = {
      ...run,
      env,
      worker,
      async close() {
        await worker.shutdown();
        await run.close();
      },
    };
  });

  after(async () => {
    await s?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(
    'the run completes on fresh tokens, every record ends terminal, and no token is logged or in the history',
    { timeout: 600_000 },
    async (t) => {
      const runId = `fmid-${randomUUID()}`;
      const t0 = Date.now();
      const handle = await s.client.workflow.start('reimport', {
        taskQueue: s.taskQueue,
        workflowId: runId,
        args: [{ phases: [...PHASES], settings: { chunkSize: 25, fileBatchSize: 6, cooldownBaseSeconds: 0.2 } }],
      });
      const result = (await handle.result()) as ReimportResult;
      const elapsedMs = Date.now() - t0;
      assert.equal(result.status, 'completed', 'run completed');

      for (const table of TABLES) {
        const truth = await fetch(`${s.sim.adminUrl}/truth/tables/${table}`);
        const body = (await truth.json()) as { records: { fieldData: Record<string, unknown> }[] };
        const ids = body.records
          .map((r) => `${(r.fieldData.id as string | number | undefined) ?? ''}`.trim().toLowerCase())
          .filter(Boolean);
        const ledger = await s.pool.query<{ filemaker_id: string; state: string }>(
          'select filemaker_id, state from import_ledger where run_id = $1 and source_table = $2',
          [runId, table],
        );
        const states = new Map(ledger.rows.map((r) => [r.filemaker_id, r.state]));
        const missing = ids.filter((id) => !TERMINAL.has(states.get(id) ?? ''));
        assert.deepEqual(missing, [], `${table}: ids without a terminal state`);
      }
      await assertFilesLanded(s, runId);

      const issued = (await readFile(issuedFile, 'utf8')).split('\n').filter(Boolean);
      const refused = logLines.filter((l) => l.includes('Claris ID token refused')).length;
      t.diagnostic(
        `run took ${Math.round(elapsedMs / 1000)} s; ${issued.length} tokens issued (each lives ` +
          `${TOKEN_LIFETIME_MS / 1000} s); ${refused} refused and replaced`,
      );
      // The run outlived its first tokens and went on with fresh ones ...
      assert.ok(elapsedMs > 2 * TOKEN_LIFETIME_MS, `the run (${elapsedMs} ms) outlives two tokens`);
      assert.ok(issued.length >= 3, `${issued.length} tokens issued`);
      assert.equal(new Set(issued).size, issued.length, 'every token issued is a new one');
      // ... fetched about every half lifetime, not on every call (`exp` is in whole seconds: a token may seem to live
      // up to a second less than it does).
      const bound = Math.ceil(elapsedMs / ((TOKEN_LIFETIME_MS - 1000) / 2)) + 2 + refused;
      assert.ok(issued.length <= bound, `${issued.length} tokens issued, at most ${bound} expected`);

      // No attempt of an activity failed on a refused or expired token (Temporal's retries would hide it otherwise:
      // a retried attempt shows only as the next attempt's last failure).
      const events = (await handle.fetchHistory()).events ?? [];
      const authFailures = events.flatMap((e) => {
        const message =
          e.activityTaskStartedEventAttributes?.lastFailure?.message ??
          e.activityTaskFailedEventAttributes?.failure?.message;
        return message && /952|401|212|claris|token|auth/i.test(message) ? [message] : [];
      });
      assert.deepEqual(authFailures, [], 'no activity failed on its credentials');
      const history = JSON.stringify(events, (_k, v: unknown) =>
        v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v,
      );

      const logs = logLines.join('');
      assert.ok(logs.length > 0, 'the worker logged');
      const inLogs = issued.filter((token) => logs.includes(token) || logs.includes(token.split('.')[2]!));
      assert.deepEqual(inLogs.length, 0, 'no token in the worker log');
      const inHistory = issued.filter((token) => history.includes(token) || history.includes(token.split('.')[2]!));
      assert.deepEqual(inHistory.length, 0, 'no token in the run history');
    },
  );
});
