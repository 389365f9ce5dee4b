/**
 * TLS options for every outbound connection. Certificate verification is always on: a private CA is trusted by
 * giving its PEM bundle (`*_CA_FILE`), and there is deliberately no option that turns verification off.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { ConnectionOptions as TemporalClientConnectionOptions } from '@temporalio/client';
import type * as SmithyHttpHandler from '@smithy/node-http-handler';
import type { NodeHttpHandler } from '@smithy/node-http-handler';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { Agent } from 'undici';
import type { Config } from './config';
import type { PemSource } from './config-temporal';
import { ConfigError } from './errors';

/**
 * Reads a PEM file. `setting` names the environment variable in the error, so a wrong path is easy to fix; the
 * file's contents never appear in an error.
 */
export function readPemFile(
  path: string,
  setting: string,
  kind: 'certificate' | 'private key' = 'certificate',
): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!PEM_MARKER[kind].test(pem.toString('latin1'))) {
    throw new ConfigError(`${setting}: ${path} does not hold a PEM ${kind}`);
  }
  return pem;
}

const PEM_MARKER = {
  certificate: /-----BEGIN CERTIFICATE-----/,
  'private key': /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
} as const;

/** Reads a CA bundle (one or more PEM certificates) when a path is set. */
export function readCaBundle(path: string | undefined, setting: string): Buffer | undefined {
  return path === undefined ? undefined : readPemFile(path, setting);
}

// ---------------------------------------------------------------------------------------------------- undici

export interface UndiciAgentOptions {
  /** PEM CA bundle path, e.g. FM_CA_FILE. */
  caFile?: string;
  /** Name of the setting caFile came from, for error messages. */
  caSetting?: string;
  connectTimeoutMs?: number;
  /** undici Agent options passed through (connections, keepAliveTimeout, ...). */
  agent?: Omit<Agent.Options, 'connect'>;
}

/** An undici Agent that verifies server certificates, against the given CA bundle when one is set. */
export function tlsUndiciAgent(opts: UndiciAgentOptions = {}): Agent {
  const ca = readCaBundle(opts.caFile, opts.caSetting ?? 'CA file');
  return new Agent({
    // HTTP/1.1, one request per connection at a time, unless the caller says otherwise (undici 8 defaults to HTTP/2
    // when the server offers it).
    allowH2: false,
    ...opts.agent,
    connect: {
      rejectUnauthorized: true,
      ...(ca ? { ca } : {}),
      ...(opts.connectTimeoutMs !== undefined ? { timeout: opts.connectTimeoutMs } : {}),
    },
  });
}

// ---------------------------------------------------------------------------------------------------- pg

export interface PgTlsOptions {
  connectionString: string;
  ssl: { ca?: Buffer; rejectUnauthorized: true } | undefined;
}

const PG_SSL_PARAMS = ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'uselibpqcompat'];

/**
 * Pool options for pg. pg lets `sslmode` in the URL override the `ssl` object, and `sslmode=require` or
 * `no-verify` there would mean "encrypt but trust anyone"; so the URL's ssl parameters are only read to decide
 * whether TLS is wanted, then removed, and the `ssl` object below decides how it is verified.
 *   - DATABASE_CA_FILE set: TLS, verified against that CA.
 *   - sslmode other than disable/allow/prefer in the URL, or ssl=true: TLS, verified against the system CAs.
 *   - otherwise (the local stack): no TLS.
 */
export function pgTlsOptions(databaseUrl: string, caFile: string | undefined): PgTlsOptions {
  const ca = readCaBundle(caFile, 'DATABASE_CA_FILE');
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new ConfigError('DATABASE_URL: expected a postgres:// URL');
  }
  const mode = url.searchParams.get('sslmode');
  const sslParam = url.searchParams.get('ssl');
  const wantsTls =
    ca !== undefined ||
    (mode !== null && !['disable', 'allow', 'prefer'].includes(mode)) ||
    sslParam === 'true' ||
    sslParam === '1';
  for (const p of PG_SSL_PARAMS) url.searchParams.delete(p);
  return {
    connectionString: url.toString(),
    ssl: wantsTls ? { rejectUnauthorized: true, ...(ca ? { ca } : {}) } : undefined,
  };
}

