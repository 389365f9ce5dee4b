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

/** `path`, installing Debian's `pkg` with apt-get when it is missing and we are root. */
function ensureDebianPackage(path: string, pkg: string): string {
  if (executable(path)) return path;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(
      `${path} is missing and this process is not root; install it with ` +
        `\`sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkg}\``,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env,
    });
  } catch (err) {
    throw new Error(`installing Debian's ${pkg} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!executable(path)) throw new Error(`apt-get installed ${pkg} but ${path} is still missing`);
  return path;
}

/** The path to Debian's chromium, installed when missing (as root). */
export function ensureChromium(): string {
  return ensureDebianPackage(CHROMIUM_PATH, 'chromium');
}

/** Poppler's pdftoppm, which renders a PDF's pages to images: the certificate test's check that its PDF renders. */
export function ensurePdftoppm(): string {
  return ensureDebianPackage('/usr/bin/pdftoppm', 'poppler-utils');
}

if (require.main === module) console.log(ensureChromium());
