/**
 * Configuration: one zod schema over the environment, parsed once into a typed, read-only object.
 * Secrets may be given directly (`FM_PASSWORD`) or as a file path (`FM_PASSWORD_FILE`); never on a command line.
 * Every variable is listed with a comment in `.env.example`.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { loadTemporalConnection, type TemporalConnectionConfig } from './config-temporal';
import { ConfigError } from './errors';

const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `expected a URL (${protocols.join(' or ')})` },
  );

const hostPort = z
  .string()
  .regex(/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/, { message: 'expected host:port, for example localhost:7233' });

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { message: 'expected a whole number' })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { message: `expected a number from ${min} to ${max}` });

const bytes = z
  .string()
  .regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB)?$/i, { message: 'expected a byte size such as 144GB or 1048576' })
  .transform((v) => {
    const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(v.trim());
    const units: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };
    return Math.round(Number(m?.[1] ?? 0) * (units[(m?.[2] ?? '').toUpperCase()] ?? 1));
  });

/** The raw environment schema. Endpoint variables are optional here: the local stack fills them in when unset. */
export const envSchema = z.object({
  // Temporal: the connection as the temporal CLI reads it (src/config-temporal.ts), a profile of its TOML file with
  // its variables on top; the namespace defaults to `default` there, after the profile.
  TEMPORAL_CONFIG_FILE: z.string().min(1).optional(),
  TEMPORAL_PROFILE: z.string().min(1).optional(),
  TEMPORAL_ADDRESS: hostPort.optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).optional(),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_API_KEY_FILE: z.string().min(1).optional(),
  // The CLI's reader takes any other value as false, which would turn TLS off.
  TEMPORAL_TLS: z.enum(['true', 'false', '1', '0'], { message: 'expected true or false' }).optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_CERT_DATA: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_DATA: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  // Refused unless false: certificate checks cannot be turned off.
  TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: z.string().min(1).optional(),
  // Deprecated names of TEMPORAL_TLS_CLIENT_CERT_PATH, _CLIENT_KEY_PATH and _SERVER_CA_CERT_PATH.
  TEMPORAL_TLS_CERT_FILE: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY_FILE: z.string().min(1).optional(),
  TEMPORAL_TLS_CA_FILE: z.string().min(1).optional(),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('fm-reimport'),
  TEMPORAL_WORKFLOW_BUNDLE: z.string().min(1).optional(),
  TEMPORAL_UI_URL: url(['http:', 'https:']).optional(),
  // PostgreSQL
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  DATABASE_CA_FILE: z.string().min(1).optional(),
  DATABASE_POOL_MAX: int(1, 200).default(10),
  BACKUP_KEEP_RUNS: int(1, 10_000).default(7),
  // S3
  S3_ENDPOINT: url(['http:', 'https:']).optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { message: 'expected an S3 bucket name' })
    .default('nexus-files'),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY_FILE: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: bool.default(true),
  S3_CA_FILE: z.string().min(1).optional(),
  // FileMaker
  FM_URL: url(['http:', 'https:']).optional(),
  FM_DATABASE: z.string().min(1).default('WEP-DatabaseV2'),
  FM_AUTH: z.enum(['basic', 'claris-id']).default('basic'),
  FM_CLARIS_ID_TOKEN_COMMAND: z.string().min(1).optional(),
  FM_USERNAME: z.string().min(1).optional(),
  FM_PASSWORD: z.string().min(1).optional(),
  FM_PASSWORD_FILE: z.string().min(1).optional(),
  FM_CA_FILE: z.string().min(1).optional(),
  FM_MAX_CONCURRENCY: int(1, 64).default(6),
  FM_REQUESTS_PER_SECOND: int(1, 10_000).default(50),
  FM_OVERLOAD_RETRIES: int(0, 10).default(3),
  FM_OVERLOAD_BACKOFF_MS: int(1, 60_000).default(50),
  FM_CONTAINER_API: z.enum(['odata', 'dataapi']).default('odata'),
  FM_TRANSFER_BUDGET: bytes.default(144e9),
  FM_TRANSFER_USED: bytes.default(0),
  // Domain
  CLINIC_TIME_ZONE: z.string().min(1).default('Australia/Sydney'),
  // Payload encryption
  PAYLOAD_KEYS: z.string().min(1).optional(),
  PAYLOAD_KEYS_FILE: z.string().min(1).optional(),
  PAYLOAD_ACTIVE_KEY_ID: z.string().min(1).optional(),
  CODEC_SERVER_PORT: int(0, 65535).default(8888),
  CODEC_SERVER_HOST: z.string().min(1).default('127.0.0.1'),
  CODEC_CORS_ORIGINS: z.string().min(1).optional(),
  // Notifications
  NOTIFY_WEBHOOK_URL: url(['http:', 'https:']).optional(),
  NOTIFY_SMTP_URL: url(['smtp:', 'smtps:']).optional(),
  NOTIFY_EMAIL_FROM: z.string().email().optional(),
  NOTIFY_EMAIL_TO: z.string().min(3).optional(),
  NOTIFY_COOLDOWN_THRESHOLD_SECONDS: int(1, 86_400).default(300),
  // Metrics
  METRICS_ADDRESS: hostPort.optional(),
  METRICS_SAMPLE_SECONDS: int(1, 3600).default(10),
  // Logging
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
});

