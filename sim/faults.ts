// The faults FileMaker Server and FileMaker Cloud showed the clinic, plus behaviour switches where real servers
// disagree. Everything here can be changed at runtime through the admin port.
import { Rng } from './prng';

export type Api = 'data' | 'odata' | 'container';

export interface ForcedFailure {
  status: number;
  count: number;
  /** Which API the forced answers apply to; default any. */
  api?: Api | 'any';
}

export type OdataValueVariant = 'bytes' | 'filename' | 'empty' | 'base64';

export interface FaultSettings {
  /** Added before every answer. */
  latencyMs: number;
  /** Uniform extra latency in [0, jitter). */
  latencyJitterMs: number;
  /** Outbound bytes/s for the whole server (shared token bucket); 0 = unlimited. */
  bandwidthTotalBps: number;
  /** Outbound bytes/s per TCP connection; 0 = unlimited. */
  bandwidthPerConnectionBps: number;
  /** Requests in flight beyond this are answered 502 with an HTML body; 0 = unlimited. */
  maxConcurrentRequests: number;
  /** Probability per request that a 502/503 burst starts. */
  burstRate: number;
  /** Requests answered with the burst status once a burst starts. */
  burstLength: number;
  burstStatus: 502 | 503;
  /** Probability per request of an HTML error page served with HTTP 200 (web server in front of a dead engine). */
  html200Rate: number;
  /** Kill all tokens, cookies and container URLs every so often, as a server restart does; 0 = never. */
  restartEveryMs: number;
  /** Probability of a 401 on a container download while at least `container401MinConcurrent` are in flight. */
  container401Rate: number;
  container401MinConcurrent: number;
  /** Annual outbound-byte quota shared by both APIs; 0 = unlimited. Past it every data answer is code 953. */
  quotaBytes: number;
  /** Bytes already used this licence year when the simulator starts (or when set at runtime). */
  quotaUsedBytes: number;
  /** Concurrent Data API sessions allowed; 0 = unlimited. Login beyond it gets `sessionCapCode`. */
  maxSessions: number;
  sessionCapCode: 812 | 956;
  /** Probability that an OData JSON answer carries a raw control character or a bare `?` value. */
  brokenJsonRate: number;
  /** Lifetime of a Claris ID token issued from then on (Cognito: one hour). */
  fmidTokenLifetimeMs: number;
  /** Sliding session lifetime (FileMaker: 15 minutes). */
  sessionTtlMs: number;
  /** How long a container URL from `fieldData` stays valid. */
  containerUrlTtlMs: number;
  /** Status for a stale container URL; FMS versions differ. */
  expiredUrlStatus: 401 | 404;
  /**
   * What OData `/$value` of a container answers: the bytes; the container's filename as `text/plain` (one server
   * version, with `Accept: application/octet-stream`); a 200 with no body; or the bytes as base64 text.
   */
  odataValueVariant: OdataValueVariant;
  /** `Content-Disposition` on OData `/$value` (Claris does not document it). */
  odataValueDisposition: boolean;
  /** The Data API container URL's 302 + cookie handshake (FileMaker Server 19.3+); off: 200 with the bytes at once. */
  dataApiContainerHandshake: boolean;
  /** Share of containers stored externally, chosen per record and field: their URLs are `/Streaming_SSL/Additional_1/…`. */
  externalContainerRate: number;
  /** `Content-Disposition` on Data API container downloads. */
  containerDisposition: boolean;
  /** HTTP status of a find with no hits (code 401); most servers 500, some clients saw 400. */
  noRecordsStatus: 500 | 400;
  /** OData annotation spelling: newer servers `@count`, older `@odata.count`. */
  odataAnnotations: 'plain' | 'odata';
  /**
   * OData refuses (400, -1002) a bare field name that Claris says must be quoted: anything but plain letters and
   * digits, and `id` in any case. Off only for a test that needs the old lenience.
   */
  odataStrictNames: boolean;
  /** Records per OData response before a next link is given. */
  odataPageCap: number;
  /** FileMaker Server repeats the token in the login body; FileMaker Cloud may not. */
  tokenInBody: boolean;
  /** Deterministic failures for tests: the next `count` requests get `status`. */
  failNextRequests: ForcedFailure | null;
}

export const DEFAULT_FAULTS: FaultSettings = {
  latencyMs: 0,
  latencyJitterMs: 0,
  bandwidthTotalBps: 0,
  bandwidthPerConnectionBps: 0,
  maxConcurrentRequests: 0,
  burstRate: 0,
  burstLength: 5,
  burstStatus: 502,
  html200Rate: 0,
  restartEveryMs: 0,
  container401Rate: 0,
  container401MinConcurrent: 4,
  quotaBytes: 0,
  quotaUsedBytes: 0,
  maxSessions: 0,
  sessionCapCode: 812,
  brokenJsonRate: 0,
  fmidTokenLifetimeMs: 3_600_000,
  sessionTtlMs: 15 * 60_000,
  containerUrlTtlMs: 60_000,
  expiredUrlStatus: 401,
  odataValueVariant: 'bytes',
  odataValueDisposition: true,
  dataApiContainerHandshake: true,
  externalContainerRate: 0,
  containerDisposition: true,
  noRecordsStatus: 500,
  odataAnnotations: 'plain',
  odataStrictNames: true,
  odataPageCap: 10_000,
  tokenInBody: true,
  failNextRequests: null,
};

export type Profile = 'clean' | 'fmcloud' | 'hostile';

