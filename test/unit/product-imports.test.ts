/**
 * Every module in src/ is part of the product: reached by imports from the entry points the project runs — the
 * commands package.json and docker-compose.yml start (worker, client, migrate, start, the bundle, the worker's
 * healthcheck) and the workflow entry the worker loads by path — not only from the tests. Code that only tests
 * reach is either dead or a second copy of something that runs.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const root = resolve(__dirname, '../..');

/** package.json scripts that are not the product's own commands (tests, benchmarks, the simulator, fixtures). */
const NOT_PRODUCT = /^(test|bench|sim|record-histories|lint|format|typecheck)(:|$)/;
/** Files a command line names: `tsx src/x.ts`, `node dist/src/x.js`, `scripts/x.ts`. */
const COMMAND_FILE = /(?:^|[\s'"])((?:dist\/)?(?:src|scripts)\/[\w./-]+\.(?:ts|js|mjs))/g;
/** Relative specifiers: static imports and re-exports, dynamic import(), require.resolve(). */
const SPECIFIER =
  /(?:\bfrom\s+|\bimport\s*\(\s*|\brequire(?:\.resolve)?\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

function filesIn(commandLine: string): string[] {
  return [...commandLine.matchAll(COMMAND_FILE)].map(([, f]) => f!.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
}

function entryPoints(): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const commands = Object.entries(pkg.scripts)
    .filter(([name]) => !NOT_PRODUCT.test(name))
    .map(([, line]) => line);
  const compose = readFileSync(join(root, 'docker-compose.yml'), 'utf8')
    .split('\n')
    .filter((line) => /^\s*(command|test):/.test(line));
  // The worker loads the workflows by path (require.resolve('./workflows') or the bundle built from it).
  return [...new Set([...commands, ...compose].flatMap(filesIn).concat('src/workflows/index.ts'))];
}

function resolveModule(from: string, specifier: string): string | undefined {
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base, `${base}.ts`, `${base}.mjs`, join(base, 'index.ts')]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

function reached(entries: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const todo = entries.map((e) => join(root, e));
  for (let file = todo.pop(); file !== undefined; file = todo.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      const target = resolveModule(file, specifier!);
      if (target && !seen.has(target)) todo.push(target);
    }
  }
  return seen;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sourceFiles(path);
    return d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [path] : [];
  });
}

void test('the entry points are the commands the project runs', () => {
  const entries = entryPoints();
  for (const e of ['src/worker.ts', 'src/client/cli.ts', 'src/store/migrate-cli.ts', 'scripts/worker-health.ts']) {
    assert.ok(entries.includes(e), `${e} among ${entries.join(', ')}`);
  }
  for (const e of entries) assert.ok(existsSync(join(root, e)), `${e} exists`);
});

void test('every module in src/ is imported by the product, not only by tests', () => {
  const imported = reached(entryPoints());
  const unreached = sourceFiles(join(root, 'src'))
    .filter((f) => !imported.has(f))
    .map((f) => relative(root, f));
  assert.deepEqual(unreached, []);
});
