/**
 * Debian's Chromium for the browser tests. playwright-core drives it through `executablePath`; a browser downloaded by
 * Playwright itself is never used (its download is blocked here, and a distribution package gets security updates).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags for headless Chromium as root on a machine with a closed network: without the background-networking flags
 * Chromium keeps opening connections that are refused (Google hosts, component updates, sync).
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The path to Debian's chromium; installs the package with apt-get when it is missing and we are root. */
export function ensureChromium(): string {
  if (executable(CHROMIUM_PATH)) return CHROMIUM_PATH;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(
      `${CHROMIUM_PATH} is missing and this process is not root; install it with ` +
        '`sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium`',
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env,
    });
  } catch (err) {
    throw new Error(`installing Debian's chromium failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!executable(CHROMIUM_PATH)) throw new Error(`apt-get installed chromium but ${CHROMIUM_PATH} is still missing`);
  return CHROMIUM_PATH;
}

if (require.main === module) console.log(ensureChromium());
