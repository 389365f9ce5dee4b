// Shared state of one running simulator: data, sessions, faults, counters. Handlers receive it; it imports none of them.
import { createHmac, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Dataset, SimRecord, SimTable } from './dataset';
import { ClarisIdTokens, type AuthMode, type Credentials } from './claris-id';
import { hash32 } from './prng';
import { FaultState, TokenBucket, type Api, type FaultSettings } from './faults';

export interface SimConfig {
  database: string;
  username: string;
  password: string;
  seed: number;
  auth: AuthMode;
}

export interface SimulatorStats {
  requests: Record<Api | 'total', number>;
  bytes: Record<Api | 'total', number>;
  faults: Record<string, number>;
  sessions: { active: number; created: number; loggedOut: number; expired: number };
  quotaUsedBytes: number;
  inFlight: number;
  /** Requests in flight integrated over time (request-milliseconds): how busy clients kept the server. */
  inFlightMs: number;
}

interface Session {
  lastUsed: number;
}

const apis: (Api | 'total')[] = ['data', 'odata', 'container', 'total'];

const normKey = (v: string) => v.trim().toUpperCase();

/**
 * Foreign-key hashes of a table's generated records, sorted, with the record position alongside: eight bytes a
 * record instead of a map of strings. Built once; written and inserted records are checked separately and deleted ones
 * dropped on the way out, so changes never stale it.
 */
interface PortalIndex {
  hashes: Uint32Array;
  rows: Int32Array;
}

function buildPortalIndex(table: SimTable, foreignKey: string): PortalIndex {
  const all = new Uint32Array(table.generatedCount);
  const keyed: number[] = [];
  for (let i = 0; i < table.generatedCount; i++) {
    const v = normKey(String(table.generated(i).fields[foreignKey] ?? ''));
    if (!v) continue;
    all[i] = hash32(v);
    keyed.push(i);
  }
  // By hash, then record order.
  const rows = Int32Array.from(keyed).sort((a, b) => all[a]! - all[b]! || a - b);
  const hashes = Uint32Array.from(rows, (i) => all[i]!);
  return { hashes, rows };
}

export class SimContext {
  readonly sessions = new Map<string, Session>();
  readonly faults: FaultState;
  readonly clarisId = new ClarisIdTokens();
  readonly t0 = Date.now();
  secret = randomBytes(32);
  inFlight = 0;
  private inFlightMs = 0;
  private inFlightSince = Date.now();
  containerInFlight = 0;
  requests = Object.fromEntries(apis.map((a) => [a, 0])) as Record<Api | 'total', number>;
  bytes = Object.fromEntries(apis.map((a) => [a, 0])) as Record<Api | 'total', number>;
  /** Bytes counted against the licence quota; survives a stats reset, as the real quota would. */
  quotaSent = 0;
  sessionsCreated = 0;
  sessionsLoggedOut = 0;
  sessionsExpired = 0;
  private readonly connBuckets = new WeakMap<Socket, TokenBucket>();
  private readonly sortCache = new Map<string, { version: number; order: Int32Array }>();
  private readonly portalIndex = new Map<string, PortalIndex>();

  constructor(
    readonly ds: Dataset,
    readonly config: SimConfig,
    faults: FaultSettings,
  ) {
    this.faults = new FaultState(faults, config.seed);
  }

  get settings(): FaultSettings {
    return this.faults.settings;
  }

  /**
   * Checks an `Authorization` header against the host's mode: Basic with the account, or only a live Claris ID
   * token (`FMID`); the other scheme is refused.
   */
  credentials(header: string | undefined): Credentials {
    if (!header) return 'missing';
    const m = /^(Basic|FMID)\s+(\S+)$/i.exec(header);
    if (!m) return 'refused';
    const fmid = m[1]!.toLowerCase() === 'fmid';
    if (this.config.auth === 'fmid') return fmid ? this.clarisId.check(m[2]!) : 'refused';
    if (fmid) return 'refused';
    const [user, ...pass] = Buffer.from(m[2]!, 'base64').toString('utf8').split(':');
    return user === this.config.username && pass.join(':') === this.config.password ? 'ok' : 'refused';
  }

  /** Tokens, container cookies and container URLs all die with a restart. */
  restart(): void {
    this.sessions.clear();
    this.secret = randomBytes(32);
    this.faults.count('restart');
  }

