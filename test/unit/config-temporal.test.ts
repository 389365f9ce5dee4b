/**
 * The Temporal connection read as the temporal CLI reads it: a TOML profile file written to a temporary folder, the
 * CLI's variables on top, our deprecated names, and the refusals (host verification off, an API key without TLS).
 * Each test checks the options the worker and client would connect with, file bytes included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { ConfigError } from '../../src/errors';
import { temporalConnectionOptions, type TemporalTlsConfig } from '../../src/tls';

const API_KEY = 'tmprl-key-4f1c9a0b7e';
const CERT = '-----BEGIN CERTIFICATE-----\nY2xpZW50IGNlcnQ=\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nY2xpZW50IGtleQ==\n-----END PRIVATE KEY-----\n';
const CA = '-----BEGIN CERTIFICATE-----\nY2EgYnVuZGxl\n-----END CERTIFICATE-----\n';

/** A temporary folder with a client certificate, key and CA, and a way to write the CLI's TOML file into it. */
function folder() {
  const dir = mkdtempSync(join(tmpdir(), 'temporal-profile-'));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const paths = { cert: file('client.pem', CERT), key: file('client.key', KEY), ca: file('ca.pem', CA) };
  return { dir, file, paths, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

function connect(env: Record<string, string>) {
  return temporalConnectionOptions(loadConfig(env, 'client'));
}

function tlsOf(options: ReturnType<typeof connect>): TemporalTlsConfig {
  assert.ok(options.tls && options.tls !== true, 'TLS with options');
  return options.tls;
}

/** Asserts that loading fails with a config error in the house style whose message matches `pattern`. */
function refused(env: Record<string, string>, pattern: RegExp, secrets: string[] = [API_KEY]) {
  assert.throws(
    () => connect(env),
    (err: Error) => {
      assert.ok(err instanceof ConfigError, err.message);
      assert.match(err.message, /^invalid configuration:\n {2}/);
      assert.match(err.message, pattern);
      for (const s of secrets) assert.ok(!err.message.includes(s), 'no secret in the message');
      return true;
    },
  );
}

void test('a profile of the temporal CLI file gives the address, namespace, API key and TLS files', () => {
  using f = folder();
  const config = f.file(
    'temporal.toml',
    `[profile.default]
address = "localhost:7233"

[profile.clinic]
address = "clinic.a1b2c.tmprl.cloud:7233"
namespace = "clinic.a1b2c"
api_key = "${API_KEY}"

[profile.clinic.tls]
client_cert_path = "${f.paths.cert}"
client_key_path = "${f.paths.key}"
server_ca_cert_path = "${f.paths.ca}"
server_name = "frontend.clinic.internal"
`,
  );
  const c = loadConfig({ TEMPORAL_CONFIG_FILE: config, TEMPORAL_PROFILE: 'clinic' }, 'client');
  assert.equal(c.temporal.profile, 'clinic');
  assert.equal(c.temporal.namespace, 'clinic.a1b2c');
  const options = temporalConnectionOptions(c);
  assert.equal(options.address, 'clinic.a1b2c.tmprl.cloud:7233');
  assert.equal(options.apiKey, API_KEY);
  const tls = tlsOf(options);
  assert.equal(tls.clientCertPair?.crt.toString(), CERT);
  assert.equal(tls.clientCertPair?.key.toString(), KEY);
  assert.equal(tls.serverRootCACertificate?.toString(), CA);
  assert.equal(tls.serverNameOverride, 'frontend.clinic.internal');

  // Without TEMPORAL_PROFILE, the `default` profile: plain gRPC, namespace `default`.
  const local = loadConfig({ TEMPORAL_CONFIG_FILE: config }, 'client');
  assert.deepEqual(temporalConnectionOptions(local), { address: 'localhost:7233' });
  assert.equal(local.temporal.namespace, 'default');
});

void test("the CLI's variables override the profile, and its default file is found under the config home", () => {
  using f = folder();
  mkdirSync(join(f.dir, 'temporalio'));
  f.file(
    'temporalio/temporal.toml',
    `[profile.default]
address = "temporal.clinic.internal:7233"
namespace = "reimport"
[profile.default.tls]
server_ca_cert_path = "/nowhere/ca.pem"
[profile.default.grpc_meta]
x-clinic = "north"
`,
  );
  const options = connect({
    XDG_CONFIG_HOME: f.dir,
    TEMPORAL_NAMESPACE: 'reimport-staging',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: f.paths.ca,
    TEMPORAL_TLS_CLIENT_CERT_PATH: f.paths.cert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: f.paths.key,
    TEMPORAL_GRPC_META_X_REGION: 'au',
  });
  assert.equal(options.address, 'temporal.clinic.internal:7233');
  assert.equal(tlsOf(options).serverRootCACertificate?.toString(), CA);
  assert.equal(tlsOf(options).clientCertPair?.crt.toString(), CERT);
  assert.deepEqual(options.metadata, { 'x-clinic': 'north', 'x-region': 'au' });
  const c = loadConfig({ XDG_CONFIG_HOME: f.dir, TEMPORAL_NAMESPACE: 'reimport-staging' }, 'client');
  assert.equal(c.temporal.namespace, 'reimport-staging');
  // Variables alone, no file: TEMPORAL_TLS=true asks for TLS against the system's CAs.
  assert.deepEqual(connect({ TEMPORAL_ADDRESS: 'temporal.example.com:7233', TEMPORAL_TLS: 'true' }), {
    address: 'temporal.example.com:7233',
    tls: {},
  });
  // A value the CLI's reader would take as false (TLS off) is refused instead.
  refused({ TEMPORAL_TLS: 'yes' }, /TEMPORAL_TLS: expected true or false/);
});

void test('our earlier TLS names still work, with a deprecation warning, and may not contradict the new ones', async () => {
  using f = folder();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const old = connect({
      TEMPORAL_ADDRESS: 'temporal.clinic.internal:7233',
      TEMPORAL_TLS_CERT_FILE: f.paths.cert,
      TEMPORAL_TLS_KEY_FILE: f.paths.key,
      TEMPORAL_TLS_CA_FILE: f.paths.ca,
    });
    const current = connect({
      TEMPORAL_ADDRESS: 'temporal.clinic.internal:7233',
      TEMPORAL_TLS_CLIENT_CERT_PATH: f.paths.cert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: f.paths.key,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: f.paths.ca,
    });
    assert.deepEqual(old, current);
    assert.equal(tlsOf(old).clientCertPair?.key.toString(), KEY);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(warnings.sort(), [
      "TEMPORAL_TLS_CA_FILE is deprecated and goes in the next release: use TEMPORAL_TLS_SERVER_CA_CERT_PATH, the temporal CLI's name",
      "TEMPORAL_TLS_CERT_FILE is deprecated and goes in the next release: use TEMPORAL_TLS_CLIENT_CERT_PATH, the temporal CLI's name",
      "TEMPORAL_TLS_KEY_FILE is deprecated and goes in the next release: use TEMPORAL_TLS_CLIENT_KEY_PATH, the temporal CLI's name",
    ]);
  } finally {
    process.off('warning', onWarning);
  }
  // The same file under both names is fine; two different files are an error, not a silent choice.
  assert.ok(connect({ TEMPORAL_TLS_CA_FILE: f.paths.ca, TEMPORAL_TLS_SERVER_CA_CERT_PATH: f.paths.ca }).tls);
  refused(
    { TEMPORAL_TLS_CA_FILE: f.paths.cert, TEMPORAL_TLS_SERVER_CA_CERT_PATH: f.paths.ca },
    /TEMPORAL_TLS_CA_FILE \/ TEMPORAL_TLS_SERVER_CA_CERT_PATH: both set, to different files/,
  );
  // A file with an old name names that variable when it is wrong.
  refused({ TEMPORAL_TLS_CERT_FILE: f.paths.cert }, /TEMPORAL_TLS_CERT_FILE: a client certificate and its key/);
});

void test('TEMPORAL_API_KEY_FILE gives the key, and never disagrees silently with TEMPORAL_API_KEY', () => {
  using f = folder();
  const keyFile = f.file('api-key', `${API_KEY}\n`);
  const options = connect({ TEMPORAL_ADDRESS: 'clinic.a1b2c.tmprl.cloud:7233', TEMPORAL_API_KEY_FILE: keyFile });
  assert.equal(options.apiKey, API_KEY);
  assert.equal(options.tls, true, 'an API key implies TLS');
  assert.equal(connect({ TEMPORAL_API_KEY_FILE: keyFile, TEMPORAL_API_KEY: API_KEY }).apiKey, API_KEY);
  refused(
    { TEMPORAL_API_KEY_FILE: keyFile, TEMPORAL_API_KEY: 'another-key-77' },
    /TEMPORAL_API_KEY \/ TEMPORAL_API_KEY_FILE: both set, to different keys/,
    [API_KEY, 'another-key-77'],
  );
});

void test('certificate checks cannot be turned off, by a profile or by a variable', () => {
  using f = folder();
  const config = f.file(
    'temporal.toml',
    `[profile.lax]
address = "temporal.clinic.internal:7233"
api_key = "${API_KEY}"
[profile.lax.tls]
server_name = "frontend"
disable_host_verification = true
`,
  );
  refused(
    { TEMPORAL_CONFIG_FILE: config, TEMPORAL_PROFILE: 'lax' },
    /profile\.lax\.tls\.disable_host_verification \(.*temporal\.toml\): certificate checks cannot be turned off/,
  );
  refused(
    { TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' },
    /TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: certificate checks cannot be turned off/,
  );
  refused({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'TRUE' }, /certificate checks cannot be turned off/);
  assert.equal(connect({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'false' }).address, 'localhost:7233');
  // Nor can an API key travel in clear.
  refused({ TEMPORAL_API_KEY: API_KEY, TEMPORAL_TLS: 'false' }, /TEMPORAL_TLS: an API key is never sent without TLS/);
  const plain = f.file(
    'plain.toml',
    `[profile.default]\naddress = "127.0.0.1:7233"\napi_key = "${API_KEY}"\n[profile.default.tls]\ndisabled = true\n`,
  );
  refused({ TEMPORAL_CONFIG_FILE: plain }, /profile\.default\.tls\.disabled: an API key is never sent without TLS/);
  // TLS off without a key is the local dev server.
  const dev = f.file(
    'dev.toml',
    '[profile.default]\naddress = "127.0.0.1:7233"\n[profile.default.tls]\ndisabled = true\n',
  );
  assert.deepEqual(connect({ TEMPORAL_CONFIG_FILE: dev }), { address: '127.0.0.1:7233' });
});

void test('a missing file or profile, bad TOML and bad PEM are config errors that name the setting, never a secret', () => {
  using f = folder();
  refused(
    { TEMPORAL_CONFIG_FILE: join(f.dir, 'absent.toml') },
    /TEMPORAL_CONFIG_FILE: cannot read .*absent\.toml \(ENOENT\)/,
  );
  const config = f.file('temporal.toml', '[profile.default]\naddress = "localhost:7233"\n');
  refused(
    { TEMPORAL_CONFIG_FILE: config, TEMPORAL_PROFILE: 'prod' },
    /TEMPORAL_PROFILE: no profile "prod" in .*temporal\.toml/,
  );
  // The parser quotes the broken line; the key on it must not reach the message.
  const broken = f.file('broken.toml', `[profile.default]\napi_key = "${API_KEY}\n`);
  refused({ TEMPORAL_CONFIG_FILE: broken }, /TEMPORAL_CONFIG_FILE: .*broken\.toml is not valid TOML at line 2/);
  // An empty file is no profile at all, as is no file.
  assert.deepEqual(connect({ TEMPORAL_CONFIG_FILE: f.file('empty.toml', '') }), { address: 'localhost:7233' });
  // PEM is checked when the connection is made, naming the setting and not its contents.
  assert.throws(
    () => connect({ TEMPORAL_TLS_CLIENT_KEY_DATA: 'not a key', TEMPORAL_TLS_CLIENT_CERT_DATA: CERT }),
    (err: Error) =>
      err instanceof ConfigError && err.message === 'TEMPORAL_TLS_CLIENT_KEY_DATA: does not hold a PEM private key',
  );
  const badAddress = f.file('address.toml', '[profile.default]\naddress = "https://temporal"\n');
  refused({ TEMPORAL_CONFIG_FILE: badAddress }, /profile\.default\.address \(.*\): expected host:port/);
});