// ---------------------------------------------------------------------------------------------------- AWS SDK

export interface S3RequestHandlerOptions {
  caFile?: string;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxSockets?: number;
}

type SmithyModule = typeof SmithyHttpHandler;

function loadSmithy(): SmithyModule | undefined {
  try {
    // A transitive dependency of @aws-sdk/client-s3, so it may move; fall back to the plain agent form if it does.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@smithy/node-http-handler') as SmithyModule;
  } catch {
    return undefined;
  }
}

/**
 * `requestHandler` for `new S3Client({ ..., requestHandler })`: an https Agent that trusts the CA bundle as well as
 * verifying certificates. Returns undefined when no CA file is set (the SDK's default handler already verifies).
 */
export function s3RequestHandler(
  opts: S3RequestHandlerOptions,
): NodeHttpHandler | { httpsAgent: https.Agent } | undefined {
  const ca = readCaBundle(opts.caFile, 'S3_CA_FILE');
  if (!ca) return undefined;
  const httpsAgent = new https.Agent({
    ca,
    rejectUnauthorized: true,
    keepAlive: true,
    ...(opts.maxSockets !== undefined ? { maxSockets: opts.maxSockets } : {}),
  });
  const smithy = loadSmithy();
  if (!smithy) return { httpsAgent };
  return new smithy.NodeHttpHandler({
    httpsAgent,
    ...(opts.connectionTimeoutMs !== undefined ? { connectionTimeout: opts.connectionTimeoutMs } : {}),
    ...(opts.requestTimeoutMs !== undefined ? { requestTimeout: opts.requestTimeoutMs } : {}),
  });
}

// ---------------------------------------------------------------------------------------------------- Temporal

export interface TemporalTlsConfig {
  serverNameOverride?: string;
  serverRootCACertificate?: Buffer;
  clientCertPair?: { crt: Buffer; key: Buffer };
}

/** Fits both `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TemporalTlsConfig | true;
  apiKey?: string;
  metadata?: Record<string, string>;
}

/** A PEM from a path or inline (the *_DATA variables, `*_data` in a profile), checked to be what its setting says. */
function readPem(source: PemSource, kind: 'certificate' | 'private key' = 'certificate'): Buffer {
  if ('path' in source) return readPemFile(source.path, source.setting, kind);
  if (!PEM_MARKER[kind].test(source.data)) throw new ConfigError(`${source.setting}: does not hold a PEM ${kind}`);
  return Buffer.from(source.data, 'utf8');
}

/**
 * Connection options from the temporal CLI's profile and variables (src/config-temporal.ts): mTLS with a client
 * certificate and key, a private CA and server name, or an API key (which implies TLS). With none, and no TLS asked
 * for, the connection is plain gRPC, as the local dev server expects.
 */
export function temporalConnectionOptions(config: Pick<Config, 'temporal'>): TemporalConnectionOptions {
  const t = config.temporal;
  const out: TemporalConnectionOptions = { address: t.address };
  if (t.tls) {
    const tls: TemporalTlsConfig = {};
    if (t.tls.serverCaCert) tls.serverRootCACertificate = readPem(t.tls.serverCaCert);
    if (t.tls.clientCert && t.tls.clientKey) {
      tls.clientCertPair = { crt: readPem(t.tls.clientCert), key: readPem(t.tls.clientKey, 'private key') };
    }
    if (t.tls.serverName) tls.serverNameOverride = t.tls.serverName;
    out.tls = tls;
  }
  if (t.apiKey) {
    out.apiKey = t.apiKey;
    // An API key must never travel in clear.
    out.tls ??= true;
  }
  if (Object.keys(t.grpcMeta).length > 0) out.metadata = { ...t.grpcMeta };
  return out;
}

// Compile-time checks that the shape stays assignable to both SDK option types.
const _clientCompatible = (o: TemporalConnectionOptions): TemporalClientConnectionOptions => o;
const _workerCompatible = (o: TemporalConnectionOptions): NativeConnectionOptions => o;
void _clientCompatible;
void _workerCompatible;
