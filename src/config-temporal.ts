/**
 * The Temporal connection as the `temporal` CLI configures it: a profile of its TOML file (TEMPORAL_CONFIG_FILE, else
 * the CLI's default path; TEMPORAL_PROFILE, else `default`) with the CLI's environment variables on top, read by the
 * SDK's own reader (@temporalio/envconfig). One configuration serves `temporal` and fm-reimport.
 *
 * Our rules on top of the CLI's: certificate checks cannot be turned off (a profile or variable that disables host
 * verification is refused), an API key never travels without TLS, a client certificate comes with its key, and no
 * secret (API key, key material, gRPC metadata) appears in an error. The names we used before the CLI's
 * (TEMPORAL_TLS_CERT_FILE, _KEY_FILE, _CA_FILE) still work for one release, with a deprecation warning.
 */
import { readFileSync } from 'node:fs';
import { platform } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
// The raw TOML reader: the public loaders drop `disable_host_verification`, which we must see to refuse it.
import { loadFromTomlData, type TomlClientConfig } from '@temporalio/envconfig/lib/envconfig-toml';
import { ConfigError } from './errors';

/** A PEM given as a path or inline, with the setting it came from (named in errors; the PEM itself never is). */
export type PemSource = { readonly setting: string } & ({ readonly path: string } | { readonly data: string });

export interface TemporalConnectionConfig {
  readonly address: string;
  readonly namespace: string;
  /** The profile read from the config file, or undefined when no file or profile was found (variables only). */
  readonly profile: string | undefined;
  /** Undefined: plain gRPC (the local dev server). Otherwise TLS, verified, with these extras. */
  readonly tls:
    | {
        readonly clientCert?: PemSource;
        readonly clientKey?: PemSource;
        readonly serverCaCert?: PemSource;
        readonly serverName?: string;
      }
    | undefined;
  readonly apiKey: string | undefined;
  /** gRPC headers sent with every call (TEMPORAL_GRPC_META_*, `grpc_meta` in the profile). */
  readonly grpcMeta: Readonly<Record<string, string>>;
}

/** Our earlier names and the temporal CLI's, which replace them. */
const DEPRECATED_NAMES = [
  ['TEMPORAL_TLS_CERT_FILE', 'TEMPORAL_TLS_CLIENT_CERT_PATH'],
  ['TEMPORAL_TLS_KEY_FILE', 'TEMPORAL_TLS_CLIENT_KEY_PATH'],
  ['TEMPORAL_TLS_CA_FILE', 'TEMPORAL_TLS_SERVER_CA_CERT_PATH'],
] as const;

const invalid = (lines: string[]) =>
  new ConfigError(`invalid configuration:\n${lines.map((l) => `  ${l}`).join('\n')}`);

/** The CLI's default file: $XDG_CONFIG_HOME or ~/.config on Linux, Application Support on macOS, %APPDATA% on Windows. */
function defaultConfigFile(env: Record<string, string>): string | undefined {
  const os = platform();
  const home = env.HOME;
  let dir: string | undefined;
  if (os === 'win32') dir = env.APPDATA;
  else if (os === 'darwin') dir = home && join(home, 'Library', 'Application Support');
  else if (env.XDG_CONFIG_HOME) dir = isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : undefined;
  else dir = home && join(home, '.config');
  return dir ? join(dir, 'temporalio', 'temporal.toml') : undefined;
}

interface ConfigFile {
  path: string;
  text: string;
  toml: TomlClientConfig;
}

/** The CLI's config file, parsed; undefined when there is none. A file named in TEMPORAL_CONFIG_FILE must exist. */
function readConfigFile(env: Record<string, string>): ConfigFile | undefined {
  const explicit = env.TEMPORAL_CONFIG_FILE;
  const path = explicit ?? defaultConfigFile(env);
  if (path === undefined) return undefined;
  const setting = explicit ? 'TEMPORAL_CONFIG_FILE' : 'temporal CLI config file';
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT' && !explicit) return undefined;
    throw invalid([`${setting}: cannot read ${path} (${code})`]);
  }
  try {
    return { path, text, toml: loadFromTomlData(text, false) };
  } catch (err) {
    // The parser's message quotes the offending line, which may hold an API key: keep only its first line.
    const e = err as { message?: string; line?: number; column?: number };
    const at = e.line !== undefined ? ` at line ${e.line}, column ${e.column}` : '';
    throw invalid([`${setting}: ${path} is not valid TOML${at} (${String(e.message).split('\n')[0]})`]);
  }
}

/**
 * The environment the CLI would see: empty variables count as unset (except TEMPORAL_GRPC_META_*, where empty removes
 * a header the profile sets), our deprecated names mapped onto the CLI's, TEMPORAL_API_KEY_FILE read into
 * TEMPORAL_API_KEY.
 */
