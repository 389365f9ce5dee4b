/**
 * Claris ID tokens for FileMaker Cloud, which accepts only `Authorization: FMID <token>` on both APIs. A token (a
 * Cognito ID token, a JWT) lives one hour; after that every call answers 401. The engine does not sign in itself: an
 * operator's command prints a fresh token on stdout (`FM_CLARIS_ID_TOKEN_COMMAND`), and this module runs it when the
 * token it holds is about to expire, or has been refused.
 *
 * Tokens never reach a log line, an error message or a command line: the command gets no argument from here, and a
 * failed command is reported by its exit code only (its output may be the token).
 */
import { execFile } from 'node:child_process';
import { FileMakerError } from '../errors';
import { FM_ERRORS } from './responses';

export interface ClarisIdTokenSource {
  /** A token with at least the refresh margin left; fetches a fresh one when needed (concurrent callers share it). */
  token(): Promise<string>;
  /** The server refused `rejected` (HTTP 401): drops it, unless a fresher one is already held, and returns a token. */
  refresh(rejected: string): Promise<string>;
}

export interface TokenCacheOptions {
  /** Fetch a new token this long before the old one expires (at most half its life). Default 5 minutes. */
  refreshBeforeMs?: number;
  /** Lifetime assumed for a token that is not a JWT with `exp`. Default one hour, as Claris issues them. */
  defaultLifetimeMs?: number;
  now?: () => number;
}

const DEFAULT_REFRESH_BEFORE_MS = 5 * 60_000;
const DEFAULT_LIFETIME_MS = 60 * 60_000;

/** The `exp` of a JWT, in milliseconds since the epoch; undefined for anything else. Its signature is not checked. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1] ?? '')) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    const exp = typeof payload === 'object' && payload !== null ? (payload as { exp?: unknown }).exp : undefined;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Holds one token at a time from `fetchToken`, replacing it a few minutes before its expiry or when refused. */
export function createTokenCache(fetchToken: () => Promise<string>, opts: TokenCacheOptions = {}): ClarisIdTokenSource {
  const now = opts.now ?? Date.now;
  const refreshBefore = opts.refreshBeforeMs ?? DEFAULT_REFRESH_BEFORE_MS;
  const lifetime = opts.defaultLifetimeMs ?? DEFAULT_LIFETIME_MS;
  let held: { token: string; refreshAt: number } | undefined;
  let inFlight: Promise<string> | undefined;
  const fetchNew = (): Promise<string> => {
    inFlight ??= (async () => {
      try {
        const token = await fetchToken();
        const fetchedAt = now();
        const expiresAt = jwtExpiry(token) ?? fetchedAt + lifetime;
        // A token that lives less than twice the margin is replaced halfway through what is left of it, not on every
        // call (an hour-long Claris token is replaced 5 minutes before its end).
        held = { token, refreshAt: expiresAt - Math.min(refreshBefore, (expiresAt - fetchedAt) / 2) };
        return token;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };
  return {
    token: () => (held !== undefined && now() < held.refreshAt ? Promise.resolve(held.token) : fetchNew()),
    refresh: (rejected) => {
      if (held?.token === rejected) held = undefined;
      return held !== undefined ? Promise.resolve(held.token) : fetchNew();
    },
  };
}

/**
 * Runs `command` through the shell and reads the token it prints (a leading `FMID ` is dropped). Nothing is passed
 * to it: the command finds its own credentials (a secrets manager, a refresh token in a file).
 */
export function tokenFromCommand(command: string, timeoutMs = 60_000): () => Promise<string> {
  return () =>
    new Promise((resolve, reject) => {
      execFile(
        '/bin/sh',
        ['-c', command],
        { timeout: timeoutMs, maxBuffer: 256 * 1024, windowsHide: true },
        (err, stdout) => {
          const token = String(stdout)
            .trim()
            .replace(/^FMID\s+/, '');
          if (err !== null || token === '' || /\s/.test(token)) {
            const why =
              err !== null ? `exit ${String(err.code ?? err.signal ?? 'error')}` : 'no single token on stdout';
            reject(
              new FileMakerError(`Claris ID token command failed (${why})`, undefined, undefined, {
                code: FM_ERRORS.AUTH_FAILED,
                // A sign-in service that is briefly unreachable is worth another attempt of the activity.
                retryable: true,
              }),
            );
            return;
          }
          resolve(token);
        },
      );
    });
}
