/**
 * How production starts the worker — compiled JavaScript under plain node with the memory flags of
 * `npm run worker:prod` — for the benchmark and the tests that measure or kill a worker process, so what they
 * measure is what runs. The flags are read from package.json, the one place they are written.
 *
 * - `--max-old-space-size`: V8 otherwise lets garbage pile up to hundreds of MB under the files phases' allocation
 *   rate before it collects (measured: heap used 58 → 191 MB during a run, back to 71 MB after); the worker's live
 *   heap stays near 70 MB.
 * - `--max-semi-space-size=1`: a small young generation, so file chunks (whose bytes live outside the JS heap and
 *   hardly fill it) are freed by frequent scavenges rather than piling up until V8's external-memory trigger. Measured
 *   on the 1 GiB slow test, peak worker RSS at 4 MB: 267, 257 MiB, and 258, 300 MiB (over the 300 MB target) with one
 *   part in flight instead of two; at 1 MB: 245, 247, 247 MiB. Same machine, same hour.
 * - `--expose-gc`: a multipart upload collects once per part (see collectPassedChunks in src/s3/upload.ts).
 * - `MALLOC_ARENA_MAX=2`: glibc would give each of the native threads (Temporal Core, libvips, libuv) its own arenas.
 * - `MALLOC_MMAP_THRESHOLD_=131072`: buffers of 128 KiB and more (file bodies, parts) are mapped and handed back to
 *   the system when freed; glibc's default raises that threshold after each free, so they would fragment the heap
 *   instead (measured at the clinic's file sizes: ~20 MB less resident during the images phase).
 *   (An env assignment before `node` in package.json, parsed by productionWorkerLaunch.)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..');
/** What tsconfig.build.json compiles under dist/ (the workflow bundle beside them is built apart). */
const COMPILED_DIRS = ['src', 'migrations', 'scripts'];

export interface WorkerLaunch {
  /** Node flags before the script. */
  nodeArgs: string[];
  /** Environment variables the script sets. */
  env: Record<string, string>;
}

/** The node flags and environment of the `worker:prod` script in package.json. */
export function productionWorkerLaunch(): WorkerLaunch {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const script = pkg.scripts['worker:prod'];
  if (script === undefined) throw new Error('package.json has no worker:prod script');
  const words = script.split(/\s+/).filter((w) => w !== '');
  const env: Record<string, string> = {};
  const nodeArgs: string[] = [];
  let seenNode = false;
  for (const w of words) {
    if (!seenNode && /^[A-Z_]+=/.test(w)) {
      const i = w.indexOf('=');
      env[w.slice(0, i)] = w.slice(i + 1);
    } else if (w === 'node') seenNode = true;
    else if (seenNode && w.startsWith('--')) nodeArgs.push(w);
  }
  if (!seenNode) throw new Error('worker:prod does not start node');
  return { nodeArgs, env };
}

let built = false;

/** Compiles src/ and scripts/worker-process.ts into dist/ (`npm run build:js`), once per process. */
export function ensureBuilt(): string {
  if (!built) {
    // tsc leaves the output of a moved or deleted source file in place, where a `require` can still find it first
    // (`files.js` before `files/index.js`): compile into an emptied tree.
    for (const dir of COMPILED_DIRS) rmSync(join(ROOT, 'dist', dir), { recursive: true, force: true });
    execFileSync(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
      {
        cwd: ROOT,
        stdio: 'inherit',
      },
    );
    built = true;
  }
  return join(ROOT, 'dist', 'scripts', 'worker-process.js');
}