  newSession(): string {
    const token = randomBytes(24).toString('hex');
    this.sessions.set(token, { lastUsed: Date.now() });
    this.sessionsCreated++;
    return token;
  }

  /** Checks a token and slides its 15-minute window. */
  touchSession(token: string): boolean {
    const s = this.sessions.get(token);
    if (!s) return false;
    const now = Date.now();
    if (now - s.lastUsed > this.settings.sessionTtlMs) {
      this.sessions.delete(token);
      this.sessionsExpired++;
      return false;
    }
    s.lastUsed = now;
    return true;
  }

  activeSessions(): number {
    const now = Date.now();
    for (const [token, s] of this.sessions) {
      if (now - s.lastUsed > this.settings.sessionTtlMs) {
        this.sessions.delete(token);
        this.sessionsExpired++;
      }
    }
    return this.sessions.size;
  }

  quotaExceeded(): boolean {
    const q = this.settings.quotaBytes;
    return q > 0 && this.settings.quotaUsedBytes + this.quotaSent >= q;
  }

  account(api: Api, n: number): void {
    this.bytes[api] += n;
    this.bytes.total += n;
    this.quotaSent += n;
  }

  connBucket(socket: Socket): TokenBucket {
    let b = this.connBuckets.get(socket);
    if (!b) {
      b = new TokenBucket(this.settings.bandwidthPerConnectionBps);
      this.connBuckets.set(socket, b);
    }
    b.setRate(this.settings.bandwidthPerConnectionBps);
    return b;
  }

  hmac(...parts: (string | Buffer)[]): Buffer {
    const h = createHmac('sha256', this.secret);
    for (const p of parts) h.update(p);
    return h.digest();
  }

  /** Sorted record order (record positions), cached until the table is written to. */
  sorted(table: SimTable, key: string, compute: () => Int32Array): Int32Array {
    const k = `${table.def.name}|${key}`;
    const hit = this.sortCache.get(k);
    if (hit && hit.version === table.version) return hit.order;
    const order = compute();
    this.sortCache.set(k, { version: table.version, order });
    return order;
  }

  /** Related records by normalised foreign key, the way FileMaker's case-insensitive relationship matches them. */
  related(table: SimTable, foreignKey: string, parentId: string): SimRecord[] {
    const want = normKey(parentId);
    if (!want) return [];
    const k = `${table.def.name}|${foreignKey}`;
    let idx = this.portalIndex.get(k);
    if (!idx) {
      idx = buildPortalIndex(table, foreignKey);
      this.portalIndex.set(k, idx);
    }
    // Candidates: generated records whose key hashes alike, and every written or inserted record; then the real
    // comparison (a deleted record has no `at`).
    const h = hash32(want);
    const candidates = new Set<number>();
    let lo = 0;
    let hi = idx.hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (idx.hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < idx.hashes.length && idx.hashes[i] === h; i++) candidates.add(idx.rows[i]!);
    for (const i of table.writtenIndexes()) candidates.add(i);
    return [...candidates]
      .sort((a, b) => a - b)
      .flatMap((i) => table.at(i) ?? [])
      .filter((r) => normKey(String(r.fields[foreignKey] ?? '')) === want);
  }

  stats(): SimulatorStats {
    return {
      requests: { ...this.requests },
      bytes: { ...this.bytes },
      faults: { ...this.faults.counts },
      sessions: {
        active: this.activeSessions(),
        created: this.sessionsCreated,
        loggedOut: this.sessionsLoggedOut,
        expired: this.sessionsExpired,
      },
      quotaUsedBytes: this.settings.quotaUsedBytes + this.quotaSent,
      inFlight: this.inFlight,
      inFlightMs: this.busyMs(),
    };
  }

  /** A request arrives (+1) or its answer closes (−1); the time-integral of requests in flight is kept. */
  changeInFlight(delta: 1 | -1): void {
    this.inFlightMs = this.busyMs();
    this.inFlightSince = Date.now();
    this.inFlight += delta;
  }

  private busyMs(): number {
    return this.inFlightMs + this.inFlight * (Date.now() - this.inFlightSince);
  }

  resetStats(): void {
    for (const a of apis) {
      this.requests[a] = 0;
      this.bytes[a] = 0;
    }
    for (const k of Object.keys(this.faults.counts)) delete this.faults.counts[k];
    this.sessionsCreated = 0;
    this.sessionsLoggedOut = 0;
    this.sessionsExpired = 0;
  }
}
