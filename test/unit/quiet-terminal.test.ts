import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { openTerminal } from '../../scripts/terminal';

const fixture = join(__dirname, '..', 'fixtures', 'quiet-terminal.ts');

/** True while any process is in the process group `pgid` (the detached service and whatever it spawned). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Run {
  child: ChildProcessByStdio<null, Readable, Readable>;
  dir: string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runFixture(): Run {
  const dir = mkdtempSync(join(tmpdir(), 'quiet-terminal-'));
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, join(dir, 'log'), join(dir, 'pid')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, dir, stderr: () => err, exit };
}

/** Reads `n` lines of the child's stdout, as `head -n` does, then closes the reading end. */
async function head(run: Run, n: number): Promise<string[]> {
  const lines = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    run.child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const got = out.split('\n');
      if (got.length > n) resolve(got.slice(0, n));
    });
    run.exit.then(({ code }) => reject(new Error(`exited (${code}) before ${n} lines: ${run.stderr()}`)), reject);
  });
  run.child.stdout.destroy();
  return lines;
}

async function exitWithin(run: Run, ms: number) {
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
  const result = await Promise.race([run.exit, timer]);
  if (result === 'timeout') {
    run.child.kill('SIGKILL');
    assert.fail(`still running ${ms} ms after its output closed (stderr: ${run.stderr().slice(0, 500)})`);
  }
  return result;
}

async function assertStoppedCleanly(run: Run, linesRead: number) {
  const { code, signal } = await exitWithin(run, 15_000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, run.stderr());
  const service = Number(readFileSync(join(run.dir, 'pid'), 'utf8'));
  assert.ok(service > 0);
  assert.equal(groupAlive(service), false, `the detached service ${service} was stopped`);
  assert.equal(groupAlive(run.child.pid!), false);
  assert.match(run.stderr(), /stopping…/);
  assert.doesNotMatch(run.stderr(), /EPIPE|Error/);
  // The warnings went to the log file, none to the terminal.
  const warnings = readFileSync(join(run.dir, 'log'), 'utf8').trim().split('\n');
  assert.ok(warnings.length >= linesRead, `${warnings.length} log lines`);
  assert.equal(JSON.parse(warnings[0]!).level, 40);
}

void test('a closed output (npm start | head -n 5) stops the program and its detached services as Ctrl-C does', async () => {
  const run = runFixture();
  try {
    const lines = await head(run, 5);
    assert.deepEqual(lines, ['progress 0', 'progress 1', 'progress 2', 'progress 3', 'progress 4']);
    await assertStoppedCleanly(run, 5);
  } finally {
    rmSync(run.dir, { recursive: true, force: true });
  }
});

void test('Ctrl-C after the output reader died (npm start | tee log) stops everything and exits', async () => {
  const run = runFixture();
  try {
    await head(run, 3);
    // Ctrl-C reaches tee and the program together: the pipe closes while the stop starts.
    run.child.kill('SIGINT');
    await assertStoppedCleanly(run, 3);
  } finally {
    rmSync(run.dir, { recursive: true, force: true });
  }
});

void test('after the first failed write nothing more is written, onClosed runs once, and warnings are counted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quiet-terminal-'));
  try {
    let attempts = 0;
    const broken = () =>
      new Writable({
        write(_chunk, _enc, cb) {
          attempts++;
          cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        },
      });
    let closed = 0;
    const terminal = openTerminal({
      logFile: join(dir, 'log'),
      onClosed: () => closed++,
      stdout: broken(),
      stderr: broken(),
    });
    terminal.print('first');
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 100; i++) terminal.print(`line ${i}`);
    terminal.note('on stderr');
    await new Promise((resolve) => setImmediate(resolve));
    terminal.note('again');
    assert.equal(closed, 1);
    assert.equal(attempts, 2, 'one write to each stream, none after it failed');
    assert.equal(terminal.closed(), true);

    terminal.logDestination.write('{"level":30,"msg":"info"}\n');
    terminal.logDestination.write('{"level":40,"msg":"warn"}\n');
    terminal.logDestination.write('{"level":50,"msg":"error"}\n');
    terminal.close();
    assert.equal(terminal.warnings(), 2);
    assert.deepEqual(
      readFileSync(join(dir, 'log'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { msg: string }).msg),
      ['info', 'warn', 'error'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
