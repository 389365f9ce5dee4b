/**
 * The body of `npm test`: lint, type-check, then every test suite on node's built-in runner against one real local
 * stack (Temporal dev server, PostgreSQL, MinIO) started here and stopped at the end. Ends with the runner's summary
 * and a plain `N passed, N failed` line.
 *
 *   npm test                     everything
 *   npm test -- unit store       only those suites (folders under test/)
 *   npm test -- e2e/files        only test files whose path under test/ starts with this
 *   npm test -- --skip-lint      tests only
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ensureChromium } from './ensure-chromium';
import { startStack } from './stack';

const root = join(__dirname, '..');
const SUITES = ['unit', 'sim', 'store', 'integration', 'e2e', 'slow'];

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? files(p) : name.endsWith('.test.ts') ? [p] : [];
    })
    .sort();
}

function step(name: string, cmd: string, args: string[]): boolean {
  process.stdout.write(`\n▶ ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  const ok = r.status === 0;
  process.stdout.write(`${ok ? '✔' : '✖'} ${name}\n`);
  return ok;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const skipLint = args.includes('--skip-lint');
  const chosen = args.filter((a) => !a.startsWith('--'));
  const suites = chosen.length > 0 ? chosen : SUITES;
  // Every suite runs on this Node (children start from process.execPath): the one bootstrap installed.
  console.log(`Node ${process.version} (${process.execPath})`);
  let checksPassed = 0;
  let checksFailed = 0;
  if (!skipLint) {
    const bin = (n: string) => join(root, 'node_modules', '.bin', n);
    for (const [name, cmd, a] of [
      ['eslint', bin('eslint'), ['.']],
      ['prettier', bin('prettier'), ['--check', '.']],
      ['typecheck', bin('tsc'), ['--noEmit', '-p', 'tsconfig.json']],
    ] as const) {
      if (step(name, cmd, [...a])) checksPassed++;
      else checksFailed++;
    }
  }

  const testFiles = suites.flatMap((s) =>
    s.includes('/')
      ? files(join(root, 'test', s.slice(0, s.indexOf('/')))).filter((f) =>
          relative(join(root, 'test'), f).startsWith(s),
        )
      : files(join(root, 'test', s)),
  );
  if (testFiles.length === 0) {
    console.log('no test files found');
    return 1;
  }
  // The dashboard test drives Debian's chromium: installed here, before the suites, so an apt-get on a fresh machine
  // does not spend the test's own timeout (it did: 90 s ran out while the package was being configured).
  if (testFiles.some((f) => f.endsWith('dashboard.test.ts') || f.endsWith('web-ui.test.ts'))) ensureChromium();
  // FM_REIMPORT_TEST_STACK names another state folder under .stack/, so two test runs on one machine do not share
  // (and reap) one stack.
  const stackName = process.env.FM_REIMPORT_TEST_STACK ?? 'test';
  if (!/^[a-z0-9-]+$/.test(stackName)) throw new Error('FM_REIMPORT_TEST_STACK: lowercase letters, digits and -');
  const stack = await startStack({
    stateDir: join(root, '.stack', stackName),
    fresh: true,
    ui: false,
    inMemory: true,
  });
  let output = '';
  let code: number;
  try {
    code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--test',
          '--test-reporter=spec',
          '--test-concurrency=2',
          ...testFiles.map((f) => relative(root, f)),
        ],
        {
          cwd: root,
          env: {
            ...process.env,
            ...stack.env,
            AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
            NODE_NO_WARNINGS: '1',
          },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      child.stdout.on('data', (chunk: Buffer) => {
        process.stdout.write(chunk);
        output += chunk.toString('utf8');
        if (output.length > 200_000) output = output.slice(-100_000);
      });
      child.on('exit', (c) => resolve(c ?? 1));
    });
  } finally {
    await stack.stop();
  }
  const count = (label: string) => Number(new RegExp(`ℹ ${label} (\\d+)`).exec(output)?.[1] ?? 0);
  const passed = count('pass') + checksPassed;
  const failed = count('fail') + checksFailed;
  const skipped = count('skipped');
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  return code === 0 && failed === 0 ? 0 : 1;
}

main().then(
  (c) => process.exit(c),
  (err: unknown) => {
    console.error(err);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