export const PROFILES: Record<Profile, Partial<FaultSettings>> = {
  clean: {},
  // What the clinic saw on FileMaker Cloud.
  fmcloud: {
    latencyMs: 30,
    latencyJitterMs: 20,
    maxConcurrentRequests: 8,
    bandwidthTotalBps: 25 * 1024 * 1024,
    burstRate: 0.002,
    burstLength: 10,
    burstStatus: 502,
    tokenInBody: false,
    maxSessions: 50,
  },
  // Everything at once, at rates where a client that retries with backoff still finishes.
  hostile: {
    latencyMs: 20,
    latencyJitterMs: 40,
    maxConcurrentRequests: 6,
    bandwidthTotalBps: 20 * 1024 * 1024,
    bandwidthPerConnectionBps: 8 * 1024 * 1024,
    burstRate: 0.01,
    burstLength: 4,
    burstStatus: 503,
    html200Rate: 0.005,
    restartEveryMs: 120_000,
    container401Rate: 0.05,
    container401MinConcurrent: 2,
    maxSessions: 10,
    brokenJsonRate: 0.02,
    containerUrlTtlMs: 30_000,
    tokenInBody: false,
  },
};

export function resolveFaults(profile: Profile, overrides: Partial<FaultSettings> = {}): FaultSettings {
  return { ...DEFAULT_FAULTS, ...PROFILES[profile], ...overrides };
}

const FAULT_KEYS = new Set(Object.keys(DEFAULT_FAULTS));
const CHOICES = { odataValueVariant: ['bytes', 'filename', 'empty', 'base64'] } as const;
const RATES = new Set(['externalContainerRate']);

/** Validates a JSON patch of settings from the admin port; unknown keys are an error so typos do not pass silently. */
export function parseFaultPatch(input: unknown): Partial<FaultSettings> {
  return check(input);
}

function check(input: unknown): Partial<FaultSettings> {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new Error('faults must be a JSON object');
  for (const [k, v] of Object.entries(input)) {
    if (!FAULT_KEYS.has(k)) throw new Error(`unknown fault setting ${k}`);
    const expected = typeof (DEFAULT_FAULTS as unknown as Record<string, unknown>)[k];
    if (k === 'failNextRequests') {
      if (v !== null && (typeof v !== 'object' || typeof (v as ForcedFailure).status !== 'number')) {
        throw new Error('failNextRequests must be {status, count, api?} or null');
      }
    } else if (typeof v !== expected) {
      throw new Error(`fault setting ${k} must be a ${expected}`);
    } else if (k in CHOICES && !CHOICES[k as keyof typeof CHOICES].includes(v as never)) {
      throw new Error(`fault setting ${k} must be one of ${CHOICES[k as keyof typeof CHOICES].join(', ')}`);
    } else if (RATES.has(k) && ((v as number) < 0 || (v as number) > 1)) {
      throw new Error(`fault setting ${k} must be between 0 and 1`);
    }
  }
  return input;
}

/** A token bucket; `take` says how long to wait before `n` bytes may go out. */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();

  constructor(private rate: number) {
    this.tokens = rate / 10;
  }

  setRate(rate: number): void {
    this.rate = rate;
  }

  /** Reserves n bytes and returns the delay in ms until they are covered (the bucket may go negative). */
  take(n: number): number {
    if (this.rate <= 0) return 0;
    const now = Date.now();
    // Burst allowance of 100 ms keeps small JSON answers snappy while the long-run rate holds.
    this.tokens = Math.min(this.rate / 10, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }
}

export type FaultKind =
  | 'latency'
  | 'bandwidth_wait'
  | 'concurrency_502'
  | 'burst'
  | 'html_200'
  | 'restart'
  | 'container_401'
  | 'container_url_expired'
  | 'container_broken'
  | 'container_variant'
  | 'quota_953'
  | 'session_cap'
  | 'broken_json'
  | 'forced'
  | 'token_invalid';

export class FaultState {
  settings: FaultSettings;
  readonly rng: Rng;
  burstRemaining = 0;
  readonly counts: Record<string, number> = {};
  readonly total: TokenBucket;

  constructor(settings: FaultSettings, seed: number) {
    this.settings = settings;
    this.rng = new Rng(seed, 'faults');
    this.total = new TokenBucket(settings.bandwidthTotalBps);
  }

  apply(patch: Partial<FaultSettings>): void {
    this.settings = { ...this.settings, ...patch };
    this.total.setRate(this.settings.bandwidthTotalBps);
  }

  count(kind: FaultKind, n = 1): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + n;
  }

  /** Consumes one forced failure if one applies to this API. */
  takeForced(api: Api): number | null {
    const f = this.settings.failNextRequests;
    if (!f || f.count <= 0) return null;
    if (f.api && f.api !== 'any' && f.api !== api) return null;
    const remaining = f.count - 1;
    this.settings = { ...this.settings, failNextRequests: remaining > 0 ? { ...f, count: remaining } : null };
    this.count('forced');
    return f.status;
  }

  /** Decides whether this request falls into a 502/503 burst. */
  inBurst(): boolean {
    if (this.burstRemaining > 0) {
      this.burstRemaining--;
      this.count('burst');
      return true;
    }
    if (this.settings.burstRate > 0 && this.rng.chance(this.settings.burstRate)) {
      this.burstRemaining = Math.max(0, this.settings.burstLength - 1);
      this.count('burst');
      return true;
    }
    return false;
  }
}
