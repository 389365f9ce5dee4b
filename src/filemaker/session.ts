/**
 * Session: how this client proves who it is. Basic credentials (FileMaker Server) or Claris ID tokens (FileMaker
 * Cloud, `FMID`) on the Data API login and on every OData request; and the Data API token's lifecycle: one token per
 * process, concurrent callers waiting on one login, replaced before FileMaker's 15-minute idle expiry, and on 952 (or
 * HTTP 401) dropped, logged in again and the call repeated exactly once.
 */
import type { Dispatcher } from 'undici';
import type { ClarisIdTokenSource } from './claris-id';
import { errorForFmCode, errorForStatus, parseEnvelope, pathSegment, readJsonBody } from './responses';
import { errCode, header, type RequestKind, type Transport } from './transport';

export interface SessionOptions {
  /** Basic auth; unused when `clarisId` is set. */
  username: string;
  password: string;
  clarisId?: ClarisIdTokenSource;
  idleRefreshMs?: number;
}

const DEFAULT_IDLE_REFRESH_MS = 14 * 60_000;

export class Session {
  private readonly basicAuth: string;
  private readonly fmid: ClarisIdTokenSource | undefined;
  private readonly idleRefreshMs: number;
  // One token for the whole process.
  private token: string | undefined;
  private tokenUsedAt = 0;
  private loginInFlight: Promise<string> | undefined;
  private hadToken = false;
  /** Fire-and-forget logouts of replaced tokens; awaited by logout() so nothing outlives the client. */
  private readonly background = new Set<Promise<void>>();

  constructor(
    private readonly t: Transport,
    opts: SessionOptions,
  ) {
    this.fmid = opts.clarisId;
    this.idleRefreshMs = opts.idleRefreshMs ?? DEFAULT_IDLE_REFRESH_MS;
    this.basicAuth = `Basic ${Buffer.from(`${opts.username}:${opts.password}`, 'utf8').toString('base64')}`;
  }

  /** The Authorization header for a login or an OData request: Basic, or FMID with a Claris ID token. */
  private async authHeader(): Promise<string> {
    return this.fmid !== undefined ? `FMID ${await this.fmid.token()}` : this.basicAuth;
  }

  /**
   * Runs `call` with the Authorization header. With Claris ID, an answer `call` calls refused (HTTP 401: the token
   * expired or was revoked) is discarded (`discard`: an unread body) and a fresh token fetched for one more run; Basic
   * credentials are not worth a repeat.
   */
  async authorized<T>(
    what: string,
    call: (authorization: string) => Promise<{ res: T; refused: boolean; discard?: () => Promise<void> }>,
  ): Promise<T> {
    const authorization = await this.authHeader();
    const first = await call(authorization);
    if (!first.refused || this.fmid === undefined) return first.res;
    await first.discard?.();
    this.t.c.retries++;
    this.t.log.info({ what }, 'Claris ID token refused, fetching a fresh one and repeating once');
    const token = await this.fmid.refresh(authorization.slice('FMID '.length));
    return (await call(`FMID ${token}`)).res;
  }

  private async getToken(): Promise<string> {
    if (this.loginInFlight) return this.loginInFlight;
    if (this.token !== undefined) {
      if (Date.now() - this.tokenUsedAt < this.idleRefreshMs) return this.token;
      // Idle for close to FileMaker's 15 minutes: replace the token before it dies under a call, and hand the old
      // session back so it does not count against the host's session cap until it expires.
      const old = this.token;
      this.token = undefined;
      this.t.log.info('Data API session idle, logging in again');
      this.track(this.quietLogout(old));
    }
    // Not tied to the caller's signal: other callers wait on this same login.
    const login = this.login().finally(() => {
      this.loginInFlight = undefined;
    });
    this.loginInFlight = login;
    return login;
  }

  private async login(): Promise<string> {
    const what = `login to database "${this.t.database}"`;
    const res = await this.authorized(what, async (authorization) => {
      const r = await this.t.send('login', what, {
        method: 'POST',
        url: `${this.t.dataBase}/databases/${pathSegment(this.t.database)}/sessions`,
        headers: { authorization, 'content-type': 'application/json', accept: 'application/json' },
        body: '{}',
        idempotent: false,
      });
      return { res: r, refused: r.status === 401 };
    });
    if (res.status < 200 || res.status > 299) throw this.t.errorFrom(res, what);
    const json = readJsonBody(header(res.headers, 'content-type'), res.body);
    const env = json.ok ? parseEnvelope(json.value) : undefined;
    if (env !== undefined && env.fmCode !== '0') throw this.t.fail(errorForFmCode(env.fmCode, res.status, what), what);
    // FileMaker Cloud may leave `response` empty: the header is the authoritative place; the body is a fallback.
    const fromBody = env?.response['token'];
    const token =
      header(res.headers, 'x-fm-data-access-token') ?? (typeof fromBody === 'string' ? fromBody : undefined);
    if (token === undefined || token === '') {
      throw this.t.fail(errorForStatus(res.status, what, json.ok ? 'no token in the answer' : json.why), what);
    }
    this.t.c.logins++;
    if (this.hadToken) this.t.c.relogins++;
    this.hadToken = true;
    this.token = token;
    this.tokenUsedAt = Date.now();
    this.t.log.info({ relogin: this.t.c.logins > 1 }, 'Data API session opened');
    return token;
  }