export type Env = z.infer<typeof envSchema>;

/** The typed, read-only configuration the worker and client use. */
export interface Config {
  /** The connection (address, namespace, TLS, API key) as the temporal CLI reads it, and our own settings. */
  readonly temporal: TemporalConnectionConfig & {
    readonly taskQueue: string;
    /** A workflow bundle built by `npm run bundle`; without it the worker bundles the workflows at start. */
    readonly workflowBundle: string | undefined;
    readonly uiUrl: string | undefined;
  };
  readonly database: {
    readonly url: string;
    readonly caFile: string | undefined;
    readonly poolMax: number;
    /** Completed runs whose backups are always kept (src/domain/retention.ts). */
    readonly backupKeepRuns: number;
  };
  readonly s3: {
    readonly endpoint: string | undefined;
    readonly region: string;
    readonly bucket: string;
    readonly accessKeyId: string | undefined;
    readonly secretAccessKey: string | undefined;
    readonly forcePathStyle: boolean;
    readonly caFile: string | undefined;
  };
  readonly filemaker: {
    readonly url: string;
    readonly database: string;
    /**
     * `basic`: FM_USERNAME and FM_PASSWORD (FileMaker Server). `claris-id`: FileMaker Cloud's FMID tokens, printed
     * fresh by `clarisIdTokenCommand` (run when the token held is within minutes of its expiry, or refused).
     */
    readonly auth: 'basic' | 'claris-id';
    readonly clarisIdTokenCommand: string | undefined;
    readonly username: string;
    readonly password: string;
    readonly caFile: string | undefined;
    readonly maxConcurrency: number;
    readonly requestsPerSecond: number;
    /** Overload answers repeated after a short backoff before the workflow's durable cooldown takes over. */
    readonly overloadRetries: number;
    /** The first of those backoffs (doubled per repeat, half of it jittered). */
    readonly overloadBackoffMs: number;
    /**
     * How containers are read: `odata` — one GET of `Table(ROWID=n)/Field/$value` per file; `dataapi` — the URL in
     * the record's fieldData with the 302 + cookie handshake (two requests, and the URL must be fresh).
     */
    readonly containerApi: 'odata' | 'dataapi';
    readonly transferBudgetBytes: number;
    readonly transferUsedBytes: number;
  };
  readonly clinicTimeZone: string;
  readonly payloadKeys: string | undefined;
  readonly payloadActiveKeyId: string | undefined;
  readonly codecServerPort: number;
  /** Loopback by default: the codec server decrypts anything it is given. 0.0.0.0 inside a container. */
  readonly codecServerHost: string;
  readonly codecCorsOrigins: readonly string[];
  readonly notify: {
    readonly webhookUrl: string | undefined;
    readonly smtpUrl: string | undefined;
    readonly emailFrom: string | undefined;
    readonly emailTo: readonly string[];
    readonly cooldownThresholdSeconds: number;
  };
  /** Prometheus metrics of the worker at `address` (`/metrics`), our own read every `sampleSeconds`; off when unset. */
  readonly metrics: { readonly address: string | undefined; readonly sampleSeconds: number };
  readonly log: { readonly level: Env['LOG_LEVEL']; readonly format: Env['LOG_FORMAT'] };
}

