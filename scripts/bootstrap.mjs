// Installs what `npm start` and `npm test` need before any TypeScript can run: the npm dependencies
// (when node_modules is missing or older than the lock file). Plain Node, no dependencies.
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
if (stale) {
  // `npm install` rather than `npm ci`: npm 11 leaves other platforms' optional packages (swc, rollup) out of the
  // lock file, and `npm ci` then refuses it as out of sync. Versions still come from package-lock.json.
  console.error('[bootstrap] installing npm dependencies');
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