  private invalidate(token: string): void {
    // Only the token that failed is dropped: another caller may already have logged in again.
    if (this.token === token) this.token = undefined;
  }

  private track(p: Promise<void>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  private async quietLogout(token: string): Promise<void> {
    try {
      await this.t.send('logout', 'logout', {
        method: 'DELETE',
        url: `${this.t.dataBase}/databases/${pathSegment(this.t.database)}/sessions/${encodeURIComponent(token)}`,
        idempotent: true,
      });
    } catch (err) {
      this.t.log.debug({ err: errCode(err) }, 'logout of a replaced session failed (it expires on its own)');
    }
  }

  async logout(): Promise<void> {
    if (this.loginInFlight) await this.loginInFlight.catch(() => undefined);
    const token = this.token;
    this.token = undefined;
    if (token !== undefined) await this.quietLogout(token);
    await Promise.allSettled([...this.background]);
  }

  async validateSession(): Promise<boolean> {
    const token = this.token;
    if (token === undefined) return false;
    const what = 'validateSession';
    const res = await this.t.send('validateSession', what, {
      method: 'GET',
      url: `${this.t.dataBase}/validateSession`,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      idempotent: true,
    });
    const json = readJsonBody(header(res.headers, 'content-type'), res.body);
    const env = json.ok ? parseEnvelope(json.value) : undefined;
    if (res.status >= 200 && res.status <= 299 && env?.fmCode === '0') {
      this.tokenUsedAt = Date.now();
      return true;
    }
    if (res.status === 401 || env?.fmCode === '952') {
      this.invalidate(token);
      return false;
    }
    throw this.t.errorFrom(res, what);
  }

  /**
   * A Data API call with the session: Bearer token, the envelope checked, and on 952/401 one re-login and one retry.
   * `accept` lists FileMaker codes that are answers rather than failures for this call (401 "no records" for a find).
   */
  async dataApi(
    kind: RequestKind,
    what: string,
    o: {
      method: Dispatcher.HttpMethod;
      path: string;
      body?: unknown;
      idempotent: boolean;
      accept?: readonly string[];
      signal?: AbortSignal;
    },
  ): Promise<{ fmCode: string; response: Record<string, unknown> }> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.getToken();
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
      if (o.body !== undefined) headers['content-type'] = 'application/json';
      const res = await this.t.send(kind, what, {
        method: o.method,
        url: `${this.t.dataBase}/databases/${pathSegment(this.t.database)}${o.path}`,
        headers,
        body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
        idempotent: o.idempotent,
        signal: o.signal,
      });
      const json = readJsonBody(header(res.headers, 'content-type'), res.body);
      const env = json.ok ? parseEnvelope(json.value) : undefined;
      // 952 is the token's death certificate; a bare 401 without an envelope (a proxy in front) is treated alike.
      // A 401 that carries another code (802 for a misspelt database) is a real error, not a session problem.
      const sessionGone = env?.fmCode === '952' || (res.status === 401 && env === undefined);
      if (sessionGone) {
        this.invalidate(token);
        if (attempt === 0) {
          // Expired after 15 idle minutes, or killed by a restart/admin disconnect: the call never ran, so it is
          // safe to repeat (even a PATCH) once with a fresh session.
          this.t.c.retries++;
          this.t.log.info({ what }, 'Data API token rejected, logging in again and retrying once');
          continue;
        }
        throw this.t.fail(errorForFmCode('952', res.status, `${what} (after a fresh login)`), what);
      }
      this.tokenUsedAt = Date.now();
      if (!json.ok) throw this.t.fail(errorForStatus(res.status, what, json.why), what);
      if (env === undefined) throw this.t.fail(errorForStatus(res.status, what, 'no Data API envelope'), what);
      if (json.repaired) this.t.c.repairedJson++;
      if (env.fmCode === '0') {
        if (res.status >= 200 && res.status <= 299) return env;
        throw this.t.fail(errorForStatus(res.status, what, 'code 0 with a failure status'), what);
      }
      if (o.accept?.includes(env.fmCode)) return env;
      throw this.t.fail(errorForFmCode(env.fmCode, res.status, what), what);
    }
  }
}
