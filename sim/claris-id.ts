// Claris ID for a FileMaker Cloud host: both APIs take only `Authorization: FMID <token>`, a Cognito ID token that
// lives an hour. The admin port issues the tokens in Cognito's stead; they are JWT-shaped so a client can read `exp`
// the way it would from a real one. Tokens belong to Claris, not to the host: a server restart does not touch them.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';

/** How a host lets clients sign in: Basic with an account (FileMaker Server), or only Claris ID (FileMaker Cloud). */
export type AuthMode = 'basic' | 'fmid';

/** The outcome of checking an `Authorization` header at sign-in (Data API) or on a request (OData). */
export type Credentials = 'ok' | 'missing' | 'refused' | 'expired';

export interface ClarisIdToken {
  token: string;
  /** ISO 8601. */
  expiresAt: string;
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');

export class ClarisIdTokens {
  private readonly secret = randomBytes(32);
  /** Expiry (ms since the epoch) of every token issued. */
  private readonly expiries = new Map<string, number>();

  issue(username: string, lifetimeMs: number): ClarisIdToken {
    const now = Date.now();
    const expiresAt = now + lifetimeMs;
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const payload = b64url(
      JSON.stringify({
        sub: randomUUID(),
        iss: 'fm-sim',
        token_use: 'id',
        'cognito:username': username,
        iat: Math.floor(now / 1000),
        // Rounded down, so a client that trusts `exp` never uses a token past its end.
        exp: Math.floor(expiresAt / 1000),
      }),
    );
    const signature = b64url(createHmac('sha256', this.secret).update(`${header}.${payload}`).digest());
    const token = `${header}.${payload}.${signature}`;
    this.expiries.set(token, expiresAt);
    return { token, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** `ok` for a token issued here and still alive, `expired` for any other (unknown tokens included). */
  check(token: string): Credentials {
    const expiresAt = this.expiries.get(token);
    return expiresAt !== undefined && Date.now() < expiresAt ? 'ok' : 'expired';
  }
}

/**
 * FM_CLARIS_ID_TOKEN_COMMAND for a worker signing in to a simulator in FMID mode: scripts/sim-fmid-token.mjs asking
 * its admin port, and appending each token to `issuedFile` when one is given (for a test that counts them).
 */
export function tokenCommand(adminUrl: string, issuedFile?: string): string {
  const args = [process.execPath, join(__dirname, '..', 'scripts', 'sim-fmid-token.mjs'), adminUrl, issuedFile];
  return args.flatMap((a) => (a === undefined ? [] : [`"${a}"`])).join(' ');
}