function cliEnvironment(env: NodeJS.ProcessEnv, errors: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && (v !== '' || k.startsWith('TEMPORAL_GRPC_META_'))) out[k] = v;
  }
  for (const [old, cli] of DEPRECATED_NAMES) {
    const value = out[old];
    if (value === undefined) continue;
    delete out[old];
    if (out[cli] !== undefined && out[cli] !== value) {
      errors.push(`${old} / ${cli}: both set, to different files; keep ${cli} only`);
      continue;
    }
    out[cli] = value;
    process.emitWarning(`${old} is deprecated and goes in the next release: use ${cli}, the temporal CLI's name`, {
      type: 'DeprecationWarning',
      code: `FM_REIMPORT_${old}`,
    });
  }
  const keyFile = out.TEMPORAL_API_KEY_FILE;
  if (keyFile !== undefined) {
    let key: string;
    try {
      key = readFileSync(keyFile, 'utf8').trim();
    } catch (err) {
      throw invalid([
        `TEMPORAL_API_KEY_FILE: cannot read ${keyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      ]);
    }
    if (out.TEMPORAL_API_KEY !== undefined && out.TEMPORAL_API_KEY !== key) {
      errors.push('TEMPORAL_API_KEY / TEMPORAL_API_KEY_FILE: both set, to different keys; keep one');
    } else out.TEMPORAL_API_KEY = key;
  }
  return out;
}

/** Where a TLS setting came from: the variable when one is set, else the profile's key. */
function pemSource(
  source: ConfigDataSource | undefined,
  env: NodeJS.ProcessEnv,
  variable: string,
  profileKey: string,
): PemSource | undefined {
  if (source === undefined) return undefined;
  const kind = 'path' in source ? 'PATH' : 'DATA';
  const old = DEPRECATED_NAMES.find(([, cli]) => cli === `${variable}_PATH`)?.[0];
  const setting = env[`${variable}_${kind}`]
    ? `${variable}_${kind}`
    : old && env[old]
      ? old
      : `${profileKey}_${kind.toLowerCase()}`;
  if ('path' in source) return { setting, path: source.path };
  return { setting, data: typeof source.data === 'string' ? source.data : Buffer.from(source.data).toString('utf8') };
}

/**
 * Reads the Temporal connection from the temporal CLI's config file and variables. `env` is the raw environment
 * (validated by the schema in src/config.ts before this runs).
 */
export function loadTemporalConnection(env: NodeJS.ProcessEnv): TemporalConnectionConfig {
  const errors: string[] = [];
  const cli = cliEnvironment(env, errors);
  const file = readConfigFile(cli);
  const where = file ? ` (${file.path})` : '';
  const name = cli.TEMPORAL_PROFILE ?? 'default';
  const fileProfile = file?.toml.profile?.[name];
  if (cli.TEMPORAL_PROFILE !== undefined && fileProfile === undefined) {
    throw invalid([`TEMPORAL_PROFILE: no profile "${name}" in ${file ? file.path : 'the temporal CLI config file'}`]);
  }
  const key = `profile.${name}`;
  const noVerify = cli.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION;
  if (noVerify !== undefined && noVerify !== 'false' && noVerify !== '0') {
    errors.push('TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: certificate checks cannot be turned off; unset it');
  }
  const profileNoVerify = fileProfile?.tls?.disable_host_verification;
  if (profileNoVerify !== undefined && profileNoVerify !== false) {
    errors.push(
      `${key}.tls.disable_host_verification${where}: certificate checks cannot be turned off; ` +
        'remove it, and trust a private CA with server_ca_cert_path',
    );
  }
  if (errors.length > 0) throw invalid(errors);

  let p: ClientConfigProfile;
  try {
    p = loadClientConfigProfile(
      file && fileProfile
        ? { configSource: { data: file.text }, profile: name, overrideEnvVars: cli }
        : { disableFile: true, overrideEnvVars: cli },
    );
  } catch (err) {
    // The SDK's messages name keys, never values ("Cannot specify both client_cert_path and client_cert_data").
    throw invalid([`${key}${where}: ${(err as Error).message}`]);
  }

  const address = p.address ?? 'localhost:7233';
  if (!/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/.test(address)) {
    errors.push(`${key}.address${where}: expected host:port, for example localhost:7233`);
  }
  const tlsOff = p.tls?.disabled === true;
  if (tlsOff && p.apiKey !== undefined) {
    errors.push(
      `${cli.TEMPORAL_TLS !== undefined ? 'TEMPORAL_TLS' : `${key}.tls.disabled`}: an API key is never sent without TLS`,
    );
  }
  const tls = p.tls && !tlsOff ? p.tls : undefined;
  const clientCert = pemSource(tls?.clientCert, env, 'TEMPORAL_TLS_CLIENT_CERT', `${key}.tls.client_cert`);
  const clientKey = pemSource(tls?.clientKey, env, 'TEMPORAL_TLS_CLIENT_KEY', `${key}.tls.client_key`);
  if ((clientCert === undefined) !== (clientKey === undefined)) {
    errors.push(
      `${(clientCert ?? clientKey)!.setting}: a client certificate and its key come together ` +
        '(TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH): set both for mTLS, or neither',
    );
  }
  if (errors.length > 0) throw invalid(errors);
  const serverCaCert = pemSource(tls?.serverCACert, env, 'TEMPORAL_TLS_SERVER_CA_CERT', `${key}.tls.server_ca_cert`);
  return {
    address,
    namespace: p.namespace ?? 'default',
    profile: fileProfile ? name : undefined,
    tls: tls
      ? {
          ...(clientCert ? { clientCert } : {}),
          ...(clientKey ? { clientKey } : {}),
          ...(serverCaCert ? { serverCaCert } : {}),
          ...(tls.serverName ? { serverName: tls.serverName } : {}),
        }
      : undefined,
    apiKey: p.apiKey,
    grpcMeta: p.grpcMeta ?? {},
  };
}