/** Validates the environment; throws a ConfigError naming every bad variable and what it expected. */
export function parseEnv(env: NodeJS.ProcessEnv = process.env): Env {
  // Empty strings count as unset: `FOO=` in a .env file should mean "use the default".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = envSchema.safeParse(cleaned);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

function secret(env: Env, direct: keyof Env, file: keyof Env): string | undefined {
  const value = env[direct];
  if (typeof value === 'string') return value;
  const path = env[file];
  if (typeof path !== 'string') return undefined;
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${String(file)}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * Parses the environment into the full Config. `need` says which parts must be present:
 * a client needs only Temporal; a worker needs everything.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, need: 'client' | 'worker' = 'worker'): Config {
  const e = parseEnv(env);
  const worker = need === 'worker';
  const missing: string[] = [];
  const req = (name: keyof Env, what: string): string => {
    const v = e[name];
    if (typeof v === 'string') return v;
    if (worker) missing.push(`  ${name}: required, expected ${what}`);
    return '';
  };
  const dbUrl = req('DATABASE_URL', 'a postgres:// URL');
  const fmUrl = req('FM_URL', 'the FileMaker server base URL, for example https://fm.example.com');
  const clarisId = e.FM_AUTH === 'claris-id';
  // FileMaker Cloud accepts only Claris ID: no user or password there, a command that prints a token instead.
  const fmUser = clarisId ? (e.FM_USERNAME ?? '') : req('FM_USERNAME', 'the FileMaker account name');
  const fmPassword = clarisId ? undefined : secret(e, 'FM_PASSWORD', 'FM_PASSWORD_FILE');
  if (worker && !clarisId && fmPassword === undefined) missing.push('  FM_PASSWORD: required (or FM_PASSWORD_FILE)');
  if (clarisId) req('FM_CLARIS_ID_TOKEN_COMMAND', 'a command that prints a fresh Claris ID token (FM_AUTH=claris-id)');
  if (missing.length > 0) throw new ConfigError(`invalid configuration:\n${missing.join('\n')}`);

  const config: Config = {
    temporal: {
      ...loadTemporalConnection(env),
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      workflowBundle: e.TEMPORAL_WORKFLOW_BUNDLE,
      uiUrl: e.TEMPORAL_UI_URL,
    },
    database: {
      url: dbUrl,
      caFile: e.DATABASE_CA_FILE,
      poolMax: e.DATABASE_POOL_MAX,
      backupKeepRuns: e.BACKUP_KEEP_RUNS,
    },
    s3: {
      endpoint: e.S3_ENDPOINT,
      region: e.S3_REGION,
      bucket: e.S3_BUCKET,
      accessKeyId: e.S3_ACCESS_KEY_ID,
      secretAccessKey: secret(e, 'S3_SECRET_ACCESS_KEY', 'S3_SECRET_ACCESS_KEY_FILE'),
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
      caFile: e.S3_CA_FILE,
    },
    filemaker: {
      url: fmUrl.replace(/\/+$/, ''),
      database: e.FM_DATABASE,
      auth: e.FM_AUTH,
      clarisIdTokenCommand: e.FM_CLARIS_ID_TOKEN_COMMAND,
      username: fmUser,
      password: fmPassword ?? '',
      caFile: e.FM_CA_FILE,
      maxConcurrency: e.FM_MAX_CONCURRENCY,
      requestsPerSecond: e.FM_REQUESTS_PER_SECOND,
      overloadRetries: e.FM_OVERLOAD_RETRIES,
      overloadBackoffMs: e.FM_OVERLOAD_BACKOFF_MS,
      containerApi: e.FM_CONTAINER_API,
      transferBudgetBytes: e.FM_TRANSFER_BUDGET,
      transferUsedBytes: e.FM_TRANSFER_USED,
    },
    clinicTimeZone: validTimeZone(e.CLINIC_TIME_ZONE),
    payloadKeys: secret(e, 'PAYLOAD_KEYS', 'PAYLOAD_KEYS_FILE'),
    payloadActiveKeyId: e.PAYLOAD_ACTIVE_KEY_ID,
    codecServerPort: e.CODEC_SERVER_PORT,
    codecServerHost: e.CODEC_SERVER_HOST,
    codecCorsOrigins: commaList(e.CODEC_CORS_ORIGINS),
    notify: {
      webhookUrl: e.NOTIFY_WEBHOOK_URL,
      smtpUrl: e.NOTIFY_SMTP_URL,
      emailFrom: e.NOTIFY_EMAIL_FROM,
      emailTo: commaList(e.NOTIFY_EMAIL_TO),
      cooldownThresholdSeconds: e.NOTIFY_COOLDOWN_THRESHOLD_SECONDS,
    },
    metrics: { address: e.METRICS_ADDRESS, sampleSeconds: e.METRICS_SAMPLE_SECONDS },
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT },
  };
  return deepFreeze(config);
}

/** A comma-separated setting as its items, blanks dropped. */
function commaList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function validTimeZone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en-AU', { timeZone: tz });
    return tz;
  } catch {
    throw new ConfigError(`invalid configuration:\n  CLINIC_TIME_ZONE: expected an IANA time zone, got an unknown one`);
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
